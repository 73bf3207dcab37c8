"""Talking to an instance: its client, commands (push config, restart, puppet-service tokens),
errors recorded on the instance, audit rows, and registration."""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from instances import binding, protocol
from instances.exceptions import InstanceError
from wework import audit as audit_port

from ..models import (
    ConfigType,
    InstanceConfig,
    WeworkInstance,
)
from .base import PUPPET_SERVICES_KEY, RATE_LIMIT_PREFIX, TOKEN_KEY, WEBHOOK_SECRET_KEY, ServiceError
from .configs import config_value, get_config, set_config

logger = logging.getLogger("wework.instances")

# ---------------------------------------------------------------------------------------------
# Client and commands
# ---------------------------------------------------------------------------------------------


def client_for(instance, **kwargs):
    """An InstanceClient for this instance: api_url, decrypted token, proxy and timeouts."""
    from instances import client as client_module

    if not instance.api_url:
        raise ServiceError(_("The instance has no API URL."), code="no_api_url")
    configs = {
        c.config_key: c
        for c in InstanceConfig.objects.filter(
            instance=instance,
            config_key__in=(TOKEN_KEY, WEBHOOK_SECRET_KEY, binding.BINDING_KEY,
                            client_module.CONFIG_TIMEOUT_S, client_module.CONFIG_CONNECT_TIMEOUT_S),
        )
    }

    def value(key, default):
        config = configs.get(key)
        return config_value(config) if config and config.config_value is not None else default

    if (value(TOKEN_KEY, None) or value(WEBHOOK_SECRET_KEY, None)) and not binding.is_bound(
            instance, value(binding.BINDING_KEY, None)):
        raise ServiceError(_(
            "The instance's API token and webhook secret were given for another address: the "
            "platform sends them nowhere else. Give the token of the instance at its new address "
            "(change its endpoint with the token)."), code="secrets_not_bound", status=409)

    options = {
        "token": value(TOKEN_KEY, "") or "",
        "timeout": float(value(client_module.CONFIG_TIMEOUT_S, client_module.DEFAULT_TIMEOUT_S)),
        "connect_timeout": float(value(client_module.CONFIG_CONNECT_TIMEOUT_S,
                                       client_module.DEFAULT_CONNECT_TIMEOUT_S)),
        "proxy_host": instance.proxy_host,
        "proxy_port": instance.proxy_port,
        "proxy_username": instance.proxy_username,
        "proxy_password": instance.proxy_password_encrypted,
        "label": instance.name,
    }
    options.update(kwargs)
    try:
        return client_module.InstanceClient(instance.api_url, **options)
    except InstanceError as exc:
        raise ServiceError(exc.user_message, code=exc.public_code) from exc


def record_instance_error(instance, exc, *, status=None):
    """Record a failed call on the instance (error_message, optionally the status)."""
    message = str(exc)[:2000]
    if isinstance(exc, InstanceError) and exc.is_transport:
        # Operators read this column: the transport's reason (refused, timed out, what
        # answered) would tell them what listens at an address; the log keeps it.
        logger.warning("instance %s: %s", instance.pk, message)
        message = f"[{exc.public_code}] {exc.user_message}"[:2000]
    fields = {"error_message": message, "updated_at": timezone.now()}
    if status is not None:
        fields["status"] = status
    WeworkInstance.all_objects.filter(pk=instance.pk).update(**fields)
    instance.error_message = message
    if status is not None:
        instance.status = status
    logger.warning("instance %s: %s", instance.pk, message)


def audit(operation, obj, *, operation_type="UPDATE", error=None, new_values=None,
          resource_type="wework_instances"):
    """One audit row (through the core's audit port) for an operator action; never breaks the
    action."""
    try:
        return audit_port.record(
            operation, resource_type=resource_type, resource_id=obj.pk,
            resource_name=str(obj), operation_type=operation_type,
            new_values=new_values, result="FAILURE" if error else "SUCCESS",
            error_message=str(error) if error else None,
        )
    except Exception:
        logger.exception("audit %s not recorded", operation)
        return None


def _status_for(exc):
    """HTTP status for the platform's answer: the instance failing is a bad gateway (502); the
    instance refusing what was asked (wrong code, unknown target, account offline) is 400/404/409."""
    if exc.transient or exc.is_transport or exc.code in (protocol.ErrorCode.UNAUTHORIZED,
                                     protocol.ErrorCode.INVALID_RESPONSE,
                                     protocol.ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                                     protocol.ErrorCode.CLIENT_VERSION_MISMATCH):
        return 502
    if exc.code == protocol.ErrorCode.TARGET_NOT_FOUND:
        return 404
    if exc.code == protocol.ErrorCode.INVALID_REQUEST:
        return 400
    return 409


