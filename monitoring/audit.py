"""The audit trail (`audit_logs`): who changed what, from where, with old and new values.

Public API (other apps call these):

- `record(operation, *, resource_type, resource_id, resource_name, operation_type,
  old_values=None, new_values=None, result="SUCCESS", error_message=None, extra=None)` writes one
  audit row, taking who/where from the current actor context. Secrets in the values are masked.
- `actor_context(user=None, ip=None, user_agent=None, session_id=None, request_id=None,
  source="command", **extra)` — a context manager that sets who is acting for the code inside
  (commands, tasks, scripts). The request middleware sets it for admin/API requests, the
  `AuditedCommand` base for management commands, Celery signals for tasks.

Model changes are recorded automatically (`connect_model_signals()`, called from the app's
ready()): `pre_save` reads the old row (one query by primary key), `post_save`/`post_delete`
write the row inside the same transaction, so a rolled-back change leaves no audit row.
Models or fields are excluded by `settings.AUDIT_EXCLUDED_TABLES` / `AUDIT_IGNORED_FIELDS`.
"""
from __future__ import annotations

import datetime
import decimal
import logging
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from wework.db.fields import EncryptedTextField
from wework.ids import new_uuid

from . import context

if TYPE_CHECKING:
    from .models import AuditLog

logger = logging.getLogger(__name__)

MASK = "******"
OPERATION_TYPES = ("CREATE", "READ", "UPDATE", "DELETE")
RESULTS = ("SUCCESS", "FAILURE")

# Field names that hold secrets wherever they appear (matched on the lower-cased name).
DEFAULT_SECRET_NAME_RE = re.compile(
    r"(^|_)(password|passwd|pwd|secret|token|api_?key|private_?key|access_?key|credentials?"
    r"|salt|otp|totp|cookie|session_?key|webhook_?url|auth)($|_)|password|secret|token"
)
# Tables never audited row by row: the log tables themselves, high-volume telemetry and
# messages (audited by their task/broadcast instead), registry bookkeeping.
DEFAULT_EXCLUDED_TABLES = (
    "audit_logs", "system_logs", "instance_monitors", "instance_events", "messages",
    "message_receivers",
    "shard_tables", "shard_locks", "login_logs", "django_session", "django_migrations", "django_content_type",
    "user_sessions", "otp_", "celery", "django_celery",
)
# Columns whose change alone is bookkeeping, not an audited change: timestamps, counters
# derived from other rows, and the last error the platform observed (health telemetry, in the
# system log).
DEFAULT_IGNORED_FIELDS = frozenset({
    "updated_at", "last_heartbeat", "last_login", "last_login_time", "last_sync_time",
    "login_fail_count", "today_messages", "total_messages", "row_estimate", "current_accounts",
    "error_message",
})


def _secret_name_re():
    extra = getattr(settings, "AUDIT_SECRET_FIELD_NAMES", ())
    if not extra:
        return DEFAULT_SECRET_NAME_RE
    return re.compile(DEFAULT_SECRET_NAME_RE.pattern + "|" + "|".join(map(re.escape, extra)))


def excluded_tables():
    return tuple(getattr(settings, "AUDIT_EXCLUDED_TABLES", DEFAULT_EXCLUDED_TABLES))


def ignored_fields():
    return frozenset(getattr(settings, "AUDIT_IGNORED_FIELDS", DEFAULT_IGNORED_FIELDS))


# --- actor context ------------------------------------------------------------------------------
@contextmanager
def actor_context(user: Any = None, ip: str | None = None, user_agent: str | None = None,
                  session_id: str | None = None, request_id: str | None = None,
                  source: str = "command", instance_id: int | None = None,
                  **extra: Any) -> Iterator[context.Actor]:
    """Run the body as `user` (None: the system) from `source`; nests and restores."""
    if source not in context.SOURCES:
        raise ValueError(f"unknown audit source {source!r}; use one of {context.SOURCES}")
    actor = context.Actor(
        source=source, user=user, ip=ip, user_agent=user_agent, session_id=session_id,
        request_id=request_id or context.new_trace_id(), span_id=context.new_span_id(),
        instance_id=instance_id,
    )
    if extra:
        _EXTRA[id(actor)] = extra
    try:
        with context.use_actor(actor):
            yield actor
    finally:
        _EXTRA.pop(id(actor), None)


