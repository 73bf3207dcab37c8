"""Domain logic of WeCom accounts and their address books.

- QR login: start a login on the instance, follow its status (polling and `login.status`
  events), record the account when confirmed; logout.
- Account states from events and heartbeats; `max_accounts` enforced; `current_accounts`
  recomputed in the same transaction as every change of a logged-in flag.
- Sync of contacts, groups (rooms) and group members into the instance's shards: full (paged)
  and incremental from events.

Sync consistency (see docs/instances.md): each page is upserted in its own transaction, so a
page is either written whole or not at all. A full sync stamps every row it writes with the
sync's start time (`last_sync_time`, members: `updated_at`); only after the last page of a scope
has been written are the rows the instance no longer has (stamp older than the start) soft-
deleted and the counters recomputed. A sync that fails half-way therefore leaves the pages it
wrote (correct, current data), deletes nothing and keeps its cursor in the cache, so that
`sync_account(..., resume=True)` continues from the failed page with the same stamp.
"""
from __future__ import annotations

import logging
import secrets
import time
from datetime import UTC, datetime

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from instances import protocol
from instances.exceptions import InstanceError
from instances.models import InstanceStatus, WeworkInstance
from instances.services import (ServiceError, _call, audit, client_for, fire_alert, record_instance_error,
                                resolve_alert)
from wework import shards

from . import bulk
from .models import (
    AccountStatus,
    Contact,
    ContactType,
    FriendStatus,
    Gender,
    Group,
    GroupMember,
    GroupRole,
    LoginMethod,
    SyncStatus,
    WeworkAccount,
)

logger = logging.getLogger("wework.contacts")

STATUS_BY_NAME = {
    "online": AccountStatus.ONLINE,
    "offline": AccountStatus.OFFLINE,
    "abnormal": AccountStatus.ABNORMAL,
    "banned": AccountStatus.BANNED,
}
ROLE_BY_NAME = {"owner": GroupRole.OWNER, "admin": GroupRole.ADMIN, "member": GroupRole.MEMBER}
LOGIN_TTL = 15 * 60
SYNC_STATE_TTL = 24 * 3600
SYNC_PAGE_LIMIT = protocol.MAX_PAGE_LIMIT
SYNC_SCOPES = ("contacts", "groups", "members")


def _ms(value):
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def _cut(value, length):
    if value is None:
        return None
    return str(value)[:length]


def _stamp():
    """Now at second precision (the design's DATETIME columns keep no fractions)."""
    return timezone.now().replace(microsecond=0)


# ---------------------------------------------------------------------------------------------
# Accounts: counting, capacity, states
# ---------------------------------------------------------------------------------------------


def recount_accounts(instance_id):
    """Recompute current_accounts (logged-in, not deleted accounts) under the instance's lock.

    Call inside the transaction that changed an account's logged-in flag.
    """
    with transaction.atomic():
        locked = WeworkInstance.all_objects.select_for_update().filter(pk=instance_id)
        row = locked.values("max_accounts").first()
        if row is None:
            return 0
        count = WeworkAccount.objects.filter(instance_id=instance_id, is_logged_in=True).count()
        locked.update(current_accounts=count)
    if count <= row["max_accounts"]:
        # within its maximum (again): the alert `instance.max_accounts`, if open, closes
        instance = WeworkInstance(pk=instance_id)
        transaction.on_commit(lambda: resolve_alert(instance, "max_accounts"))
    return count


#: The columns ensure_account() writes on an existing account.
ENSURE_ACCOUNT_FIELDS = ["deleted_at", "nickname", "avatar_url", "phone", "email", "region", "signature",
                         "gender", "status", "is_logged_in", "last_login_time", "login_method", "updated_at"]


def profile_fields(profile):
    """The account columns of a runtime's account object (the keys it gives, cut to size)."""
    fields = {}
    for field, key, length in (("nickname", "nickname", 100), ("avatar_url", "avatar", 500),
                               ("phone", "phone", 20), ("email", "email", 100),
                               ("region", "region", 100)):
        if profile.get(key) is not None:
            fields[field] = _cut(profile[key], length)
    if profile.get("signature") is not None:
        fields["signature"] = profile["signature"]
    if profile.get("gender") in (0, 1, 2):
        fields["gender"] = profile["gender"]
    return fields


