"""Events of accounts and address books: account online/offline/abnormal/banned, contacts,
rooms and members changed, sync completed (the handlers registered with instances.hooks)."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _, gettext_noop
from wework.i18n import Text

from instances import protocol
from instances.services import ServiceError, fire_alert

from ..models import (
    AccountStatus,
    WeworkAccount,
)
from .accounts import account_for_event, ensure_account, set_account_state
from .base import _cut, _stamp
from .logins import handle_login_status
from .rows import (
    contact_row,
    contacts_of,
    group_row,
    groups_of,
    member_row,
    members_of,
    recount_contacts,
    recount_members,
    upsert_contacts,
    upsert_groups,
    upsert_members,
)
from .sync import SyncTrigger, auto_sync

# ---------------------------------------------------------------------------------------------
# Account events
# ---------------------------------------------------------------------------------------------


def handle_account_online(instance, event):
    data = event["data"]
    ensure_account(instance, data["account_id"], profile=data.get("profile"),
                   status=AccountStatus.ONLINE, logged_in=True)


def handle_account_offline(instance, event):
    data = event["data"]
    logged_out = data["reason"] in ("logout", "kicked")
    if not set_account_state(instance, data["account_id"], AccountStatus.OFFLINE,
                             logged_in=False if logged_out else None):
        raise ServiceError(_("Event for an unknown account “%(wxid)s”.")
                           % {"wxid": data["account_id"]}, code="unknown_account")


def _trouble(status, logged_in):
    def handler(instance, event):
        data = event["data"]
        remark = f"{data['reason']}: {data.get('detail') or ''}".strip()[:500]
        if not set_account_state(instance, data["account_id"], status, logged_in=logged_in,
                                 remark=remark):
            raise ServiceError(_("Event for an unknown account “%(wxid)s”.")
                               % {"wxid": data["account_id"]}, code="unknown_account")
        transaction.on_commit(lambda: fire_alert(
            instance, f"account_{event['type'].split('.')[1]}",
            Text(gettext_noop("%(wxid)s: %(reason)s"), wxid=data["account_id"], reason=remark),
            level="WARNING"))
    return handler


# ---------------------------------------------------------------------------------------------
# Incremental sync from events
# ---------------------------------------------------------------------------------------------


def handle_contact_upsert(instance, event):
    account = account_for_event(instance, event)
    upsert_contacts(instance.pk, [contact_row(account.pk, event["data"]["contact"], _stamp())])
    recount_contacts(account)


def handle_contact_removed(instance, event):
    account = account_for_event(instance, event)
    wxid = event["data"]["contact"]["contact_id"]
    contacts_of(account).filter(wxid=wxid).update(deleted_at=timezone.now())
    recount_contacts(account)


def _group_id(account, room_id):
    return groups_of(account).filter(group_wxid=room_id).values_list("id", flat=True).first()


def handle_room_updated(instance, event):
    account = account_for_event(instance, event)
    data = event["data"]
    room = data.get("room") or {"room_id": data["room_id"], "topic": data.get("topic")}
    group_id = _group_id(account, data["room_id"])
    if group_id is not None and not data.get("room"):
        groups_of(account).filter(pk=group_id).update(
            group_name=_cut(data.get("topic"), 200), updated_at=timezone.now()
        )
    else:
        row = group_row(account.pk, room, _stamp())
        if group_id is not None:
            row.pop("member_count")
        upsert_groups(instance.pk, [row])
    recount_contacts(account)


def _require_group(account, room_id):
    group_id = _group_id(account, room_id)
    if group_id is None:
        upsert_groups(account.instance_id, [group_row(
            account.pk, {"room_id": room_id, "member_count": 0}, _stamp())])
        group_id = _group_id(account, room_id)
        recount_contacts(account)
    return group_id


def handle_member_joined(instance, event):
    account = account_for_event(instance, event)
    group_id = _require_group(account, event["data"]["room_id"])
    stamp = _stamp()
    upsert_members(instance.pk, [member_row(group_id, m, stamp) for m in event["data"]["members"]])
    recount_members(instance.pk, group_id)


def handle_member_left(instance, event):
    account = account_for_event(instance, event)
    group_id = _group_id(account, event["data"]["room_id"])
    if group_id is None:
        return
    members_of(instance.pk, [group_id]).filter(
        member_wxid__in=event["data"]["member_ids"], left_at__isnull=True
    ).update(left_at=timezone.now(), is_active=False, updated_at=timezone.now())
    recount_members(instance.pk, group_id)


def handle_sync_completed(instance, event):
    """The instance finished its own sync: the platform holds nothing more for it, so
    `last_sync_time` (the platform's own sync) is left alone. An account the platform has never
    synced gets its first sync now (de-duplicated with one started at its login)."""
    if not event.get("account_id"):
        return
    account = WeworkAccount.objects.filter(instance_id=instance.pk, wxid=event["account_id"],
                                           is_logged_in=True, last_sync_time__isnull=True).first()
    if account is not None:
        transaction.on_commit(lambda: auto_sync(account.pk, SyncTrigger.INSTANCE_SYNC))


E = protocol.EventType
EVENT_HANDLERS = {
    E.LOGIN_STATUS: handle_login_status,
    E.ACCOUNT_ONLINE: handle_account_online,
    E.ACCOUNT_OFFLINE: handle_account_offline,
    E.ACCOUNT_ABNORMAL: _trouble(AccountStatus.ABNORMAL, None),
    E.ACCOUNT_BANNED: _trouble(AccountStatus.BANNED, False),
    E.CONTACT_ADDED: handle_contact_upsert,
    E.CONTACT_UPDATED: handle_contact_upsert,
    E.CONTACT_REMOVED: handle_contact_removed,
    E.ROOM_UPDATED: handle_room_updated,
    E.ROOM_MEMBER_JOINED: handle_member_joined,
    E.ROOM_MEMBER_LEFT: handle_member_left,
    E.SYNC_COMPLETED: handle_sync_completed,
}
