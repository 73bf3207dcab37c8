"""Permission checks for messaging, on top of the platform's scoping (accounts/scoping.py).

Object permissions are granted per instance; messaging rows reach their instance through
`INSTANCE_PATH` (messages and tasks: account__instance, receivers: task__account__instance).

- viewing rows: `messaging.view_<model>` (scoped);
- sending one message: `messaging.send_message` on the account's instance;
- creating a batch or broadcast task: `messaging.send_broadcast` on the account's instance;
- pause / resume / cancel / resend: `messaging.manage_task` on the task's instance;
- templates are global: `messaging.add_/change_/view_messagetemplate`; whoever may compose
  may also preview the templates compose offers (the enabled ones).
"""
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

SEND_MESSAGE = "messaging.send_message"
SEND_BROADCAST = "messaging.send_broadcast"
MANAGE_TASK = "messaging.manage_task"


def _scoping():
    try:
        from accounts import scoping

        return scoping
    except ImportError:  # access control not installed (never in this project)
        return None


def scope(qs, user, perm, *extra):
    s = _scoping()
    if s is not None:
        return s.scope_queryset(qs, user, perm, *extra)
    if user and user.is_active and (user.is_superuser or any(user.has_perm(p) for p in (perm, *extra))):
        return qs
    return qs.none()


def may(user, perm, instance_id=None):
    """Whether `user` holds `perm` globally, or on the instance `instance_id`."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    s = _scoping()
    if s is None:
        return user.has_perm(perm)
    ids = s.visible_instance_ids(user, perm)
    if ids is None:
        return True
    return instance_id is not None and int(instance_id) in ids


def may_use(user, perm):
    """Whether `perm` applies to at least one instance (to show a page or a button)."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    s = _scoping()
    if s is None:
        return user.has_perm(perm)
    ids = s.visible_instance_ids(user, perm)
    return ids is None or bool(ids)


def may_compose(user):
    """Whether the compose page is open to `user` (single messages or broadcasts somewhere)."""
    return may_use(user, SEND_MESSAGE) or may_use(user, SEND_BROADCAST)


def previewable_templates(user):
    """Templates `user` may preview: every template with `messaging.view_messagetemplate`,
    else the ones the compose page offers (enabled) when the user may compose; else None."""
    from .models import MessageTemplate

    if may_use(user, "messaging.view_messagetemplate"):
        return MessageTemplate.objects.all()
    if may_compose(user):
        from .services import compose_templates

        return compose_templates()
    return None


def require(user, perm, instance_id=None):
    if not may(user, perm, instance_id):
        raise PermissionDenied(_("You do not have permission to do this for this account."))


def require_send(user, account, task_type):
    from .models import TaskType

    perm = SEND_MESSAGE if task_type in (None, TaskType.SINGLE) else SEND_BROADCAST
    require(user, perm, account.instance_id)


def accounts_for(user, perm):
    """Accounts the user may send from with `perm`."""
    from contacts.models import WeworkAccount

    return scope(WeworkAccount.objects.select_related("instance"), user, perm)


def instance_q(user, perm, path):
    """A Q limiting rows to the instances where `user` holds `perm` (`path` = ORM path to the
    instance id)."""
    from django.db.models import Q

    if not (user and user.is_authenticated and user.is_active):
        return Q(pk__in=[])
    if user.is_superuser:
        return Q()
    s = _scoping()
    if s is None:
        return Q() if user.has_perm(perm) else Q(pk__in=[])
    ids = s.visible_instance_ids(user, perm)
    if ids is None:
        return Q()
    return Q(**{f"{path}__in": sorted(ids)})