def _call(instance, command, *args, **kwargs):
    """Run one client command; InstanceError is recorded and turned into a ServiceError."""
    client = client_for(instance)
    try:
        return getattr(client, command)(*args, **kwargs)
    except InstanceError as exc:
        record_instance_error(instance, exc)
        raise ServiceError(
            exc.user_message,  # translated; str(exc) (technical) is kept in the log
            code=exc.public_code,
            status=_status_for(exc),
        ) from exc
    finally:
        close = getattr(client, "close", None)
        if close:
            close()


def webhook_url(instance):
    base = getattr(settings, "PLATFORM_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    return base + reverse("api:instance-events", kwargs={"instance_uuid": instance.instance_uuid})


def webhook_batch_max():
    """The most events the webhook takes in one request (settings, within the protocol's cap)."""
    return max(1, min(protocol.MAX_WEBHOOK_BATCH,
                      int(getattr(settings, "INSTANCE_WEBHOOK_BATCH_MAX", 1) or 1)))


def takes_webhook_batches(capabilities):
    """Whether a runtime's capabilities list protocol revision 1.2 or later, which knows
    `webhook_batch_max`: an older runtime refuses unknown configuration keys."""
    for version in capabilities.get("protocol_versions") or ():
        try:
            if tuple(int(part) for part in str(version).split(".")[:2]) >= (1, 2):
                return True
        except ValueError:
            continue
    return False


def config_payload(instance, *, webhook_batches=True):
    """The PUT /v1/config body: webhook, heartbeat interval, proxy, rate limits; the webhook's
    batch size only with `webhook_batches` (a runtime of revision 1.2 or later)."""
    payload = {
        "instance_id": instance.instance_uuid,
        "webhook_url": instance.webhook_url or webhook_url(instance),
        "webhook_secret": get_config(instance, WEBHOOK_SECRET_KEY),
        "heartbeat_interval_s": instance.heartbeat_interval,
        "proxy": None,
        "clear_proxy": True,
    }
    if instance.proxy_host and instance.proxy_port:
        payload["proxy"] = {
            "host": instance.proxy_host,
            "port": instance.proxy_port,
            "username": instance.proxy_username,
            "password": instance.proxy_password_encrypted,
        }
        payload["clear_proxy"] = False
    limits = {}
    for config in InstanceConfig.objects.filter(
        instance=instance, config_key__startswith=RATE_LIMIT_PREFIX
    ):
        name = config.config_key[len(RATE_LIMIT_PREFIX):]
        if name in protocol.RATE_LIMITS["properties"]:
            limits[name] = config_value(config)
    if limits:
        payload["rate_limits"] = limits
    batch_max = webhook_batch_max()
    if batch_max > 1 and webhook_batches:  # revision 1.2: absent, one event a request
        payload["webhook_batch_max"] = batch_max
    services = get_config(instance, PUPPET_SERVICES_KEY)
    if services:
        payload["puppet_services"] = services
    return payload


def push_config(instance):
    """Send the configuration to the instance; returns the instance's answer."""
    try:
        batches = webhook_batch_max() > 1 and takes_webhook_batches(_call(instance, "capabilities"))
        result = _call(instance, "push_config", **config_payload(instance, webhook_batches=batches))
    except ServiceError as exc:
        audit("instance.push_config", instance, error=exc.message)
        raise
    audit("instance.push_config", instance, new_values={"applied": result.get("applied")})
    WeworkInstance.all_objects.filter(pk=instance.pk).update(error_message=None)
    instance.error_message = None
    return result


def set_puppet_services(instance, services):
    """The puppet-service bridge's tokens (a list of {token, endpoint, ca_file?, server_name?}):
    stored encrypted, `max_accounts` set to their number, pushed (docs/bridge.md). Adding or
    removing a token is this call with the new list. The audit names endpoints, never tokens."""
    errors = protocol.schema_errors("request", "push_config", {"puppet_services": services})
    if errors:
        raise ServiceError(errors[0], code="invalid", status=400)
    set_config(instance, PUPPET_SERVICES_KEY, services, config_type=ConfigType.JSON, encrypted=True,
               description="puppet-service tokens of the bridge")
    WeworkInstance.all_objects.filter(pk=instance.pk).update(max_accounts=len(services), updated_at=timezone.now())
    instance.max_accounts = len(services)
    audit("instance.puppet_services", instance,
          new_values={"endpoints": [s["endpoint"] for s in services], "tokens": len(services)})
    return push_config(instance)


def restart_instance(instance, *, reason=None):
    """Ask the instance to restart its client; counts restart_count and last_restart_time."""
    try:
        result = _call(instance, "restart", reason=reason)
    except ServiceError as exc:
        audit("instance.restart", instance, error=exc.message)
        raise
    audit("instance.restart", instance, new_values={"reason": reason})
    now = timezone.now()
    with transaction.atomic():
        WeworkInstance.all_objects.filter(pk=instance.pk).update(
            restart_count=F("restart_count") + 1, last_restart_time=now, updated_at=now
        )
    instance.refresh_from_db(fields=["restart_count", "last_restart_time"])
    return result