def refresh_profile(client, account):
    """Fill the account's profile (nickname, avatar, phone, ...) from the runtime: accounts
    first seen in a heartbeat (logged in before the instance was registered) carry only their
    id. One `GET /v1/accounts`; returns whether the runtime knew the account."""
    for item in client.list_accounts():
        if item.get("account_id") == account.wxid:
            fields = profile_fields(item)
            if fields:
                WeworkAccount.all_objects.filter(pk=account.pk).update(**fields, updated_at=timezone.now())
                for field, value in fields.items():
                    setattr(account, field, value)
            return True
    return False


def ensure_account(instance, wxid, *, profile=None, status=AccountStatus.ONLINE,
                   logged_in=True, login_method=None):
    """Create or update the account `wxid` of the instance (restores a soft-deleted one).

    Over `max_accounts`, the account is still recorded (nothing reported by the instance is
    lost) and the instance gets an error message and an alert.
    """
    if not wxid:
        raise ServiceError(_("The event names no account."), code="unknown_account")
    profile = profile or {}
    now = timezone.now()
    with transaction.atomic():
        inst = WeworkInstance.all_objects.select_for_update().get(pk=instance.pk)
        account = WeworkAccount.all_objects.filter(instance_id=inst.pk, wxid=wxid).first()
        was_logged_in = bool(account and account.is_logged_in and not account.deleted_at)
        was_in_trouble = bool(account and account.status in TROUBLE_ALERTS)
        if account is None:
            account = WeworkAccount(instance_id=inst.pk, wxid=_cut(wxid, 100))
        account.deleted_at = None
        for field, value in profile_fields(profile).items():
            setattr(account, field, value)
        account.status = status
        account.is_logged_in = logged_in
        if logged_in and not was_logged_in:
            account.last_login_time = now
        if login_method:
            account.login_method = login_method
        if account._state.adding:
            account.save()
        else:
            # Only the columns this function owns: a full save would write back counters (the
            # sync's recount) read before another transaction changed them.
            account.save(update_fields=ENSURE_ACCOUNT_FIELDS)
        if was_in_trouble and status == AccountStatus.ONLINE:
            transaction.on_commit(lambda: resolve_account_alerts(inst))
        if logged_in and not was_logged_in and (
                login_method == LoginMethod.QRCODE or account.last_sync_time is None):
            # A QR login, or an account online for the first time: fetch its address book
            # (after the commit, de-duplicated: see request_sync).
            trigger = (SyncTrigger.QR_LOGIN if login_method == LoginMethod.QRCODE
                       else SyncTrigger.FIRST_ONLINE)
            transaction.on_commit(lambda: auto_sync(account.pk, trigger))
        count = recount_accounts(inst.pk)
        if logged_in and count > inst.max_accounts:
            message = _(
                "The instance reports %(count)d logged-in accounts, more than its maximum of "
                "%(max)d."
            ) % {"count": count, "max": inst.max_accounts}
            record_instance_error(inst, message)
            transaction.on_commit(lambda: fire_alert(inst, "max_accounts", message,
                                                     level="WARNING"))
    return account


# The alerts raised (per instance) when the instance flags an account (see _trouble).
TROUBLE_ALERTS = {AccountStatus.ABNORMAL: "account_abnormal", AccountStatus.BANNED: "account_banned"}


def resolve_account_alerts(instance):
    """An account is online again: resolve the instance's `instance.account_abnormal` /
    `instance.account_banned` alert once no account of the instance is in that state any more
    (the alerts are kept per instance, like `instance.offline`)."""
    still = set(WeworkAccount.objects.filter(instance_id=instance.pk, status__in=list(TROUBLE_ALERTS))
                .values_list("status", flat=True))
    for status, kind in TROUBLE_ALERTS.items():
        if status not in still:
            resolve_alert(instance, kind)


def set_account_state(instance, wxid, status, *, logged_in=None, remark=None):
    """Change the status (and the logged-in flag) of a known account; False when unknown."""
    with transaction.atomic():
        fields = {"status": status, "updated_at": timezone.now()}
        if logged_in is not None:
            fields["is_logged_in"] = logged_in
        if remark:
            fields["remark"] = remark
        changed = WeworkAccount.objects.filter(instance_id=instance.pk, wxid=wxid).update(
            **fields
        )
        if changed and logged_in is not None:
            recount_accounts(instance.pk)
    return bool(changed)


