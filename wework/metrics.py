"""Instance metrics: the one writer of samples into `instance_monitors` (weekly shards).

Instances write the samples of their heartbeats here and monitoring writes the ones it is
handed (`monitoring.services.record_metrics`); metric rules read them back. The table's model
belongs to the `instances` app, which sits above the core: it is named by its label (as
`AUTH_USER_MODEL` names the user model), so that the core never imports it.
"""
from __future__ import annotations

import datetime
import decimal
from collections.abc import Mapping
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import models
from django.utils import timezone

from wework import shards

METRICS_MODEL = "instances.InstanceMonitor"

# Metrics a rule may watch: name -> unit. Instances report cpu, memory, queue_depth and
# whatever else they like; settings.MONITORING_EXTRA_METRICS adds names.
KNOWN_METRICS = {
    "cpu": "%",
    "memory": "MB",
    "memory_percent": "%",
    "disk_percent": "%",
    "queue_depth": "events",
    "uptime_s": "s",
    "accounts_online": "accounts",
    "network_in_kbps": "kbps",
    "network_out_kbps": "kbps",
    "latency_ms": "ms",
}

#: DECIMAL(15,4): values at or beyond this do not fit the column.
_LIMIT = 10**11


def known_metrics() -> dict[str, str]:
    """Metric names with their units (the built-in ones and MONITORING_EXTRA_METRICS)."""
    metrics = dict(KNOWN_METRICS)
    metrics.update(getattr(settings, "MONITORING_EXTRA_METRICS", {}) or {})
    return metrics


def to_decimal(value: Any) -> decimal.Decimal | None:
    """The value as DECIMAL(15,4), or None when it is no number or does not fit."""
    if value is None:
        return None
    try:
        number = decimal.Decimal(str(value)).quantize(decimal.Decimal("0.0001"))
    except (decimal.InvalidOperation, ValueError):
        return None
    return number if abs(number) < _LIMIT else None


def metrics_model() -> type[models.Model]:
    return apps.get_model(METRICS_MODEL)


def record_metrics(instance: models.Model | int, metrics: Mapping[str, Any] | None,
                   collected_at: datetime.datetime | None = None) -> int:
    """Write one sample per metric into the weekly shard; returns how many were written.

    `instance` is an instance or its id. Values that are not numbers (or do not fit
    DECIMAL(15,4)) are skipped.
    """
    when = collected_at or timezone.now()
    units = known_metrics()
    instance_id = getattr(instance, "pk", instance)
    rows = []
    for name, value in sorted((metrics or {}).items()):
        number = to_decimal(value)
        if number is None:
            continue
        rows.append({
            "instance_id": instance_id,
            "metric_name": str(name)[:50],
            "metric_value": number,
            "metric_unit": units.get(name),
            "collected_at": when,
        })
    if rows:
        shards.bulk_create(metrics_model(), rows)
    return len(rows)
