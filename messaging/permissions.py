"""Permission checks for messaging, on top of the platform's scoping (accounts/scoping.py).

Object permissions are granted per instance; messaging rows reach their instance through
`INSTANCE_PATH` (messages and tasks: account__instance, receivers: task__account__instance).

- viewing rows: `messaging.view_<model>` (scoped);
- sending one message: `messaging.send_message` on the account's instance;
- creating a batch or broadcast task: `messaging.send_broadcast` on the account's instance;
- pause / resume / cancel / resend / recount: `messaging.manage_task` on the task's instance;
- templates are global: `messaging.add_/change_/view_messagetemplate`; whoever may compose
  may also preview the templates compose offers (the enabled ones).

The services enforce the send and manage rules (`require_send`, `require_manage`); pages and
the API use `may`/`may_use` only to decide what to show.
"""
from __future__ import annotations

from typing import TypeGuard

from django.contrib.auth.models import AnonymousUser
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from accounts import scoping
from accounts.models import User
from contacts.models import WeworkAccount

from .errors import SendPermissionDenied
from .models import MessageTask, MessageTemplate, TaskType
from .services.templates import compose_templates

SEND_MESSAGE = "messaging.send_message"
SEND_BROADCAST = "messaging.send_broadcast"
MANAGE_TASK = "messaging.manage_task"
VIEW_TASK = "messaging.view_messagetask"
VIEW_TEMPLATE = "messaging.view_messagetemplate"

#: Who a check is about: a user, or nobody logged in.
Actor = User | AnonymousUser | None


def _active(user: Actor) -> TypeGuard[User | AnonymousUser]:
    return bool(user and user.is_authenticated and user.is_active)


def scope(qs: QuerySet, user: Actor, perm: str, *extra: str) -> QuerySet:
    return scoping.scope_queryset(qs, user, perm, *extra)


def may(user: Actor, perm: str, instance_id: int | None = None) -> bool:
    """Whether `user` holds `perm` globally, or on the instance `instance_id`."""
    if not _active(user):
        return False
    if user.is_superuser:
        return True
    ids = scoping.visible_instance_ids(user, perm)
    if ids is None:
        return True
    return instance_id is not None and int(instance_id) in ids


def may_use(user: Actor, perm: str) -> bool:
    """Whether `perm` applies to at least one instance (to show a page or a button)."""
    if not _active(user):
        return False
    if user.is_superuser:
        return True
    ids = scoping.visible_instance_ids(user, perm)
    return ids is None or bool(ids)


def may_compose(user: Actor) -> bool:
    """Whether the compose page is open to `user` (single messages or broadcasts somewhere)."""
    return may_use(user, SEND_MESSAGE) or may_use(user, SEND_BROADCAST)


def previewable_templates(user: Actor) -> QuerySet | None:
    """Templates `user` may preview: every template with `messaging.view_messagetemplate`,
    else the ones the compose page offers (enabled) when the user may compose; else None."""
    if may_use(user, VIEW_TEMPLATE):
        return MessageTemplate.objects.all()
    if may_compose(user):
        return compose_templates()
    return None


def send_permission(task_type: str | None) -> str:
    """The permission a task of this type needs: one message, or a batch/broadcast."""
    return SEND_MESSAGE if task_type in (None, TaskType.SINGLE) else SEND_BROADCAST


def require_send(user: Actor, account: WeworkAccount, task_type: str | None) -> None:
    """The send-versus-broadcast rule: raise SendPermissionDenied unless `user` may create a task
    of `task_type` from `account`."""
    perm = send_permission(task_type)
    if may(user, perm, account.instance_id):
        return
    if perm == SEND_BROADCAST and may(user, SEND_MESSAGE, account.instance_id):
        raise SendPermissionDenied(_("You may send single messages only from this account; a broadcast needs the "
                                     "broadcast permission."))
    raise SendPermissionDenied(_("You may not send from this account."))


def require_manage(user: Actor, task: MessageTask) -> None:
    """Raise SendPermissionDenied unless `user` may pause, resume, cancel or resend `task`."""
    if not may(user, MANAGE_TASK, task.account.instance_id if task.account is not None else None):
        raise SendPermissionDenied(_("You may not manage this task."))


def accounts_for(user: Actor, perm: str) -> QuerySet:
    """Accounts the user may send from with `perm`."""
    return scope(WeworkAccount.objects.select_related("instance"), user, perm)


def instance_q(user: Actor, perm: str, path: str) -> Q:
    """A Q limiting rows to the instances where `user` holds `perm` (`path` = ORM path to the
    instance id)."""
    if not _active(user):
        return Q(pk__in=[])
    if user.is_superuser:
        return Q()
    ids = scoping.visible_instance_ids(user, perm)
    if ids is None:
        return Q()
    return Q(**{f"{path}__in": sorted(ids)})


def account_scope_q(user: Actor, perm: str, field: str = "account_id") -> Q:
    """`instance_q` for rows that name their account (messages): the ids of the accounts on the
    user's instances (one query on the accounts' instance index), so that a shard is filtered
    on its own column and never joined to the accounts (MariaDB could then start from the
    accounts and sort a whole month). Empty when the user sees every instance."""
    q = instance_q(user, perm, "instance_id")
    if not q.children:
        return Q()
    ids = sorted(WeworkAccount._base_manager.filter(q).values_list("pk", flat=True))
    return Q(**{f"{field}__in": ids})