def apply_account_states(instance, accounts):
    """Apply the [{account_id, status}] list of a heartbeat: known accounts change status;
    unknown online ones are recorded (logged in on the instance without the platform)."""
    known = dict(
        WeworkAccount.objects.filter(instance_id=instance.pk).values_list("wxid", "status")
    )
    reported = set()
    for item in accounts:
        wxid, status = item.get("account_id"), STATUS_BY_NAME.get(item.get("status"))
        if not wxid or status is None:
            continue
        reported.add(wxid)
        if wxid not in known:
            if status == AccountStatus.ONLINE:
                ensure_account(instance, wxid, status=status, logged_in=True)
            continue
        if known[wxid] != status:
            set_account_state(
                instance, wxid, status,
                logged_in=status == AccountStatus.ONLINE or None,
            )
            if known[wxid] in TROUBLE_ALERTS and status == AccountStatus.ONLINE:
                transaction.on_commit(lambda: resolve_account_alerts(instance))
    # Accounts the platform thinks logged in but the instance no longer reports.
    gone = WeworkAccount.objects.filter(instance_id=instance.pk, is_logged_in=True).exclude(
        wxid__in=reported
    )
    if gone.exists():
        with transaction.atomic():
            gone.update(is_logged_in=False, status=AccountStatus.OFFLINE)
            recount_accounts(instance.pk)


def mark_instance_accounts_offline(instance):
    """The instance is gone (silent or its client exited): its accounts are offline."""
    WeworkAccount.objects.filter(instance_id=instance.pk, status=AccountStatus.ONLINE).update(
        status=AccountStatus.OFFLINE, updated_at=timezone.now()
    )


def account_for_event(instance, event):
    wxid = event.get("account_id") or event["data"].get("account_id")
    account = WeworkAccount.objects.filter(instance_id=instance.pk, wxid=wxid).first()
    if account is None:
        raise ServiceError(
            _("Event for an unknown account “%(wxid)s”.") % {"wxid": wxid}, code="unknown_account"
        )
    return account


# ---------------------------------------------------------------------------------------------
# QR login and logout
# ---------------------------------------------------------------------------------------------


def _login_key(login_id):
    return f"contacts:login:{login_id}"


def _current_login_key(instance_pk, user_pk):
    return f"contacts:login:current:{instance_pk}:{user_pk}"


def current_login(instance, user):
    """The login `user` last started on the instance (state dict), or None (none, or expired
    from the cache). Reads the cache only: showing a login starts nothing on the instance."""
    if user is None or not getattr(user, "pk", None):
        return None
    login_id = cache.get(_current_login_key(instance.pk, user.pk))
    state = get_login_state(login_id) if login_id else None
    if state is None or state["instance_id"] != instance.pk:
        return None
    return state


def start_login(instance, *, user=None, account_wxid=None):
    """Start a QR login on the instance; returns the login state dict (kept in the cache)."""
    instance.refresh_from_db(fields=["current_accounts", "max_accounts", "status"])
    if instance.status == InstanceStatus.MAINTENANCE:
        raise ServiceError(_("The instance is in maintenance."), code="maintenance")
    if account_wxid is None and instance.current_accounts >= instance.max_accounts:
        raise ServiceError(
            _("The instance already has %(count)d of %(max)d accounts logged in.")
            % {"count": instance.current_accounts, "max": instance.max_accounts},
            code="max_accounts",
            status=409,
        )
    try:
        data = _call(instance, "start_login", account_wxid)
    except ServiceError as exc:
        audit("account.qr_login", instance, error=exc.message)
        raise
    audit("account.qr_login", instance, operation_type="CREATE",
          new_values={"login_id": data["login_id"], "account_wxid": account_wxid})
    state = {
        "login_id": data["login_id"],
        "instance_id": instance.pk,
        "status": data["status"],
        "qrcode": data["qrcode"]["content"],
        "image_url": data["qrcode"].get("image_url"),
        "expires_at_ms": data["expires_at_ms"],
        "account_id": None,
        "user_id": getattr(user, "pk", None),
        "error": None,
    }
    cache.set(_login_key(state["login_id"]), state, LOGIN_TTL)
    if state["user_id"] is not None:
        cache.set(_current_login_key(instance.pk, state["user_id"]), state["login_id"], LOGIN_TTL)
    return state


def get_login_state(login_id):
    return cache.get(_login_key(login_id))


def _apply_login_status(instance, state, status, account_wxid):
    state["status"] = status
    if account_wxid:
        state["account_id"] = account_wxid
    if status == "confirmed" and account_wxid and not state.get("account_pk"):
        profile = None
        try:
            profile = next(
                (a for a in _call(instance, "list_accounts") if a["account_id"] == account_wxid),
                None,
            )
        except ServiceError as exc:
            logger.warning("profile of %s not fetched: %s", account_wxid, exc)
        account = ensure_account(instance, account_wxid, profile=profile,
                                 status=AccountStatus.ONLINE, logged_in=True,
                                 login_method=LoginMethod.QRCODE)
        state["account_pk"] = account.pk
    cache.set(_login_key(state["login_id"]), state, LOGIN_TTL)
    return state


