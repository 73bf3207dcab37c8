"""WeCom accounts: counting logged-in accounts against `max_accounts`, creating and updating
accounts from events and heartbeats, their profiles, states and alerts."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _, gettext_noop
from wework.i18n import Text, in_platform_language

from instances.models import WeworkInstance
from instances.services import ServiceError, fire_alert, record_instance_error, resolve_alert

from ..models import (
    AccountStatus,
    LoginMethod,
    WeworkAccount,
)
from .base import STATUS_BY_NAME, _cut
from .sync import SyncTrigger, auto_sync

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
            message = Text(gettext_noop(
                "The instance reports %(count)d logged-in accounts, more than its maximum of "
                "%(max)d."), count=count, max=inst.max_accounts)
            record_instance_error(inst, in_platform_language(message))
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