_EXTRA: dict[int, dict[str, Any]] = {}  # actor id -> extra info given to actor_context (command name, task id, ...)


# --- values and masking -------------------------------------------------------------------------
def is_secret_field(field):
    if isinstance(field, EncryptedTextField):
        return True
    name = (getattr(field, "attname", None) or getattr(field, "name", "") or "").lower()
    return is_secret_name(name)


def is_secret_name(name: object) -> bool:
    name = str(name).lower()
    return bool(_secret_name_re().search(name))


def json_value(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, _Secret):
        return MASK
    if isinstance(value, dict):
        return {str(k): (MASK if is_secret_name(k) else json_value(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_value(v) for v in value]
    return str(value)


def mask_values(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A copy of a dict with secret keys masked (for callers of `record()`)."""
    if values is None:
        return None
    return {str(k): (MASK if is_secret_name(k) else json_value(v)) for k, v in values.items()}


def _concrete_fields(model):
    return [f for f in model._meta.concrete_fields]


def snapshot(instance, fields=None):
    """{attname: json value} of a model instance (or a `.values()` dict with `fields`),
    secrets masked."""
    if fields is None:
        fields = _concrete_fields(type(instance))
        values = {f.attname: getattr(instance, f.attname, None) for f in fields}
    else:
        values = instance
    data = {}
    for field in fields:
        raw = values.get(field.attname)
        if is_secret_field(field) or _masked_by_flag(values, field):
            data[field.attname] = _Secret(raw) if raw not in (None, "") else raw
        elif isinstance(field, models.DecimalField) and raw is not None:
            # Same text for the value in memory (95) and from the database (95.0000).
            try:
                raw = decimal.Decimal(str(raw)).quantize(
                    decimal.Decimal(1).scaleb(-field.decimal_places))
            except (decimal.InvalidOperation, ValueError):
                pass
            data[field.attname] = json_value(raw)
        else:
            data[field.attname] = json_value(raw)
    return data


class _Secret:
    """A masked value that still compares by content (a digest), so that a changed secret
    shows up in the diff as MASK -> MASK without its value being stored."""

    __slots__ = ("digest",)

    def __init__(self, raw):
        import hashlib

        self.digest = hashlib.sha256(str(raw).encode("utf-8")).digest()

    def __eq__(self, other):
        return isinstance(other, _Secret) and other.digest == self.digest

    def __hash__(self):
        return hash(self.digest)


def _masked_by_flag(values, field):
    # instance_configs: `config_value` is secret when `is_encrypted` is set.
    return field.attname == "config_value" and bool(values.get("is_encrypted"))


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(old_subset, new_subset) of the keys whose values differ."""
    keys = [k for k in new if old.get(k) != new.get(k)]
    return {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}


# --- writing ------------------------------------------------------------------------------------
def _actor_fields():
    actor = context.current()
    if actor is None:
        return {"user_id": None, "username": None, "ip_address": "", "user_agent": None,
                "session_id": None, "request_id": None}, {"source": "system"}
    user = actor.resolved_user()
    session_id = actor.session_id
    if session_id is None and actor.request is not None:
        session = getattr(actor.request, "session", None)
        session_id = getattr(session, "session_key", None)
    extra = {"source": actor.source}
    extra.update(_EXTRA.get(id(actor), {}))
    return {
        "user_id": getattr(user, "pk", None) if user is not None else None,
        "username": (str(user.get_username())[:50] if user is not None else None),
        "ip_address": actor.ip or "",
        "user_agent": actor.user_agent,
        "session_id": (session_id or None) and str(session_id)[:128],
        "request_id": (actor.request_id or None) and str(actor.request_id)[:64],
    }, extra


def record(operation: str, *, resource_type: str, resource_id: Any, resource_name: str | None,
           operation_type: str, old_values: Mapping[str, Any] | None = None,
           new_values: Mapping[str, Any] | None = None, result: str = "SUCCESS",
           error_message: str | None = None, extra: Mapping[str, Any] | None = None,
           ) -> AuditLog | None:
    """Write one audit row for an operation done by the current actor; returns it.

    `operation` is a short name ("instance.restart", "alert.acknowledge"); `operation_type` one of
    CREATE, READ, UPDATE, DELETE; `result` SUCCESS or FAILURE. Keys of old/new values and extra
    that look like secrets are masked. Never raises on a database error when the caller is
    not in a transaction (the failure is logged); inside a transaction it raises, so that the
    change and its audit commit or roll back together.
    """
    from .models import AuditLog

    if operation_type not in OPERATION_TYPES:
        raise ValueError(f"operation_type must be one of {OPERATION_TYPES}")
    if result not in RESULTS:
        raise ValueError(f"result must be one of {RESULTS}")
    who, info = _actor_fields()
    if extra:
        info.update(mask_values(extra))
    row = AuditLog(
        audit_uuid=new_uuid(),
        operation=str(operation)[:100],
        resource_type=str(resource_type)[:50],
        resource_id=None if resource_id is None else str(resource_id)[:100],
        resource_name=None if resource_name is None else str(resource_name)[:200],
        operation_type=operation_type,
        old_values=mask_values(old_values),
        new_values=mask_values(new_values),
        result=result,
        error_message=error_message,
        extra_info=info,
        **who,
    )
    if transaction.get_connection().in_atomic_block:
        row.save(force_insert=True)
        return row
    try:
        row.save(force_insert=True)
    except Exception:  # an audit failure is logged, never breaks the caller
        logger.exception("could not write the audit row for %s", operation)
        return None
    return row


def record_request_failure(request, status, error):
    """A FAILURE row for a write request that was refused or crashed (4xx/5xx)."""
    resolver = getattr(request, "resolver_match", None)
    view = getattr(resolver, "view_name", None) or request.path
    record(
        f"{request.method} {view}"[:100],
        resource_type=(getattr(resolver, "app_name", None) or "request")[:50] or "request",
        resource_id=None,
        resource_name=request.path[:200],
        operation_type={"POST": "CREATE", "DELETE": "DELETE"}.get(request.method, "UPDATE"),
        result="FAILURE",
        error_message=error or f"HTTP {status}",
        extra={"status": status},
    )


# --- model signals ------------------------------------------------------------------------------
def is_audited(sender: type[models.Model]) -> bool:
    """Whether changes of this model are audited row by row (platform apps, tables not
    excluded by AUDIT_EXCLUDED_TABLES)."""
    meta = sender._meta
    if meta.abstract:
        return False
    if getattr(settings, "AUDIT_MODEL_CHANGES", True) is False:
        return False
    app_label = meta.app_label
    if app_label not in _platform_apps():
        return False
    table = meta.db_table
    return not table.startswith(excluded_tables())


def _platform_apps():
    return tuple(getattr(settings, "AUDIT_APPS", ("accounts", "instances", "contacts",
                                                    "messaging", "monitoring", "scrm", "auth")))


def resource_type_of(model: type[models.Model]) -> str:
    return model._meta.db_table[:50]


def _resource_name(instance):
    try:
        return str(instance)[:200]
    except Exception:  # noqa: BLE001 - a model's __str__ may fail on a half-loaded row
        return None


def _on_pre_save(sender, instance, raw=False, using=None, update_fields=None, **kwargs):
    if raw or not is_audited(sender) or instance._state.adding or instance.pk is None:
        return
    fields = _concrete_fields(sender)
    if update_fields:
        wanted = set(update_fields) | {sender._meta.pk.attname, "is_encrypted"}
        fields = [f for f in fields if f.attname in wanted or f.name in wanted]
    old = (sender._base_manager.using(using).filter(pk=instance.pk)
           .values(*[f.attname for f in fields]).first())
    instance._audit_old = snapshot(old, fields) if old is not None else None


def _update_row(sender, old, new):
    """(operation type, old values, new values) of an update, or None when only bookkeeping
    columns changed."""
    old_values, new_values = diff(old, new)
    ignored = ignored_fields()
    if not set(new_values) - ignored:
        return None
    old_values = {k: v for k, v in old_values.items() if k not in ignored}
    new_values = {k: v for k, v in new_values.items() if k not in ignored}
    # A soft delete is a delete for the audit trail; a restore an update.
    if "deleted_at" in new_values and new_values["deleted_at"] and not old_values.get("deleted_at"):
        return "DELETE", old_values, new_values
    return "UPDATE", old_values, new_values


def _on_post_save(sender, instance, created, raw=False, using=None, update_fields=None,
                  **kwargs):
    if raw or not is_audited(sender):
        return
    old = instance.__dict__.pop("_audit_old", None)
    new = snapshot(instance)
    if created or old is None:
        _write_model_row(sender, instance, "CREATE", None, new, using)
        return
    if update_fields:
        keep = {a for a in new if a in update_fields or a.removesuffix("_id") in update_fields}
        new = {k: v for k, v in new.items() if k in keep}
    change = _update_row(sender, old, new)
    if change is not None:
        _write_model_row(sender, instance, *change, using)


def record_rows_changed(model: type[models.Model], before: Sequence[models.Model],
                        after: Sequence[models.Model]) -> int:
    """Audit rows changed in bulk (`QuerySet.update()`): one row per changed row, as `save()`
    would write; `before`/`after` are the instances read before and after. Returns how many
    audit rows were written. Called through `wework.audit` by code below this app."""
    if not is_audited(model):
        return 0
    from .models import AuditLog

    old_by_pk = {row.pk: snapshot(row) for row in before}
    who, info = _actor_fields()
    rows = []
    for instance in after:
        old = old_by_pk.get(instance.pk)
        if old is None:
            continue
        change = _update_row(model, old, snapshot(instance))
        if change is None:
            continue
        op_type, old_values, new_values = change
        rows.append(AuditLog(
            audit_uuid=new_uuid(),
            operation=f"{model._meta.model_name}.{op_type.lower()}"[:100],
            resource_type=resource_type_of(model),
            resource_id=str(instance.pk)[:100],
            resource_name=(_resource_name(instance) or None),
            operation_type=op_type,
            old_values=mask_values(old_values),
            new_values=mask_values(new_values),
            result="SUCCESS",
            extra_info=dict(info, bulk=True),
            **who,
        ))
    AuditLog.objects.bulk_create(rows)
    return len(rows)


def _on_post_delete(sender, instance, using=None, **kwargs):
    if not is_audited(sender):
        return
    _write_model_row(sender, instance, "DELETE", snapshot(instance), None, using)


def _write_model_row(sender, instance, op_type, old_values, new_values, using):
    label = sender._meta.model_name
    try:
        with transaction.atomic(using=using, savepoint=True):
            record(
                f"{label}.{op_type.lower()}",
                resource_type=resource_type_of(sender),
                resource_id=instance.pk,
                resource_name=_resource_name(instance),
                operation_type=op_type,
                old_values=old_values,
                new_values=new_values,
            )
    except Exception:  # auditing must not break the change itself
        logger.exception("could not audit %s %s", op_type, sender._meta.label)


def _on_m2m_changed(sender, instance, action, reverse, model, pk_set, using=None, **kwargs):
    """user.groups / user.user_permissions / other plain many-to-many edits (admin widgets)."""
    if action not in ("post_add", "post_remove", "post_clear") or reverse:
        return
    owner = type(instance)
    if not is_audited(owner):
        return
    field = next((f.name for f in owner._meta.many_to_many
                  if f.remote_field.through is sender), sender._meta.model_name)
    ids = sorted(pk_set or [])
    if action == "post_add":
        old_values, new_values = None, {f"{field}_added": ids}
    elif action == "post_remove":
        old_values, new_values = {f"{field}_removed": ids}, None
    else:
        old_values, new_values = {field: "cleared"}, None
    _write_model_row(owner, instance, "UPDATE", old_values, new_values, using)


_CONNECTED = False


def connect_model_signals():
    global _CONNECTED
    if _CONNECTED:
        return
    pre_save.connect(_on_pre_save, dispatch_uid="monitoring.audit.pre_save")
    post_save.connect(_on_post_save, dispatch_uid="monitoring.audit.post_save")
    post_delete.connect(_on_post_delete, dispatch_uid="monitoring.audit.post_delete")
    m2m_changed.connect(_on_m2m_changed, dispatch_uid="monitoring.audit.m2m_changed")
    _CONNECTED = True