def poll_login(instance, login_id):
    """The login's current status (asks the instance while it is not final)."""
    state = get_login_state(login_id)
    if state is None or state["instance_id"] != instance.pk:
        raise ServiceError(_("Unknown or expired login."), code="unknown_login", status=404)
    if state["status"] in protocol.LOGIN_FINAL_STATUSES and (
        state["status"] != "confirmed" or state.get("account_pk")
    ):
        return state
    try:
        data = _call(instance, "get_login", login_id)
    except ServiceError as exc:
        state["error"] = exc.message
        if exc.code == "target_not_found":
            state["status"] = "expired"
        cache.set(_login_key(login_id), state, LOGIN_TTL)
        return state
    state["error"] = None
    return _apply_login_status(instance, state, data["status"], data.get("account_id"))


def verify_login(instance, login_id, code):
    """Submit the verification code a `need_verify` login asks for."""
    state = get_login_state(login_id)
    if state is None or state["instance_id"] != instance.pk:
        raise ServiceError(_("Unknown or expired login."), code="unknown_login", status=404)
    code = str(code or "").strip()
    if not code or len(code) > 20:
        raise ServiceError(_("Enter the verification code shown on the phone."),
                           code="invalid_code")
    data = _call(instance, "verify_login", login_id, code)
    return _apply_login_status(instance, state, data["status"], data.get("account_id"))


def cancel_login(instance, login_id):
    state = get_login_state(login_id)
    if state is None or state["instance_id"] != instance.pk:
        raise ServiceError(_("Unknown or expired login."), code="unknown_login", status=404)
    _call(instance, "cancel_login", login_id)
    state["status"] = "cancelled"
    cache.set(_login_key(login_id), state, LOGIN_TTL)
    return state


def handle_login_status(instance, event):
    data = event["data"]
    state = get_login_state(data["login_id"]) or {
        "login_id": data["login_id"], "instance_id": instance.pk, "status": data["status"],
        "qrcode": None, "image_url": None, "expires_at_ms": None, "account_id": None,
        "user_id": None, "error": None,
    }
    if state["instance_id"] != instance.pk:
        return
    if data["status"] == "confirmed" and data.get("account_id"):
        state["status"] = "confirmed"
        state["account_id"] = data["account_id"]
        account = ensure_account(instance, data["account_id"], status=AccountStatus.ONLINE,
                                 logged_in=True, login_method=LoginMethod.QRCODE)
        state["account_pk"] = account.pk
        cache.set(_login_key(state["login_id"]), state, LOGIN_TTL)
    else:
        state["status"] = data["status"]
        cache.set(_login_key(state["login_id"]), state, LOGIN_TTL)


def logout(account):
    """Log the account out on its instance; it stays recorded, offline and not logged in."""
    instance = account.instance
    try:
        _call(instance, "logout_account", account.wxid)
    except ServiceError as exc:
        audit("account.logout", account, resource_type="wework_accounts", error=exc.message)
        raise
    audit("account.logout", account, resource_type="wework_accounts")
    with transaction.atomic():
        WeworkAccount.objects.filter(pk=account.pk).update(
            is_logged_in=False, status=AccountStatus.OFFLINE, updated_at=timezone.now()
        )
        recount_accounts(instance.pk)
    account.refresh_from_db()
    return account


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
            f"{data['account_id']}: {remark}", level="WARNING"))
    return handler


# ---------------------------------------------------------------------------------------------
# Row mapping (protocol -> design columns)
# ---------------------------------------------------------------------------------------------

CONTACT_UPDATE_FIELDS = [
    "nickname", "remark", "avatar_url", "phone", "gender", "region", "signature",
    "contact_type", "friend_status", "add_time", "custom_fields", "sync_status",
    "last_sync_time", "deleted_at", "updated_at",
]
GROUP_UPDATE_FIELDS = [
    "group_name", "group_avatar_url", "group_notice", "member_count", "max_member_count",
    "owner_wxid", "my_role", "join_time", "is_active", "sync_status", "last_sync_time",
    "deleted_at", "updated_at",
]
MEMBER_UPDATE_FIELDS = [
    "member_nickname", "group_nickname", "member_avatar_url", "role", "join_time",
    "invite_by", "is_active", "left_at", "updated_at",
]


