"""QR login (start, follow, verify, cancel) and logout of WeCom accounts."""
from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from instances import protocol
from instances.models import InstanceStatus
from instances.services import ServiceError, _call, audit

from ..models import (
    AccountStatus,
    LoginMethod,
    WeworkAccount,
)
from .accounts import ensure_account, recount_accounts
from .base import LOGIN_TTL

logger = logging.getLogger("wework.contacts")

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
