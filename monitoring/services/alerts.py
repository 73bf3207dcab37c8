"""Alerts: fire (deduplicated, notified once), resolve, and the people's acknowledge/resolve.

- `fire_alert(rule_name, *, source_type, source_id, title, message, level="WARNING",
  instance=None, metric_name=None, metric_value=None, threshold_value=None)` -> (record, created)
  `title` and `message` are `wework.i18n.Text`s (or plain strings): the record keeps them in
  the platform's language (LANGUAGE_CODE, whichever process raised the alert) and as their
  source, so each reader sees them in their own language. Raises an alert, deduplicated: while a record of the same rule and source is ACTIVE or
  ACKNOWLEDGED, it is updated (value, message) instead of duplicated, and nobody is notified
  again. A new record is notified (email / WeCom robot) after the transaction commits, by a
  Celery task, so the caller never waits for delivery. A rule that exists and is disabled
  fires nothing (returns (None, False)). `instance` may be a WeworkInstance or its id.
- `resolve_alert(rule_name, *, source_type, source_id, comment="auto-resolved")` -> int
  Resolves the open records of that rule and source (the condition cleared); returns how many.
- `acknowledge(record, user, comment)`, `resolve(record, user, comment)`: people; a record
  whose status does not allow it raises MonitoringError (409).
"""
from __future__ import annotations

import datetime
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import User
from instances.models import WeworkInstance
from monitoring.models import OPEN_STATUSES, AlertLevel, AlertRecord, AlertRule, AlertStatus
from monitoring.services.dashboard import alerts_changed
from monitoring.tasks import notify_alert
from wework import shards
from wework.errors import ConflictError
from wework.i18n import Text
from wework.metrics import to_decimal

logger = logging.getLogger("monitoring.services")

LEVELS = {level.value for level in AlertLevel}
LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL", "ERR": "ERROR"}


class MonitoringError(ConflictError):
    """A monitoring operation was refused for a reason the user should read (409)."""

    code = "alert_state"


def normalize_level(level: str | None) -> str:
    value = str(level or "WARNING").upper()
    value = LEVEL_ALIASES.get(value, value)
    if value not in LEVELS:
        raise ValueError(f"unknown alert level {level!r}; use one of {sorted(LEVELS)}")
    return value


# --- firing and resolving -----------------------------------------------------------------------
class _Lock:
    """A short cross-process lock in the cache (Redis in production) for one rule + source."""

    def __init__(self, key, timeout=10, wait=5.0):
        self.key = f"monitoring:alert-lock:{key}"
        self.timeout = timeout
        self.wait = wait

    def __enter__(self):
        deadline = time.monotonic() + self.wait
        while not cache.add(self.key, 1, timeout=self.timeout):
            if time.monotonic() > deadline:
                break  # proceed: a stale lock must not stop alerting
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        cache.delete(self.key)


def open_records(rule_name: str, source_type: str, source_id: Any):
    return AlertRecord.objects.filter(
        rule_name=rule_name, source_type=source_type,
        source_id=None if source_id is None else str(source_id),
        status__in=OPEN_STATUSES,
    )


def fire_alert(rule_name: str, *, source_type: str, source_id: Any, title: Text | str,
               message: Text | str,
               level: str = "WARNING", instance: Any = None, metric_name: str | None = None,
               metric_value: Any = None, threshold_value: Any = None,
               instance_id: int | None = None, notify: bool = True,
               ) -> tuple[AlertRecord | None, bool]:
    """Raise (or refresh) the alert of `rule_name` for one source; see the module docstring."""
    rule = AlertRule.objects.filter(name=rule_name).first()
    if rule is not None and not rule.is_enabled:
        return None, False
    level = normalize_level(level if rule is None or level != "WARNING" else rule.alert_level)
    if instance is not None and instance_id is None:
        instance_id = getattr(instance, "pk", instance)
    if instance_id is None and source_type == "instance" and str(source_id or "").isdigit():
        # an alert about an instance belongs to it: scoped users see it (and open it) through
        # their instance grants
        if WeworkInstance.all_objects.filter(pk=int(source_id)).exists():
            instance_id = int(source_id)
    source_id = None if source_id is None else str(source_id)[:100]
    with translation.override(settings.LANGUAGE_CODE):  # the same text whoever raises it
        title_text, message_text = str(title), str(message)
    sources = {key: text.to_data() for key, text in (("title", title), ("message", message))
               if isinstance(text, Text)}
    values = {
        "alert_level": level,
        "alert_title": title_text[:200],
        "alert_message": message_text,
        "alert_i18n": sources or None,
        "metric_name": (str(metric_name)[:50] if metric_name else None),
        "metric_value": to_decimal(metric_value),
        "threshold_value": to_decimal(threshold_value),
    }
    with _Lock(f"{rule_name}:{source_type}:{source_id}"), transaction.atomic():
        existing = (open_records(rule_name, source_type, source_id)
                    .select_for_update().order_by("id").first())
        if existing is not None:
            changed = {k: v for k, v in values.items()
                       if v is not None and getattr(existing, k) != v}
            if changed:
                for key, value in changed.items():
                    setattr(existing, key, value)
                existing.save(update_fields=[*changed, "updated_at"])
            return existing, False
        record = AlertRecord.objects.create(
            alert_uuid=shards.new_uuid(),
            rule_name=str(rule_name)[:100],
            source_type=str(source_type)[:50],
            source_id=source_id,
            instance_id=instance_id,
            status=AlertStatus.ACTIVE,
            **values,
        )
        transaction.on_commit(alerts_changed)
        if notify and _should_notify(rule, record):
            transaction.on_commit(lambda: _enqueue_notification(record.pk))
    logger.warning("alert fired: %s (%s %s): %s", rule_name, source_type, source_id, title_text,
                   extra={"action": "alert_fired", "instance_id": instance_id})
    return record, True


