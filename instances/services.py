"""Domain logic of instances: configuration, registration, commands (restart, push config),
webhook intake (signature, replay refusal, de-duplication, sequence gaps) and health.

Views, API viewsets, Celery tasks and management commands call these functions; they hold no
logic of their own. Account-level events (logins, account states, contacts, rooms) and message
events are handled by the apps above (contacts, messaging), which register their handlers in
`instances.hooks`; so do the alerts (monitoring).
"""
from __future__ import annotations

import decimal
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from instances import event_failures, hooks, protocol
from instances.exceptions import TRANSPORT_CODES, InstanceError
from wework import audit as audit_port
from wework import metrics as metric_store
from wework import shards
from wework.db.fields import field_cipher
from wework.db.retry import run_idempotent

from .models import (
    ConfigType,
    EventState,
    InstanceConfig,
    InstanceEvent,
    InstanceMonitor,
    InstanceStatus,
    WeworkInstance,
)

logger = logging.getLogger("wework.instances")

#: Configuration keys the platform itself manages (is_system=True).
TOKEN_KEY = "api_token"
WEBHOOK_SECRET_KEY = "webhook_secret"
#: Rate limits pushed to the instance: config key `rate_limits.<name>` (number).
RATE_LIMIT_PREFIX = "rate_limits."
#: The puppet-service bridge's tokens and endpoints (encrypted JSON list; docs/bridge.md).
PUPPET_SERVICES_KEY = "puppet_services"
#: Shown instead of an encrypted value, everywhere (admin, API, exports).
MASK = "********"
#: The instance is offline after this many heartbeat intervals without a heartbeat.
MISSED_HEARTBEATS = protocol.MISSED_HEARTBEATS_OFFLINE


class ServiceError(Exception):
    """A domain operation failed for a reason the user should read (one sentence)."""

    def __init__(self, message, *, code="error", status=400):
        super().__init__(str(message))
        self.message = str(message)
        self.code = code
        self.status = status


# ---------------------------------------------------------------------------------------------
# Typed configuration values
# ---------------------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_config_value(config_type, raw):
    """The Python value of a stored (clear) text value; ValidationError when it does not fit."""
    if raw is None:
        return None
    if config_type == ConfigType.NUMBER:
        try:
            number = decimal.Decimal(str(raw).strip())
        except decimal.InvalidOperation:
            raise ValidationError(_("“%(value)s” is not a number.") % {"value": raw}) from None
        if not number.is_finite():
            raise ValidationError(_("“%(value)s” is not a number.") % {"value": raw})
        return int(number) if number == number.to_integral_value() else float(number)
    if config_type == ConfigType.BOOLEAN:
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValidationError(_("“%(value)s” is not a boolean (true/false).") % {"value": raw})
    if config_type == ConfigType.JSON:
        if not isinstance(raw, str):
            return raw
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ValidationError(_("Not valid JSON: %(error)s") % {"error": exc}) from None
    if config_type == ConfigType.STRING:
        return str(raw)
    raise ValidationError(_("Unknown configuration type “%(type)s”.") % {"type": config_type})


def format_config_value(config_type, value):
    """The text stored for a Python value (validated against the type)."""
    if value is None:
        return None
    if config_type == ConfigType.JSON:
        if isinstance(value, str):
            parse_config_value(config_type, value)
            return value
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if config_type == ConfigType.BOOLEAN:
        return "true" if parse_config_value(config_type, value) else "false"
    if config_type == ConfigType.NUMBER:
        return str(parse_config_value(config_type, value))
    return str(value)


def encrypt_text(text):
    return field_cipher().encrypt(text.encode("utf-8")).decode("ascii")


def decrypt_text(token):
    return field_cipher().decrypt(token.encode("ascii")).decode("utf-8")


