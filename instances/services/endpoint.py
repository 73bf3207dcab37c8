"""Where an instance's secrets are sent: its API URL and proxy (its "endpoint").

The platform sends an instance's API token with every command and its webhook secret with the
pushed configuration. Whoever chooses the address receives both, so moving an instance is one
service, `change_endpoint`, used by the admin, the API (POST /api/v1/instances/{id}/endpoint/)
and the commands (register_instance):

* the caller needs the permission `instances.change_endpoint` through a role (an instance grant
  never carries it) and sudo mode (a one-time code entered in the last minutes, or the API's
  X-OTP-Code header); management commands run with the server's own rights;
* when the destination (API URL, proxy host or port) moves, the webhook secret is re-keyed and
  the API token is withheld until a token is given for the new address: without one, the
  secrets are bound to no address and `client_for` sends neither (instances.binding);
* every change is audited (`instance.endpoint`), the token and passwords never.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.scoping import has_global_perm
from accounts.services.otp import in_sudo
from instances import binding
from wework.errors import PermissionDeniedError

from ..models import InstanceConfig, WeworkInstance
from .base import TOKEN_KEY, WEBHOOK_SECRET_KEY, ServiceError
from .commands import audit, push_config
from .configs import get_config, new_secret, set_config

#: The permission that lets a user choose where an instance's secrets go (a role, not a grant).
CHANGE_ENDPOINT = "instances.change_endpoint"
#: The instance columns that make up the endpoint; the first three decide the destination.
DESTINATION_FIELDS = ("api_url", "proxy_host", "proxy_port")
ENDPOINT_FIELDS = (*DESTINATION_FIELDS, "proxy_username", "proxy_password")
#: Stands for "not given, keep the stored value".
KEEP = object()


class SudoRequired(PermissionDeniedError):
    code = "sudo_required"


@dataclass
class EndpointChange:
    instance: WeworkInstance
    changed: list[str] = field(default_factory=list)
    moved: bool = False  # the destination changed: secret re-keyed, token withheld or replaced
    rekeyed: bool = False
    token_given: bool = False
    token_withheld: bool = False
    pushed: bool = False
    push_error: str | None = None

    def as_dict(self):
        return {"changed": self.changed, "moved": self.moved, "rekeyed": self.rekeyed,
                "token_given": self.token_given, "token_withheld": self.token_withheld,
                "pushed": self.pushed, "push_error": self.push_error}


def may_change_endpoint(user) -> bool:
    """Whether `user` holds the permission (sudo aside): a role grant or super admin."""
    return bool(user and user.is_authenticated and user.is_active
                and has_global_perm(user, CHANGE_ENDPOINT))


def authorize(user, request) -> None:
    """Refuse (403) a user without the permission, or a request not in sudo mode."""
    if not may_change_endpoint(user):
        raise PermissionDeniedError(_(
            "Changing where an instance's API token and webhook secret are sent needs the "
            "permission to change instance endpoints (a role); ask an administrator."))
    if request is None or not in_sudo(request):
        raise SudoRequired(_(
            "Changing where an instance's secrets are sent needs a recent one-time code (sudo "
            "mode; in the API, send it in the X-OTP-Code header)."))


def _clean(values: dict) -> dict:
    """Validated endpoint values; ValidationError with field messages otherwise."""
    errors: dict[str, list[str]] = {}
    cleaned = dict(values)
    if "api_url" in cleaned:
        url = str(cleaned["api_url"] or "").strip()
        try:
            URLValidator(schemes=["http", "https"], message=_("Enter an http:// or https:// URL."))(url)
        except ValidationError as exc:
            errors["api_url"] = list(exc.messages)
        cleaned["api_url"] = url
    for name in ("proxy_host", "proxy_username"):
        if name in cleaned:
            cleaned[name] = str(cleaned[name] or "").strip() or None
            if cleaned[name] and len(cleaned[name]) > 100:
                errors[name] = [_("Enter at most 100 characters.")]
    if "proxy_port" in cleaned and cleaned["proxy_port"] not in (None, ""):
        try:
            port = int(cleaned["proxy_port"])
        except (TypeError, ValueError):
            port = 0
        if not 1 <= port <= 65535:
            errors["proxy_port"] = [_("Enter a number from %(low)d to %(high)d.")
                                    % {"low": 1, "high": 65535}]
        cleaned["proxy_port"] = port
    elif "proxy_port" in cleaned:
        cleaned["proxy_port"] = None
    if errors:
        raise ValidationError(errors)
    return cleaned


def _is_bound(instance) -> bool:
    row = InstanceConfig.objects.filter(instance=instance, config_key=binding.BINDING_KEY).first()
    return binding.is_bound(instance, row.config_value if row else None)


def _bind(instance, bound: bool) -> None:
    set_config(instance, binding.BINDING_KEY, binding.fingerprint_of(instance) if bound else None,
               system=True, description="The address the API token and webhook secret are bound to")


def apply(instance, *, values: dict, token=None, webhook_secret=None, actor=None,
          via="api") -> EndpointChange:
    """Set the endpoint `values` (a subset of ENDPOINT_FIELDS; `proxy_password` "" clears it)
    and the secrets that follow from them. No permission check: `change_endpoint` is the entry
    point of people; `register_instance` (the command line) calls this directly."""
    values = _clean({k: v for k, v in values.items() if v is not KEEP})
    result = EndpointChange(instance=instance)
    with transaction.atomic():
        if instance.pk:
            locked = WeworkInstance.all_objects.select_for_update().get(pk=instance.pk)
            was_bound = _is_bound(locked)
            for name in ENDPOINT_FIELDS:  # start from the stored row, not a stale object
                column = "proxy_password_encrypted" if name == "proxy_password" else name
                setattr(instance, column, getattr(locked, column))
        else:
            was_bound = False
        old = {name: getattr(instance, name) for name in DESTINATION_FIELDS + ("proxy_username",)}
        for name, value in values.items():
            if name == "proxy_password":
                if value is None:
                    continue
                if (value or None) != instance.proxy_password_encrypted:
                    result.changed.append(name)
                instance.proxy_password_encrypted = value or None
            elif value != old.get(name):
                result.changed.append(name)
                setattr(instance, name, value)
        if instance.proxy_host and not instance.proxy_port:
            raise ValidationError({"proxy_port": [_("A proxy needs its port.")]})
        if instance.pk:
            instance.updated_at = timezone.now()
            WeworkInstance.all_objects.filter(pk=instance.pk).update(
                api_url=instance.api_url, proxy_host=instance.proxy_host,
                proxy_port=instance.proxy_port, proxy_username=instance.proxy_username,
                proxy_password_encrypted=instance.proxy_password_encrypted,
                updated_at=instance.updated_at)
        else:
            instance.save()
        result.moved = not was_bound or any(n in result.changed for n in DESTINATION_FIELDS)
        has_secret = get_config(instance, WEBHOOK_SECRET_KEY) is not None
        if result.moved or webhook_secret or not has_secret:
            # A new address gets a secret no earlier address has seen.
            set_config(instance, WEBHOOK_SECRET_KEY, webhook_secret or new_secret(), encrypted=True,
                       system=True, description="HMAC secret of the instance's webhook deliveries")
            result.rekeyed = result.moved and has_secret
        if token:
            set_config(instance, TOKEN_KEY, token, encrypted=True, system=True,
                       description="Bearer token of the instance API")
            result.token_given = True
            _bind(instance, True)
        elif result.moved:
            if get_config(instance, TOKEN_KEY) is not None:
                set_config(instance, TOKEN_KEY, None, encrypted=True, system=True,
                           description="Bearer token of the instance API")
                result.token_withheld = True
            _bind(instance, False)
        old_values = {k: v for k, v in old.items() if k in result.changed}
        audit("instance.endpoint", instance, new_values={
            "via": via, "user": getattr(actor, "username", None),
            "old": old_values,
            "new": {k: getattr(instance, k) for k in old_values},
            "proxy_password_changed": "proxy_password" in result.changed,
            "moved": result.moved, "rekeyed": result.rekeyed,
            "token_given": result.token_given, "token_withheld": result.token_withheld})
    return result


def change_endpoint(instance, *, user, request, api_url=KEEP, proxy_host=KEEP, proxy_port=KEEP,
                    proxy_username=KEEP, proxy_password=KEEP, token=None, push=True,
                    via="api") -> EndpointChange:
    """Move `instance` (see the module docstring): permission and sudo checked, secrets
    re-keyed or withheld, audited; with a token given, the configuration is pushed to the new
    address (`push=False` skips it; a failed push is reported in `push_error`)."""
    authorize(user, request)
    values = {"api_url": api_url, "proxy_host": proxy_host, "proxy_port": proxy_port,
              "proxy_username": proxy_username, "proxy_password": proxy_password}
    result = apply(instance, values=values, token=token, actor=user, via=via)
    if result.token_given and push:
        try:
            push_config(instance)
            result.pushed = True
        except ServiceError as exc:
            result.push_error = exc.message
    return result


def endpoint_changes(instance, posted: dict) -> list[str]:
    """The ENDPOINT_FIELDS that `posted` (form or API values) would change on `instance`."""
    changed = []
    for name in ENDPOINT_FIELDS:
        if name not in posted or posted[name] is KEEP:
            continue
        value = posted[name]
        if name == "proxy_password":
            if value is not None and (value or None) != instance.proxy_password_encrypted:
                changed.append(name)
            continue
        if str(value if value is not None else "").strip() != str(getattr(instance, name) or ""):
            changed.append(name)
    return changed