def _should_notify(rule, record):
    """No second notification for the same rule and source within the rule's cooldown."""
    cooldown = rule.cooldown_seconds if rule is not None else getattr(
        settings, "ALERT_DEFAULT_COOLDOWN_SECONDS", 600)
    if cooldown <= 0:
        return True
    since = timezone.now() - datetime.timedelta(seconds=cooldown)
    return not AlertRecord.objects.filter(
        rule_name=record.rule_name, source_type=record.source_type, source_id=record.source_id,
        notification_sent=True, notification_sent_at__gte=since,
    ).exclude(pk=record.pk).exists()


def _enqueue_notification(record_id):
    try:
        notify_alert.delay(record_id)
    except Exception:  # a broker hiccup must not break the caller
        logger.exception("could not enqueue the notification of alert %s", record_id)


def resolve_alert(rule_name: str, *, source_type: str, source_id: Any,
                  comment: str = "auto-resolved") -> int:
    """Resolve the open records of a rule and source (by the system); returns how many."""
    now = timezone.now()
    source_id = None if source_id is None else str(source_id)
    with transaction.atomic():
        records = list(open_records(rule_name, source_type, source_id).select_for_update())
        for record in records:
            record.status = AlertStatus.RESOLVED
            record.resolved_at = now
            record.resolved_by = None
            record.resolved_comment = comment
            record.save(update_fields=["status", "resolved_at", "resolved_by",
                                       "resolved_comment", "updated_at"])
        if records:
            transaction.on_commit(alerts_changed)
    if records:
        logger.info("alert resolved: %s (%s %s) x%d", rule_name, source_type, source_id,
                    len(records), extra={"action": "alert_resolved"})
        _notify_resolution(records)
    return len(records)


def _notify_resolution(records):
    """Whoever was told of an alert is told it is over (after the commit, like the alert)."""
    for record in records:
        if record.notification_sent:
            transaction.on_commit(lambda pk=record.pk: _enqueue_notification(pk))


def acknowledge(record: AlertRecord, user: User, comment: str = "") -> AlertRecord:
    """ACTIVE -> ACKNOWLEDGED by a person, with a comment."""
    with transaction.atomic():
        record = AlertRecord.objects.select_for_update().get(pk=record.pk)
        if record.status != AlertStatus.ACTIVE:
            raise MonitoringError(_("Only an active alert can be acknowledged (this one is %(s)s).")
                                  % {"s": record.get_status_display()})
        record.status = AlertStatus.ACKNOWLEDGED
        record.acknowledged_by = user
        record.acknowledged_at = timezone.now()
        record.acknowledged_comment = comment or None
        record.save(update_fields=["status", "acknowledged_by", "acknowledged_at",
                                   "acknowledged_comment", "updated_at"])
        transaction.on_commit(alerts_changed)
    return record


def resolve(record: AlertRecord, user: User, comment: str = "") -> AlertRecord:
    """ACTIVE/ACKNOWLEDGED -> RESOLVED by a person, with a comment."""
    with transaction.atomic():
        record = AlertRecord.objects.select_for_update().get(pk=record.pk)
        if record.status not in OPEN_STATUSES:
            raise MonitoringError(_("This alert is already resolved."))
        record.status = AlertStatus.RESOLVED
        record.resolved_by = user
        record.resolved_at = timezone.now()
        record.resolved_comment = comment or None
        record.save(update_fields=["status", "resolved_by", "resolved_at", "resolved_comment",
                                   "updated_at"])
        transaction.on_commit(alerts_changed)
        _notify_resolution([record])
    return record