def set_config(instance, key, value, *, config_type=ConfigType.STRING, encrypted=False,
               system=False, description=None):
    """Create or update one configuration value (encrypted at rest when `encrypted`)."""
    text = format_config_value(config_type, value)
    if encrypted and text is not None:
        text = encrypt_text(text)
    defaults = {
        "config_value": text,
        "config_type": config_type,
        "is_encrypted": encrypted,
        "is_system": system,
    }
    if description is not None:
        defaults["description"] = description
    config, _created = InstanceConfig.objects.update_or_create(
        instance=instance, config_key=key, defaults=defaults
    )
    if key == WEBHOOK_SECRET_KEY:
        transaction.on_commit(forget_secrets)
    return config


def config_value(config):
    """The clear Python value of a config row (decrypted when encrypted)."""
    raw = config.config_value
    if raw is None:
        return None
    if config.is_encrypted:
        raw = decrypt_text(raw)
    return parse_config_value(config.config_type, raw)


def get_config(instance, key, default=None):
    config = InstanceConfig.objects.filter(instance=instance, config_key=key).first()
    if config is None or config.config_value is None:
        return default
    return config_value(config)


def new_secret():
    return secrets.token_urlsafe(32)


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
            config_key__in=(TOKEN_KEY, client_module.CONFIG_TIMEOUT_S,
                            client_module.CONFIG_CONNECT_TIMEOUT_S),
        )
    }

    def value(key, default):
        config = configs.get(key)
        return config_value(config) if config and config.config_value is not None else default

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
        raise ServiceError(exc.user_message, code=exc.code) from exc


def record_instance_error(instance, exc, *, status=None):
    """Record a failed call on the instance (error_message, optionally the status)."""
    message = str(exc)[:2000]
    if isinstance(exc, InstanceError) and exc.code in TRANSPORT_CODES:
        # Operators read this column: the transport's reason (refused, timed out, what
        # answered) would tell them what listens at an address; the log keeps it.
        logger.warning("instance %s: %s", instance.pk, message)
        message = f"[{exc.code}] {exc.user_message}"[:2000]
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
    if exc.transient or exc.code in (protocol.ErrorCode.UNAUTHORIZED,
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
            exc.user_message,  # translated; str(exc) (technical) is kept on the instance
            code=exc.code,
            status=_status_for(exc),
        ) from exc
    finally:
        close = getattr(client, "close", None)
        if close:
            close()


