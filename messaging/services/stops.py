"""Risk control: stopping an account's sending at once, for every worker and every task."""
from __future__ import annotations

import logging

from django.utils.translation import gettext as _

from contacts.models import AccountStatus, WeworkAccount

from .. import pacing
from ..models import MessageTask, TaskStatus
from ..signals import account_stop_cleared, account_stopped
from .transitions import auto_transition

log = logging.getLogger("messaging")


def stop_account(account_id: int, reason: str, detail: str | None = None) -> int:
    """Risk control or ban: stop the account's sending at once (shared flag in Redis), pause its
    pending and running tasks, flag the account abnormal, and tell monitoring (an alert) once
    per stop. Never undone automatically (`clear_stop` on resume). Returns the tasks paused."""
    already = pacing.blocked_reason(account_id)
    pacing.block(account_id, reason)
    message = _("Paused: the account hit risk control (%(reason)s).") % {"reason": reason}
    paused = 0
    for task_id in MessageTask.objects.filter(
        account_id=account_id, status__in=[TaskStatus.PENDING, TaskStatus.RUNNING]
    ).values_list("pk", flat=True):
        paused += auto_transition(task_id, "pause_risk_control", [TaskStatus.PENDING, TaskStatus.RUNNING],
                                  TaskStatus.PAUSED, reason=reason, error_message=message)
    WeworkAccount.all_objects.filter(pk=account_id, status=AccountStatus.ONLINE).update(
        status=AccountStatus.ABNORMAL
    )
    if not already:  # one alert per stop, however many in-flight messages report it
        log.warning("account %s stopped after %s; %d tasks paused", account_id, reason, paused)
        _announce(account_id, reason, detail, paused)
    return paused


def _announce(account_id: int, reason: str, detail: str | None, paused: int) -> None:
    account = WeworkAccount.all_objects.filter(pk=account_id).values("wxid", "instance_id").first() or {}
    results = account_stopped.send_robust(
        WeworkAccount, account_id=account_id, wxid=account.get("wxid"), instance_id=account.get("instance_id"),
        reason=reason, detail=detail, tasks_paused=paused,
    )
    for receiver, result in results:
        if isinstance(result, Exception):  # an alerting failure must never block the stop
            log.error("account_stopped receiver %r failed for account %s", receiver, account_id, exc_info=result)


def clear_stop(account_id: int) -> bool:
    """An operator checked the account and clears its stop (resume with "clear the stop"):
    sending may go on, and monitoring resolves the stop's alert. Returns whether a stop was set."""
    was = pacing.blocked_reason(account_id)
    pacing.unblock(account_id)
    if was:
        log.info("account %s: stop (%s) cleared", account_id, was)
        for receiver, result in account_stop_cleared.send_robust(WeworkAccount, account_id=account_id):
            if isinstance(result, Exception):
                log.error("account_stop_cleared receiver %r failed for account %s", receiver, account_id,
                          exc_info=result)
    return bool(was)