def contact_row(account_id, item, stamp):
    gender = item.get("gender")
    return {
        "account_id": account_id,
        "wxid": _cut(item["contact_id"], 100),
        "nickname": _cut(item.get("name"), 100),
        "remark": _cut(item.get("remark"), 100),
        "avatar_url": _cut(item.get("avatar"), 500),
        "phone": _cut(item.get("phone"), 20),
        "gender": gender if gender in (0, 1, 2) else Gender.UNKNOWN,
        "region": _cut(item.get("region"), 100),
        "signature": item.get("signature"),
        "contact_type": (ContactType.OFFICIAL_ACCOUNT if item.get("kind") == "official"
                         else ContactType.FRIEND),
        "friend_status": FriendStatus.NORMAL,
        "add_time": _ms(item.get("added_at_ms")),
        "custom_fields": {
            "corp_name": item.get("corp_name"),
            "is_external": bool(item.get("is_external", False)),
        },
        "sync_status": SyncStatus.SYNCED,
        "last_sync_time": stamp,
        "deleted_at": None,
        "created_at": stamp,
        "updated_at": stamp,
    }


def group_row(account_id, item, stamp):
    return {
        "account_id": account_id,
        "group_wxid": _cut(item["room_id"], 100),
        "group_name": _cut(item.get("topic"), 200),
        "group_avatar_url": _cut(item.get("avatar"), 500),
        "group_notice": item.get("notice"),
        "member_count": int(item.get("member_count") or 0),
        "max_member_count": int(item.get("max_member_count") or 500),
        "owner_wxid": _cut(item.get("owner_id"), 100),
        "my_role": ROLE_BY_NAME.get(item.get("my_role"), GroupRole.MEMBER),
        "join_time": _ms(item.get("joined_at_ms")),
        "is_active": True,
        "sync_status": SyncStatus.SYNCED,
        "last_sync_time": stamp,
        "deleted_at": None,
        "created_at": stamp,
        "updated_at": stamp,
    }


def member_row(group_id, item, stamp):
    return {
        "group_id": group_id,
        "member_wxid": _cut(item["member_id"], 100),
        "member_nickname": _cut(item.get("name"), 100),
        "group_nickname": _cut(item.get("room_alias"), 100),
        "member_avatar_url": _cut(item.get("avatar"), 500),
        "role": ROLE_BY_NAME.get(item.get("role"), GroupRole.MEMBER),
        "join_time": _ms(item.get("joined_at_ms")),
        "invite_by": _cut(item.get("invited_by"), 100),
        "is_active": True,
        "left_at": None,
        "created_at": stamp,
        "updated_at": stamp,
    }


def upsert_contacts(instance_id, rows):
    if not rows:
        return 0
    return bulk.upsert(Contact, instance_id, rows, ["account", "wxid"],
                              CONTACT_UPDATE_FIELDS)


def upsert_groups(instance_id, rows):
    if not rows:
        return 0
    return bulk.upsert(Group, instance_id, rows, ["account", "group_wxid"],
                              GROUP_UPDATE_FIELDS)


def upsert_members(instance_id, rows):
    if not rows:
        return 0
    return bulk.upsert(GroupMember, instance_id, rows, ["group", "member_wxid"],
                              MEMBER_UPDATE_FIELDS)


def ensure_instance_shards(instance_id):
    """Create the instance's contact, group and member shard tables (before any transaction:
    see instances.services.ensure_shards_for)."""
    for model in (Contact, Group, GroupMember):
        shards.model_for(model, instance_id=instance_id)


def contacts_of(account):
    return shards.for_instance(Contact, account.instance_id).filter(account_id=account.pk)


def groups_of(account):
    return shards.for_instance(Group, account.instance_id).filter(account_id=account.pk)


def members_of(instance_id, group_ids):
    return shards.for_instance(GroupMember, instance_id).filter(group_id__in=group_ids)


def recount_contacts(account):
    with transaction.atomic():
        contacts = contacts_of(account).count()
        groups = groups_of(account).count()
        WeworkAccount.all_objects.filter(pk=account.pk).update(
            contact_count=contacts, group_count=groups
        )
    account.contact_count, account.group_count = contacts, groups
    return contacts, groups


def recount_members(instance_id, group_id):
    count = members_of(instance_id, [group_id]).filter(left_at__isnull=True).count()
    shards.for_instance(Group, instance_id).filter(pk=group_id).update(member_count=count)
    return count


# ---------------------------------------------------------------------------------------------
# Full sync
# ---------------------------------------------------------------------------------------------