def webhook_url(instance):
    base = getattr(settings, "PLATFORM_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    return base + reverse("api:instance-events", kwargs={"instance_uuid": instance.instance_uuid})


def config_payload(instance):
    """The PUT /v1/config body: webhook, heartbeat interval, proxy, rate limits."""
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
    services = get_config(instance, PUPPET_SERVICES_KEY)
    if services:
        payload["puppet_services"] = services
    return payload


def push_config(instance):
    """Send the configuration to the instance; returns the instance's answer."""
    try:
        result = _call(instance, "push_config", **config_payload(instance))
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


@dataclass
class Registration:
    instance: WeworkInstance
    created: bool
    pushed: bool
    push_error: str | None = None


def register_instance(*, name, api_url, token, webhook_secret=None, max_accounts=None,
                      heartbeat_interval=None, created_by=None, push=True):
    """Create or update the instance named `name` (or at `api_url`); idempotent.

    Stores the token and the webhook secret encrypted in instance_configs (a new secret is
    generated when none is given and none exists), sets webhook_url from PLATFORM_BASE_URL and
    pushes the configuration to the instance (`push=False` skips it).
    """
    from django.contrib.auth import get_user_model

    if not name or not api_url or not token:
        raise ServiceError(_("Name, API URL and token are required."))
    if max_accounts is not None and max_accounts < 1:
        raise ServiceError(_("max_accounts must be at least 1."))
    with transaction.atomic():
        instance = (
            WeworkInstance.objects.select_for_update().filter(name=name).first()
            or WeworkInstance.objects.select_for_update().filter(api_url=api_url).first()
        )
        created = instance is None
        if created:
            if created_by is None:
                created_by = (
                    get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
                )
            if created_by is None:
                raise ServiceError(
                    _("No administrator exists yet to own the instance; create one first.")
                )
            instance = WeworkInstance(
                instance_uuid=str(shards.new_uuid()), created_by=created_by
            )
        instance.name = name
        instance.api_url = api_url
        if max_accounts is not None:
            instance.max_accounts = max_accounts
        if heartbeat_interval is not None:
            instance.heartbeat_interval = heartbeat_interval
        instance.save()
        instance.webhook_url = webhook_url(instance)
        instance.save(update_fields=["webhook_url", "updated_at"])
        set_config(instance, TOKEN_KEY, token, encrypted=True, system=True,
                   description="Bearer token of the instance API")
        if webhook_secret or get_config(instance, WEBHOOK_SECRET_KEY) is None:
            set_config(instance, WEBHOOK_SECRET_KEY, webhook_secret or new_secret(),
                       encrypted=True, system=True,
                       description="HMAC secret of the instance's webhook deliveries")
    registration = Registration(instance=instance, created=created, pushed=False)
    if push:
        try:
            push_config(instance)
            registration.pushed = True
        except ServiceError as exc:
            registration.push_error = exc.message
    return registration


# ---------------------------------------------------------------------------------------------
# Webhook intake
# ---------------------------------------------------------------------------------------------


@dataclass
class IntakeResult:
    status: int
    body: dict


def _refuse(status, code, message):
    return IntakeResult(status, {"ok": False, "error": {"code": code, "message": str(message)}})


_SECRETS = {}
SECRET_CACHE_SECONDS = 10.0


def _instance_secret(instance_uuid):
    """(instance_id, secret) for a live instance, or (None, None); kept in this process's
    memory (never in Redis) for SECRET_CACHE_SECONDS, so a rotated secret or a deleted instance
    takes effect within seconds."""
    import time

    now = time.monotonic()
    cached = _SECRETS.get(instance_uuid)
    if cached is not None and cached[0] > now:
        return cached[1]
    found = _load_instance_secret(instance_uuid)
    if len(_SECRETS) > 10_000:
        _SECRETS.clear()
    _SECRETS[instance_uuid] = (now + SECRET_CACHE_SECONDS, found)
    return found


def forget_secrets():
    _SECRETS.clear()


def _load_instance_secret(instance_uuid):
    """(instance_id, secret) for a live instance, or (None, None). One query."""
    row = (
        InstanceConfig.objects.filter(
            instance__instance_uuid=instance_uuid,
            instance__deleted_at__isnull=True,
            config_key=WEBHOOK_SECRET_KEY,
        )
        .values_list("instance_id", "config_value", "is_encrypted")
        .first()
    )
    if row is None:
        return None, None
    instance_id, value, encrypted = row
    if value and encrypted:
        value = decrypt_text(value)
    return instance_id, value


def receive_webhook(instance_uuid, body, headers):
    """Check, store and enqueue one webhook delivery. Never raises for bad input.

    401: unsigned, bad signature, stale timestamp. 400: not JSON or not a protocol event.
    404: unknown instance. 200 with duplicate=true: an event id already received (replay).
    202: accepted; processing happens in Celery.
    """
    instance_id, secret = _instance_secret(str(instance_uuid))
    if instance_id is None:
        return _refuse(404, "unknown_instance", _("No instance with this id accepts events."))
    try:
        protocol.check_signature(
            body,
            secret,
            headers.get(protocol.TIMESTAMP_HEADER),
            headers.get(protocol.SIGNATURE_HEADER),
        )
    except protocol.SignatureError as exc:
        return _refuse(401, exc.reason, _("The delivery is not signed correctly (%(reason)s).")
                       % {"reason": exc.reason})
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
        return _refuse(400, "invalid_json", _("The body is not valid JSON."))
    if not isinstance(event, dict):
        return _refuse(400, "invalid_event", _("The body must be a JSON object."))
    errors = protocol.event_errors(event)
    if errors:
        return IntakeResult(400, {"ok": False, "error": {
            "code": "invalid_event", "message": _("The event does not follow the protocol."),
            "fields": errors[:20]}})
    # The envelope's instance_id is the instance's own name for itself until the platform's
    # id is pushed (events queued before registration carry the old one): the signature, made
    # with this instance's secret, is what authenticates the sender.
    header_id = headers.get(protocol.EVENT_ID_HEADER)
    if header_id and header_id != event["event_id"]:
        return _refuse(400, "event_id_mismatch", _("X-Event-Id differs from the body's event_id."))
    stored, duplicate = store_event(instance_id, event)
    if duplicate:
        return IntakeResult(200, {"ok": True, "duplicate": True, "event_id": event["event_id"]})
    enqueue_event(stored.pk)
    return IntakeResult(202, {"ok": True, "event_id": event["event_id"]})


def store_event(instance_id, event, *, replayed=False):
    """Insert the event into the inbox; (row, duplicate). The unique key decides duplicates."""
    row = InstanceEvent(
        instance_id=instance_id,
        event_id=event["event_id"],
        seq=event["seq"],
        event_type=event["type"],
        account_wxid=event.get("account_id"),
        payload=event,
        ts_ms=event["ts_ms"],
        replayed=replayed,
    )
    try:
        with transaction.atomic():
            # bulk_create: one INSERT and no model signals (the inbox is bookkeeping, not an
            # audited change; the audit log records what the events change).
            InstanceEvent.objects.bulk_create([row])
    except IntegrityError:
        return None, True
    if row.pk is None:  # backends that cannot return ids from a bulk insert
        row.pk = InstanceEvent.objects.filter(
            instance_id=instance_id, event_id=row.event_id).values_list("pk", flat=True).get()
    return row, False


def enqueue_event(event_pk):
    from .tasks import process_event

    transaction.on_commit(lambda: process_event.delay(event_pk))


def process_event(event_pk):
    """Apply one stored event (claimed once; failures recorded on the row, not lost)."""
    now = timezone.now()
    claimed = InstanceEvent.objects.filter(
        pk=event_pk, state__in=(EventState.PENDING, EventState.FAILED)
    ).update(state=EventState.PROCESSING, attempts=F("attempts") + 1, claimed_at=now)
    if not claimed:
        return None
    row = InstanceEvent.objects.select_related("instance").get(pk=event_pk)
    try:
        ensure_shards_for(row.instance, row.event_type)
        # Every handler is idempotent: a deadlock or a lost connection is retried at once.
        run_idempotent(lambda: dispatch_event(row.instance, row.payload), name=f"event {row.event_type}")
    except (ServiceError, ValidationError, InstanceError, LookupError) as exc:
        InstanceEvent.objects.filter(pk=row.pk).update(
            state=EventState.FAILED, error=str(exc)[:2000], processed_at=timezone.now()
        )
        logger.warning("event %s (%s) failed: %s", row.event_id, row.event_type, exc)
    except Exception as exc:  # recorded on the row: never left PROCESSING
        transient = event_failures.is_transient(exc)
        if not transient:
            logger.exception("event %s (%s) failed", row.event_id, row.event_type)
        try:
            event_failures.record_failure(row, exc, transient=transient)
        except Exception:  # noqa: BLE001 - the database is away: the stuck-event sweep retries
            logger.warning("event %s left processing: its failure could not be recorded", row.event_id)
            return None
    else:
        InstanceEvent.objects.filter(pk=row.pk).update(
            state=EventState.DONE, error=None, processed_at=timezone.now()
        )
    if not row.replayed:
        check_sequence(row)
    return row.pk


def ensure_shards_for(instance, event_type):
    """Create the shards an event writes to before its transaction opens.

    On MySQL/MariaDB the shard layer creates tables on a separate connection; a foreign key
    to a table that the open transaction has read or written would wait for that transaction's
    metadata lock, which is held until it ends: create first, then open the transaction. The
    apps that own the tables register what to create (instances.hooks).
    """
    if event_type == protocol.EventType.INSTANCE_HEARTBEAT:
        shards.model_for(InstanceMonitor)
    hooks.prepare_shards(event_type, instance.pk)


def dispatch_event(instance, event):
    """Route an event to its handler: the instance's own, else the one an app registered."""
    kind = event["type"]
    handler = INSTANCE_HANDLERS.get(kind) or hooks.event_handler(kind)
    if handler is None:
        logger.info("no handler for instance event %s", kind)
        return None
    return handler(instance, event)


def check_sequence(row):
    """Schedule a replay when the events before this one have a hole."""
    previous = (
        InstanceEvent.objects.filter(instance_id=row.instance_id, seq__lt=row.seq)
        .aggregate(m=Max("seq"))["m"]
    )
    if previous is None or previous >= row.seq - 1:
        return False
    if not cache.add(f"instances:replay:{row.instance_id}", previous, timeout=15):
        return False
    from .tasks import replay_events

    transaction.on_commit(lambda: replay_events.delay(row.instance_id, previous))
    return True


def replay_events(instance, after_seq, *, max_pages=20):
    """Fetch events after `after_seq` from the instance and process the missing ones."""
    fetched = 0
    for _page in range(max_pages):
        data = _call(instance, "events_after", after_seq)
        for event in data.get("events", []):
            if protocol.event_errors(event):
                logger.warning("replayed event refused: %s", event.get("event_id"))
                continue
            row, duplicate = store_event(instance.pk, event, replayed=True)
            if not duplicate:
                process_event(row.pk)
                fetched += 1
        after_seq = data.get("last_seq", after_seq)
        if not data.get("has_more"):
            break
    return fetched


#: How long an event may stay PROCESSING before the sweep hands it back (handlers take seconds).
PROCESSING_TIMEOUT = timedelta(minutes=3)


def retry_stuck_events(*, older_than=timedelta(minutes=2), limit=500):
    """Re-enqueue events left pending (lost task) or processing (killed worker)."""
    cutoff = timezone.now() - older_than
    pending = list(
        InstanceEvent.objects.filter(state=EventState.PENDING, received_at__lt=cutoff)
        .values_list("pk", flat=True)[:limit]
    )
    # A claim this old belongs to a worker that died (its failures are recorded otherwise).
    stuck = InstanceEvent.objects.filter(
        state=EventState.PROCESSING, claimed_at__lt=timezone.now() - PROCESSING_TIMEOUT
    ).update(state=EventState.PENDING)
    from .tasks import process_event as task

    for pk in pending:
        task.delay(pk)
    return len(pending) + stuck


def prune_events(*, keep_days=7):
    cutoff = timezone.now() - timedelta(days=keep_days)
    deleted, _detail = InstanceEvent.objects.filter(
        state=EventState.DONE, received_at__lt=cutoff
    ).delete()
    return deleted


# ---------------------------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------------------------


def fire_alert(instance, kind, message, *, level="ERROR"):
    """Raise the alert `instance.<kind>` for this instance (monitoring app); never raises."""
    alerts = hooks.alerts()
    if alerts is None:
        return None
    try:
        return alerts.fire_alert(
            f"instance.{kind}", source_type="instance", source_id=instance.pk,
            title=str(message)[:200], message=str(message), level=level.upper(),
            instance_id=instance.pk,
        )
    except Exception:  # an alert must never undo the state change that caused it
        logger.exception("alert instance.%s for instance %s not recorded", kind, instance.pk)
        return None


def resolve_alert(instance, kind):
    alerts = hooks.alerts()
    if alerts is None:
        return None
    try:
        return alerts.resolve_alert(f"instance.{kind}", source_type="instance",
                                    source_id=instance.pk)
    except Exception:
        logger.exception("alert instance.%s for instance %s not resolved", kind, instance.pk)
        return None


def handle_heartbeat(instance, event):
    data = event["data"]
    now = timezone.now()
    was = instance.status
    fields = {
        "last_heartbeat": now,
        "version": (data.get("client_version") or "")[:20] or None,
        "updated_at": now,
    }
    if instance.status != InstanceStatus.MAINTENANCE:
        if data.get("client_running", True):
            fields["status"] = InstanceStatus.ONLINE
            if was != InstanceStatus.ONLINE:
                fields["error_message"] = None
        else:
            fields["status"] = InstanceStatus.ERROR
            fields["error_message"] = _("The WeCom client is not running on the instance.")
    for key, value in fields.items():
        setattr(instance, key, value)
    write_metrics(instance, data, now)
    # Lock order (docs/messaging.md, "Lock order"): account rows before their instance's row,
    # as message counting and the account recount take them.
    hooks.report_accounts(instance, data.get("accounts", []))
    WeworkInstance.all_objects.filter(pk=instance.pk).update(**fields)
    if was != InstanceStatus.ONLINE and fields.get("status") == InstanceStatus.ONLINE:
        transaction.on_commit(lambda: _resolve_back_online(instance))


def write_metrics(instance, data, when):
    metrics = dict(data.get("metrics") or {})
    metrics.setdefault("queue_depth", data.get("queue_depth", 0))
    metrics["uptime_s"] = data.get("uptime_s", 0)
    metrics["accounts_online"] = sum(
        1 for a in data.get("accounts", []) if a.get("status") == "online"
    )
    return metric_store.record_metrics(instance, metrics, when)


def handle_started(instance, event):
    now = timezone.now()
    fields = {"last_heartbeat": now, "updated_at": now}
    if instance.status != InstanceStatus.MAINTENANCE:
        fields["status"] = InstanceStatus.ONLINE
        fields["error_message"] = None
    version = event["data"].get("client_version")
    if version:
        fields["version"] = version[:20]
    WeworkInstance.all_objects.filter(pk=instance.pk).update(**fields)
    if instance.status != InstanceStatus.ONLINE and fields.get("status") == InstanceStatus.ONLINE:
        # A restarted instance reports instance.started before its first heartbeat: the
        # heartbeat then finds it online already, so the outage's alerts are resolved here.
        transaction.on_commit(lambda: _resolve_back_online(instance))


#: An `instance.client_exited` with reason "restart" this soon after an operator's restart is
#: that restart: no error, no alert.
PLANNED_RESTART_WINDOW = timedelta(minutes=5)


def is_planned_restart(instance, reason, now=None):
    now = now or timezone.now()
    return (reason == "restart" and instance.last_restart_time is not None
            and now - instance.last_restart_time <= PLANNED_RESTART_WINDOW)


def handle_client_exited(instance, event):
    """The client exited. After an operator's own restart this is expected: the instance waits
    for `instance.started` without an error or an alert. Otherwise it is an error, with the
    alert `instance.client_exited`, resolved when the instance is back (started or a heartbeat
    with the client running)."""
    reason = event["data"].get("reason") or "unknown"
    hooks.instance_went_offline(instance)
    if is_planned_restart(instance, reason):
        logger.info("instance %s: client exited for the restart an operator asked for", instance.pk)
        return
    message = _("The WeCom client exited: %(reason)s") % {"reason": reason}
    record_instance_error(instance, message, status=InstanceStatus.ERROR)
    transaction.on_commit(lambda: fire_alert(instance, "client_exited", message))


def _resolve_back_online(instance):
    """The instance works again: the alerts of its outage close."""
    resolve_alert(instance, "offline")
    resolve_alert(instance, "client_exited")


def handle_stream_gap(instance, event):
    """The runtime lost events it can never replay (a puppet-service provider without resume):
    an alert naming the window, so an operator knows what to check by hand."""
    data = event["data"]
    start = datetime.fromtimestamp(data["from_ms"] / 1000, tz=dt_timezone.utc)
    end = datetime.fromtimestamp(data["to_ms"] / 1000, tz=dt_timezone.utc)
    message = _("Events lost between %(start)s and %(end)s (account %(account)s): %(detail)s") % {
        "start": start.isoformat(timespec="seconds"), "end": end.isoformat(timespec="seconds"),
        "account": data.get("account_id") or "-", "detail": data.get("detail") or ""}
    transaction.on_commit(lambda: fire_alert(instance, "stream_gap", message, level="WARNING"))


INSTANCE_HANDLERS = {
    protocol.EventType.INSTANCE_STREAM_GAP: handle_stream_gap,
    protocol.EventType.INSTANCE_HEARTBEAT: handle_heartbeat,
    protocol.EventType.INSTANCE_STARTED: handle_started,
    protocol.EventType.INSTANCE_CLIENT_EXITED: handle_client_exited,
}


def mark_silent_instances_offline(now=None):
    """Instances online but silent for MISSED_HEARTBEATS intervals go offline (with an alert)."""
    now = now or timezone.now()
    marked = []
    candidates = WeworkInstance.objects.filter(
        status__in=(InstanceStatus.ONLINE, InstanceStatus.ERROR)
    ).only("pk", "name", "status", "heartbeat_interval", "last_heartbeat")
    for instance in candidates:
        interval = max(int(instance.heartbeat_interval or 30), 1)
        deadline = now - timedelta(seconds=interval * MISSED_HEARTBEATS)
        if instance.last_heartbeat is not None and instance.last_heartbeat >= deadline:
            continue
        message = _("No heartbeat for %(seconds)d seconds (%(count)d intervals).") % {
            "seconds": interval * MISSED_HEARTBEATS, "count": MISSED_HEARTBEATS}
        with transaction.atomic():
            changed = WeworkInstance.objects.filter(
                pk=instance.pk, status=instance.status,
                last_heartbeat=instance.last_heartbeat,
            ).update(status=InstanceStatus.OFFLINE, error_message=message, updated_at=now)
            if not changed:
                continue
            hooks.instance_went_offline(instance)
        fire_alert(instance, "offline", f"{instance.name}: {message}")
        marked.append(instance.pk)
    return marked


#: An offline instance is probed at most this often (seconds) by reconnect_offline_instances.
RECONNECT_PROBE_INTERVAL_S = 60


def reconnect_offline_instances():
    """Offline instances that answer again get their configuration pushed (beat).

    A runtime that restarted comes back without the platform's webhook settings, so it never
    calls in and stays offline, with its alert open, until someone pushes the configuration. Here
    each offline instance is probed (`GET /v1/health`, short timeouts, no retries) at most once a
    RECONNECT_PROBE_INTERVAL_S; one that answers gets `PUT /v1/config` (audited like the admin
    action), after which its heartbeats bring it back online and resolve the alert. Returns the
    ids of the instances pushed to.
    """
    from django.core.cache import cache

    pushed = []
    offline = WeworkInstance.objects.filter(status=InstanceStatus.OFFLINE).exclude(api_url="")
    for instance in offline.order_by("pk")[:500]:
        if not cache.add(f"wework:instances:probe:{instance.pk}", 1, timeout=RECONNECT_PROBE_INTERVAL_S):
            continue  # probed recently (by this or another worker)
        try:
            client = client_for(instance, timeout=3.0, connect_timeout=2.0, max_retries=0)
        except ServiceError:
            continue
        try:
            client.health()
        except InstanceError:
            continue  # still away
        finally:
            client.close()
        try:
            push_config(instance)
        except ServiceError:
            continue  # recorded on the instance and in the audit log by push_config
        logger.info("instance %s answers again: configuration pushed", instance.pk)
        pushed.append(instance.pk)
    return pushed

