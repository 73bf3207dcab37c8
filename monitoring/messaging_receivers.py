"""Receivers of messaging's signals (messaging/signals.py): the audit rows of message-task
status changes and the alert when sending stops for an account. Connected in ready()."""
from django.dispatch import receiver
from django.utils.translation import gettext as _, gettext_noop

from messaging.models import MessageTask
from messaging.signals import account_stop_cleared, account_stopped, task_changed
from wework.i18n import Text

from . import audit, services

TASK_AUDIT_PREFIX = "message_task"
ACCOUNT_STOP_RULE = "messaging.account_risk_control"


@receiver(task_changed, dispatch_uid="monitoring.audit_message_task")
def audit_task_change(sender, *, operation, task, old_values, new_values, result="SUCCESS", error=None,
                      extra=None, **kwargs):
    """One audit row per status change (or refusal), in the transaction of the change."""
    audit.record(
        f"{TASK_AUDIT_PREFIX}.{operation}",
        resource_type=audit.resource_type_of(MessageTask),
        resource_id=task.pk,
        resource_name=str(task),
        operation_type="UPDATE",
        old_values=old_values,
        new_values=new_values,
        result=result,
        error_message=error,
        extra=extra,
    )


@receiver(account_stopped, dispatch_uid="monitoring.alert_account_stopped")
def alert_account_stopped(sender, *, account_id, wxid, instance_id, reason, detail, tasks_paused, **kwargs):
    """One open alert per account (fire_alert deduplicates while it is open)."""
    name = wxid or account_id
    services.fire_alert(
        ACCOUNT_STOP_RULE,
        source_type="account",
        source_id=account_id,
        level="CRITICAL",
        title=Text(gettext_noop("Sending stopped for account %(wxid)s"), wxid=name),
        message=Text(gettext_noop(
            "Sending stopped for account %(wxid)s after %(reason)s; %(n)d tasks paused. %(detail)s "
            "Check the account, then resume its tasks with \"clear the stop\"."),
            wxid=name, reason=reason, n=tasks_paused, detail=detail or ""),
        instance_id=instance_id,
    )


@receiver(account_stop_cleared, dispatch_uid="monitoring.resolve_account_stopped")
def resolve_account_stopped(sender, *, account_id, **kwargs):
    """The operator cleared the stop: its alert closes (a new stop raises a new one)."""
    services.resolve_alert(ACCOUNT_STOP_RULE, source_type="account", source_id=account_id,
                           comment=_("auto-resolved: the stop was cleared"))