def _sync_key(account_pk):
    return f"contacts:sync:{account_pk}"


def get_sync_state(account):
    return cache.get(_sync_key(account.pk))


def sync_account(account, *, scopes=SYNC_SCOPES, resume=True, page_limit=SYNC_PAGE_LIMIT,
                 trigger=None):
    """Full sync of an account's contacts, groups and members from its instance.

    Returns a dict of counts. On a failure raises ServiceError after saving the state to resume.
    `trigger` (what started it, see SyncTrigger) is written to the audit row. Runs in the
    caller; `request_sync()` queues it as a Celery task, one at a time per account.
    """
    instance = account.instance
    if not account.is_logged_in:
        raise ServiceError(_("The account is not logged in."), code="not_logged_in", status=409)
    state = get_sync_state(account) if resume else None
    if state is None or state.get("scopes") != list(scopes):
        state = {"started": _fresh_stamp(account).isoformat(), "scopes": list(scopes), "phase": scopes[0],
                 "cursor": None, "room_index": 0, "counts": {}}
    stamp = datetime.fromisoformat(state["started"])
    client_error = None
    ensure_instance_shards(instance.pk)  # before any transaction (see ensure_shards_for)

    client = client_for(instance)
    try:
        if not account.nickname:
            refresh_profile(client, account)
        for phase in scopes[scopes.index(state["phase"]):]:
            if state["phase"] != phase:
                state.update(phase=phase, cursor=None, room_index=0)
            _SYNC_PHASES[phase](client, account, state, stamp, page_limit)
    except InstanceError as exc:
        client_error = exc
    finally:
        client.close()
    if client_error is not None:
        cache.set(_sync_key(account.pk), state, SYNC_STATE_TTL)
        record_instance_error(instance, client_error)
        audit("account.sync", account, resource_type="wework_accounts", error=client_error,
              new_values={"trigger": trigger} if trigger else None)
        raise ServiceError(
            _("The sync stopped at %(phase)s: %(error)s (run it again to resume).")
            % {"phase": state["phase"], "error": client_error.user_message},
            code=client_error.code, status=502,
        ) from client_error
    cache.delete(_sync_key(account.pk))
    audit("account.sync", account, resource_type="wework_accounts",
          new_values={"scopes": list(scopes), **state["counts"],
                      **({"trigger": trigger} if trigger else {})})
    contacts, groups = recount_contacts(account)
    WeworkAccount.all_objects.filter(pk=account.pk).update(last_sync_time=timezone.now())
    return {"contacts": contacts, "groups": groups, **state["counts"]}


# ---------------------------------------------------------------------------------------------
# Sync requests: one queued or running sync per account, automatic syncs, the account's last run
# ---------------------------------------------------------------------------------------------

#: How long the per-account lock lives without progress (each written page renews it).
SYNC_LOCK_TTL = 15 * 60
#: How long the last run of an account stays visible on its page.
SYNC_RUN_TTL = 7 * 24 * 3600


class SyncTrigger:
    MANUAL = "manual"  # the admin action or the API
    QR_LOGIN = "qr_login"  # an account logged in by QR code on the platform
    FIRST_ONLINE = "first_online"  # an account seen online (events, heartbeat, registration)
    INSTANCE_SYNC = "instance_sync"  # the instance's sync.completed for an unsynced account


def _sync_lock_key(account_pk):
    return f"contacts:sync-lock:{account_pk}"


def _sync_run_key(account_pk):
    return f"contacts:sync-run:{account_pk}"


def sync_run(account):
    """The account's current or last sync run: {status queued/running/done/failed, trigger,
    queued_at, started_at, finished_at, counts, error} (ISO times), or None."""
    return cache.get(_sync_run_key(getattr(account, "pk", account)))


def sync_in_progress(account):
    return cache.get(_sync_lock_key(getattr(account, "pk", account))) is not None


def _save_run(account_pk, **values):
    run = dict(cache.get(_sync_run_key(account_pk)) or {})
    run.update(values)
    cache.set(_sync_run_key(account_pk), run, SYNC_RUN_TTL)
    return run


def _release_lock(account_pk, token):
    key = _sync_lock_key(account_pk)
    if cache.get(key) == token:
        cache.delete(key)


class SyncRequest:
    """What request_sync() did: `queued` (False: a sync was already queued or running)."""

    def __init__(self, queued, task_id=None):
        self.queued = queued
        self.task_id = task_id


def request_sync(account, *, trigger=SyncTrigger.MANUAL, scopes=SYNC_SCOPES, resume=True):
    """Queue the Celery sync of `account`, unless one is queued or running for it already.

    De-duplicated by a per-account lock in the cache (Redis): taken here, released by the task
    when it ends, renewed by every page it writes, expiring after SYNC_LOCK_TTL without
    progress (a worker that died). Raises ServiceError for an account that is not logged in.
    """
    if not account.is_logged_in:
        raise ServiceError(_("The account is not logged in."), code="not_logged_in", status=409)
    token = secrets.token_hex(8)
    if not cache.add(_sync_lock_key(account.pk), token, SYNC_LOCK_TTL):
        return SyncRequest(False)
    now = timezone.now().isoformat()
    cache.set(_sync_run_key(account.pk), {"status": "queued", "trigger": trigger,
                                          "queued_at": now}, SYNC_RUN_TTL)
    request = SyncRequest(True)

    def enqueue():
        from .tasks import sync_account as sync_task

        try:
            request.task_id = sync_task.delay(account.pk, list(scopes), resume, trigger=trigger,
                                              token=token).id
        except Exception as exc:  # a broker outage must not break the caller
            logger.exception("the sync of account %s could not be queued", account.pk)
            _release_lock(account.pk, token)
            _save_run(account.pk, status="failed", finished_at=timezone.now().isoformat(),
                      error=str(exc)[:500])

    transaction.on_commit(enqueue)
    return request


def auto_sync(account_pk, trigger):
    """Start the first sync of an account the platform holds no address book for (after a QR
    login, or when it is first seen online); never raises (called after a commit)."""
    account = WeworkAccount.objects.filter(pk=account_pk, is_logged_in=True).first()
    if account is None:
        return None
    try:
        return request_sync(account, trigger=trigger)
    except Exception:  # the login or event that triggered it has succeeded
        logger.exception("the automatic sync of account %s was not started", account_pk)
        return None


def run_sync(account_pk, *, scopes=SYNC_SCOPES, resume=True, trigger=SyncTrigger.MANUAL,
             token=None):
    """Body of the Celery task: the sync under the account's lock; returns a result dict.

    A task queued by request_sync() holds the lock (`token`); one without a token (or whose
    lock expired) takes it, and gives up when another sync holds it.
    """
    key = _sync_lock_key(account_pk)
    holder = cache.get(key)
    if token is None or holder != token:
        token = token or secrets.token_hex(8)
        if holder is not None or not cache.add(key, token, SYNC_LOCK_TTL):
            return {"ok": False, "code": "sync_running",
                    "message": _("A sync of this account is already running.")}
    try:
        account = WeworkAccount.objects.select_related("instance").filter(pk=account_pk).first()
        if account is None:
            return {"ok": False, "code": "unknown_account", "message": _("No such account.")}
        _save_run(account_pk, status="running", trigger=trigger,
                  started_at=timezone.now().isoformat(), finished_at=None, error=None)
        try:
            counts = sync_account(account, scopes=tuple(scopes), resume=resume, trigger=trigger)
        except ServiceError as exc:
            _save_run(account_pk, status="failed", finished_at=timezone.now().isoformat(),
                      error=exc.message)
            return {"ok": False, "code": exc.code, "message": exc.message}
        _save_run(account_pk, status="done", finished_at=timezone.now().isoformat(),
                  counts=counts)
        return {"ok": True, **counts}
    finally:
        _release_lock(account_pk, token)


SYNC_TRIGGER_LABELS = {
    SyncTrigger.MANUAL: gettext_lazy("started by an operator"),
    SyncTrigger.QR_LOGIN: gettext_lazy("after a QR login"),
    SyncTrigger.FIRST_ONLINE: gettext_lazy("account online for the first time"),
    SyncTrigger.INSTANCE_SYNC: gettext_lazy("after the instance's own sync"),
}


def sync_run_label(run):
    """One line for people: the state of a sync run (account page, QR login page)."""
    if not run:
        return _("No sync run recorded (the last 7 days).")
    trigger = SYNC_TRIGGER_LABELS.get(run.get("trigger"), run.get("trigger") or "")

    def when(key):
        value = run.get(key)
        if not value:
            return "-"
        return timezone.localtime(datetime.fromisoformat(value)).strftime("%Y-%m-%d %H:%M:%S")

    status = run.get("status")
    if status == "queued":
        return _("Queued at %(time)s (%(trigger)s).") % {"time": when("queued_at"),
                                                         "trigger": trigger}
    if status == "running":
        return _("Running since %(time)s (%(trigger)s).") % {"time": when("started_at"),
                                                             "trigger": trigger}
    if status == "done":
        counts = run.get("counts") or {}
        return _("Done at %(time)s (%(trigger)s): %(contacts)d contacts, %(groups)d groups.") % {
            "time": when("finished_at"), "trigger": trigger,
            "contacts": counts.get("contacts", 0), "groups": counts.get("groups", 0)}
    return _("Failed at %(time)s (%(trigger)s): %(error)s") % {
        "time": when("finished_at"), "trigger": trigger, "error": run.get("error") or "?"}


def _fresh_stamp(account):
    """A sync stamp later than every stamp already written for the account.

    Rows older than the stamp are swept at the end; DATETIME keeps seconds only, so a sync
    started in the same second as the previous one waits for the next second.
    """
    from django.db.models import Max

    newest = max(
        (v for v in (
            contacts_of(account).aggregate(m=Max("last_sync_time"))["m"],
            groups_of(account).aggregate(m=Max("last_sync_time"))["m"],
        ) if v is not None),
        default=None,
    )
    stamp = _stamp()
    for _attempt in range(3):  # a stamp in the future (clock skew) does not stall the sync
        if newest is None or stamp > newest:
            break
        time.sleep(1.05 - timezone.now().microsecond / 1e6)
        stamp = _stamp()
    return stamp


def _save_progress(account, state):
    cache.set(_sync_key(account.pk), state, SYNC_STATE_TTL)
    cache.touch(_sync_lock_key(account.pk), SYNC_LOCK_TTL)  # a long sync keeps its lock


def _sync_contacts(client, account, state, stamp, limit):
    while True:
        page = client.list_contacts(account.wxid, cursor=state["cursor"], limit=limit)
        rows = [contact_row(account.pk, item, stamp) for item in page.items]
        with transaction.atomic():
            upsert_contacts(account.instance_id, rows)
        state["counts"]["contacts_seen"] = state["counts"].get("contacts_seen", 0) + len(rows)
        state["cursor"] = page.next_cursor
        _save_progress(account, state)
        if page.next_cursor is None:
            break
    with transaction.atomic():
        gone = contacts_of(account).filter(
            Q(last_sync_time__lt=stamp) | Q(last_sync_time__isnull=True)
        ).update(deleted_at=timezone.now(), sync_status=SyncStatus.NOT_SYNCED)
    state["counts"]["contacts_removed"] = gone


def _sync_groups(client, account, state, stamp, limit):
    while True:
        page = client.list_rooms(account.wxid, cursor=state["cursor"], limit=limit)
        rows = [group_row(account.pk, item, stamp) for item in page.items]
        with transaction.atomic():
            upsert_groups(account.instance_id, rows)
        state["counts"]["groups_seen"] = state["counts"].get("groups_seen", 0) + len(rows)
        state["cursor"] = page.next_cursor
        _save_progress(account, state)
        if page.next_cursor is None:
            break
    with transaction.atomic():
        gone = groups_of(account).filter(
            Q(last_sync_time__lt=stamp) | Q(last_sync_time__isnull=True)
        ).update(deleted_at=timezone.now(), is_active=False, sync_status=SyncStatus.NOT_SYNCED)
    state["counts"]["groups_removed"] = gone


def _sync_members(client, account, state, stamp, limit):
    groups = list(groups_of(account).order_by("id").values_list("id", "group_wxid"))
    index = state.get("room_index", 0)
    while index < len(groups):
        group_id, room_id = groups[index]
        while True:
            try:
                page = client.list_room_members(account.wxid, room_id, cursor=state["cursor"],
                                                limit=limit)
            except InstanceError as exc:
                if exc.code == protocol.ErrorCode.TARGET_NOT_FOUND:
                    break  # the room vanished since the groups phase: the next sync drops it
                raise
            rows = [member_row(group_id, item, stamp) for item in page.items]
            with transaction.atomic():
                upsert_members(account.instance_id, rows)
            state["counts"]["members_seen"] = state["counts"].get("members_seen", 0) + len(rows)
            state["cursor"] = page.next_cursor
            _save_progress(account, state)
            if page.next_cursor is None:
                break
        with transaction.atomic():
            members_of(account.instance_id, [group_id]).filter(
                updated_at__lt=stamp, left_at__isnull=True
            ).update(left_at=timezone.now(), is_active=False)
            recount_members(account.instance_id, group_id)
        index += 1
        state.update(room_index=index, cursor=None)
        _save_progress(account, state)


_SYNC_PHASES = {"contacts": _sync_contacts, "groups": _sync_groups, "members": _sync_members}


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
