"""Monitoring domain logic: alerts (fire, acknowledge, resolve, evaluate), metrics, dashboard.

Public API for other apps (stable; keyword arguments as shown):

- `fire_alert(rule_name, *, source_type, source_id, title, message, level="WARNING",
  instance=None, metric_name=None, metric_value=None, threshold_value=None)` -> (record, created)
  Raises an alert, deduplicated: while a record of the same rule and source is ACTIVE or
  ACKNOWLEDGED, it is updated (value, message) instead of duplicated, and nobody is notified
  again. A new record is notified (email / WeCom robot) after the transaction commits, by a
  Celery task, so the caller never waits for delivery. A rule that exists and is disabled
  fires nothing (returns (None, False)). `instance` may be a WeworkInstance or its id.
- `resolve_alert(rule_name, *, source_type, source_id, comment="auto-resolved")` -> int
  Resolves the open records of that rule and source (the condition cleared); returns how many.
- `acknowledge(record, user, comment)`, `resolve(record, user, comment)` — people, with audit.
- `record_metrics(instance, metrics, collected_at=None)` — writes samples into the weekly
  `instance_monitors` shard (for callers that do not write them themselves).
- `evaluate_rules(now=None)` — runs every enabled rule once (beat, every minute).
- `dashboard_data(scope=None)` — the admin home page figures, cached briefly (per scope);
  `dashboard_for(user)` — the figures a user may see (every instance for a role grant, the
  instances of their object grants otherwise), or None.
"""
import datetime
import decimal
import hashlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils import translation
from django.utils.translation import gettext as _

from wework import shards

from . import audit
from .models import AlertLevel, AlertRecord, AlertRule, AlertStatus, Comparison, RuleType

logger = logging.getLogger(__name__)

OPEN_STATUSES = (AlertStatus.ACTIVE, AlertStatus.ACKNOWLEDGED)
LEVELS = {level.value for level in AlertLevel}
LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL", "ERR": "ERROR"}

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


class MonitoringError(Exception):
    """A monitoring operation was refused for a reason the user should read."""


def known_metrics():
    metrics = dict(KNOWN_METRICS)
    metrics.update(getattr(settings, "MONITORING_EXTRA_METRICS", {}) or {})
    return metrics


def normalize_level(level):
    value = str(level or "WARNING").upper()
    value = LEVEL_ALIASES.get(value, value)
    if value not in LEVELS:
        raise ValueError(f"unknown alert level {level!r}; use one of {sorted(LEVELS)}")
    return value


def _decimal(value):
    if value is None:
        return None
    try:
        number = decimal.Decimal(str(value)).quantize(decimal.Decimal("0.0001"))
    except (decimal.InvalidOperation, ValueError):
        return None
    return number if abs(number) < 10**11 else None


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


def open_records(rule_name, source_type, source_id):
    return AlertRecord.objects.filter(
        rule_name=rule_name, source_type=source_type,
        source_id=None if source_id is None else str(source_id),
        status__in=OPEN_STATUSES,
    )


def fire_alert(rule_name, *, source_type, source_id, title, message, level="WARNING",
               instance=None, metric_name=None, metric_value=None, threshold_value=None,
               instance_id=None, notify=True):
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
        from django.apps import apps

        if apps.get_model("instances", "WeworkInstance").all_objects.filter(pk=int(source_id)).exists():
            instance_id = int(source_id)
    source_id = None if source_id is None else str(source_id)[:100]
    values = {
        "alert_level": level,
        "alert_title": str(title)[:200],
        "alert_message": str(message),
        "metric_name": (str(metric_name)[:50] if metric_name else None),
        "metric_value": _decimal(metric_value),
        "threshold_value": _decimal(threshold_value),
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
        if notify and _should_notify(rule, record):
            transaction.on_commit(lambda: _enqueue_notification(record.pk))
    logger.warning("alert fired: %s (%s %s): %s", rule_name, source_type, source_id, title,
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
    from .tasks import notify_alert

    try:
        notify_alert.delay(record_id)
    except Exception:  # noqa: BLE001 - a broker hiccup must not break the caller
        logger.exception("could not enqueue the notification of alert %s", record_id)


def resolve_alert(rule_name, *, source_type, source_id, comment="auto-resolved"):
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
        logger.info("alert resolved: %s (%s %s) x%d", rule_name, source_type, source_id,
                    len(records), extra={"action": "alert_resolved"})
    return len(records)


def acknowledge(record, user, comment=""):
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
    return record


def resolve(record, user, comment=""):
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
    return record


# --- metrics --------------------------------------------------------------------------------------
def record_metrics(instance, metrics, collected_at=None):
    """Write one sample per metric into the weekly instance_monitors shard; returns the count.

    Values that are not numbers (or do not fit DECIMAL(15,4)) are skipped.
    """
    from instances.models import InstanceMonitor

    when = collected_at or timezone.now()
    units = known_metrics()
    rows = []
    for name, value in sorted((metrics or {}).items()):
        number = _decimal(value)
        if number is None:
            continue
        rows.append({
            "instance_id": getattr(instance, "pk", instance),
            "metric_name": str(name)[:50],
            "metric_value": number,
            "metric_unit": units.get(name),
            "collected_at": when,
        })
    if rows:
        shards.bulk_create(InstanceMonitor, rows)
    return len(rows)


# --- rule evaluation ------------------------------------------------------------------------------
def compare(value, comparison, threshold):
    value = decimal.Decimal(str(value))
    threshold = decimal.Decimal(str(threshold))
    return {
        Comparison.GT: value > threshold,
        Comparison.GTE: value >= threshold,
        Comparison.LT: value < threshold,
        Comparison.LTE: value <= threshold,
        Comparison.EQ: value == threshold,
        Comparison.NE: value != threshold,
    }[comparison]


def evaluate_rules(now=None, rules=None):
    """Evaluate every enabled rule; returns {rule name: (fired, resolved)}.

    Each rule fires for the sources that meet its condition and resolves the open records of
    sources that no longer do. One failing rule is logged and does not stop the others.
    """
    now = now or timezone.now()
    results = {}
    rules = rules if rules is not None else AlertRule.objects.filter(is_enabled=True)
    for rule in rules:
        try:
            results[rule.name] = evaluate_rule(rule, now)
        except Exception:  # noqa: BLE001
            logger.exception("alert rule %s failed to evaluate", rule.name)
            results[rule.name] = None
    return results


def evaluate_rule(rule, now=None):
    now = now or timezone.now()
    evaluator = EVALUATORS[rule.rule_type]
    firing = evaluator(rule, now)  # {(source_type, source_id): dict(fire_alert kwargs)}
    fired = 0
    for (source_type, source_id), kwargs in firing.items():
        _record, created = fire_alert(rule.name, source_type=source_type, source_id=source_id,
                                level=rule.alert_level, **kwargs)
        fired += int(created)
    resolved = 0
    open_sources = (AlertRecord.objects.filter(rule_name=rule.name, status__in=OPEN_STATUSES)
                    .values_list("source_type", "source_id").distinct())
    for source_type, source_id in list(open_sources):
        if (source_type, source_id) not in firing:
            resolved += resolve_alert(rule.name, source_type=source_type, source_id=source_id,
                                      comment=_("auto-resolved: the condition cleared"))
    return fired, resolved


def _instance_offline(rule, now):
    from instances.models import InstanceStatus, WeworkInstance

    missed = int(rule.threshold_value or 3)
    firing = {}
    rows = (WeworkInstance.objects.exclude(status=InstanceStatus.MAINTENANCE)
            .filter(last_heartbeat__isnull=False)
            .values("id", "name", "heartbeat_interval", "last_heartbeat"))
    for row in rows:
        interval = max(int(row["heartbeat_interval"] or 30), 1)
        silent = (now - row["last_heartbeat"]).total_seconds()
        if silent > missed * interval:
            firing[("instance", str(row["id"]))] = {
                "title": _("Instance %(name)s is offline") % {"name": row["name"]},
                "message": _("No heartbeat for %(s)d s (%(n)d missed heartbeats of %(i)d s).")
                % {"s": silent, "n": silent // interval, "i": interval},
                "instance": row["id"], "metric_name": "silent_seconds",
                "metric_value": int(silent), "threshold_value": missed * interval,
            }
    return firing


def _account_status(rule, now):
    from contacts.models import AccountStatus, WeworkAccount

    firing = {}
    rows = (WeworkAccount.objects
            .filter(status__in=(AccountStatus.ABNORMAL, AccountStatus.BANNED))
            .values("id", "wxid", "nickname", "status", "instance_id"))
    for row in rows:
        label = AccountStatus(row["status"]).label
        name = row["nickname"] or row["wxid"]
        firing[("account", str(row["id"]))] = {
            "title": _("Account %(name)s is %(status)s") % {"name": name, "status": label},
            "message": _("WeCom account %(wxid)s reports status %(status)s.")
            % {"wxid": row["wxid"], "status": label},
            "instance": row["instance_id"],
        }
    return firing


def _task_failure_rate(rule, now):
    from messaging.models import MessageTask

    threshold = rule.threshold_value if rule.threshold_value is not None else 20
    since = now - datetime.timedelta(seconds=rule.window_seconds or 300)
    minimum = int(getattr(settings, "ALERT_TASK_MIN_PROCESSED", 10))
    firing = {}
    rows = (MessageTask.objects
            .filter(Q(started_at__gte=since) | Q(completed_at__gte=since) | Q(status=1))
            .values("id", "task_name", "success_count", "fail_count", "target_count",
                    "account__instance_id"))
    for row in rows:
        processed = (row["success_count"] or 0) + (row["fail_count"] or 0)
        if processed < minimum:
            continue
        rate = decimal.Decimal(row["fail_count"] or 0) * 100 / processed
        if compare(rate, rule.comparison, threshold):
            firing[("message_task", str(row["id"]))] = {
                "title": _("Task %(name)s fails %(rate).1f%% of its sends")
                % {"name": row["task_name"], "rate": rate},
                "message": _("%(f)d of %(p)d sends failed.")
                % {"f": row["fail_count"], "p": processed},
                "metric_name": "failure_rate", "metric_value": rate,
                "threshold_value": threshold,
                # the task's instance: the alert shows on that instance's scoped dashboard
                "instance": row["account__instance_id"],
            }
    return firing


def _metric_threshold(rule, now):
    from instances.models import InstanceMonitor

    window = rule.duration_seconds or rule.window_seconds or 300
    since = now - datetime.timedelta(seconds=window)
    latest, all_match, seen = {}, {}, {}
    for model in shards.shard_models(InstanceMonitor, since=since, until=now +
                                     datetime.timedelta(seconds=1)):
        rows = (model.objects.filter(metric_name=rule.metric_name, collected_at__gte=since,
                                     collected_at__lte=now)
                .values_list("instance_id", "metric_value", "collected_at"))
        for instance_id, value, at in rows:
            match = compare(value, rule.comparison, rule.threshold_value)
            all_match[instance_id] = all_match.get(instance_id, True) and match
            if instance_id not in seen or at >= seen[instance_id]:
                seen[instance_id] = at
                latest[instance_id] = value
    firing = {}
    for instance_id, value in latest.items():
        holds = all_match[instance_id] if rule.duration_seconds else compare(
            value, rule.comparison, rule.threshold_value)
        if holds:
            firing[("instance", str(instance_id))] = {
                "title": _("%(metric)s is %(value)s on instance %(id)s")
                % {"metric": rule.metric_name, "value": value, "id": instance_id},
                "message": _("%(metric)s = %(value)s, threshold %(op)s %(t)s.")
                % {"metric": rule.metric_name, "value": value,
                   "op": Comparison(rule.comparison).label, "t": rule.threshold_value},
                "instance": instance_id, "metric_name": rule.metric_name,
                "metric_value": value, "threshold_value": rule.threshold_value,
            }
    return firing


def _shard_rotation(rule, now):
    """Fires when a time-sharded model has no shard for now or for tomorrow (rotation stalled)."""
    from wework.shards.conf import all_configs

    firing = {}
    for label, conf in all_configs().items():
        if not conf.enabled or not conf.is_time:
            continue
        try:
            base = conf.model
        except LookupError:
            continue
        missing = []
        for when in (now, now + datetime.timedelta(days=1)):
            try:
                shards.model_for(base, when=when, create=False)
            except shards.ShardError:  # missing (or out of the writable range)
                missing.append(timezone.localtime(when).date().isoformat())
        if missing:
            firing[("shard_model", label)] = {
                "title": _("Shard rotation is behind for %(label)s") % {"label": label},
                "message": _("No shard exists for %(days)s: `manage.py shards rotate` has not "
                             "run or failed.") % {"days": ", ".join(missing)},
            }
    return firing


EVALUATORS = {
    RuleType.INSTANCE_OFFLINE: _instance_offline,
    RuleType.ACCOUNT_STATUS: _account_status,
    RuleType.TASK_FAILURE_RATE: _task_failure_rate,
    RuleType.METRIC_THRESHOLD: _metric_threshold,
    RuleType.SHARD_ROTATION: _shard_rotation,
}


def audit_alert_change(record, operation, old_status):
    audit.record(
        operation, resource_type="alert_records", resource_id=record.pk,
        resource_name=record.alert_title, operation_type="UPDATE",
        old_values={"status": old_status}, new_values={"status": record.status},
    )


# --- dashboard ------------------------------------------------------------------------------------
DASHBOARD_CACHE_KEY = "monitoring:dashboard:v1"
#: Either permission shows the dashboard (figures of the instances it covers).
DASHBOARD_PERMISSIONS = ("monitoring.view_alertrecord", "instances.view_weworkinstance")
ALERT_PERMISSION = "monitoring.view_alertrecord"


@dataclass(frozen=True)
class DashboardScope:
    """What a user's dashboard covers.

    `instance_ids` None: every instance (a role grant, today's global dashboard); else the
    instances the user may see through object grants. `alert_instance_ids`: None every alert,
    else the instances whose alerts the user may see (a subset of `instance_ids`).
    """

    instance_ids: frozenset | None
    alert_instance_ids: frozenset | None
    can_see_alerts: bool

    @property
    def is_global(self):
        return self.instance_ids is None

    def cache_key(self, language):
        if self.is_global:
            return f"{DASHBOARD_CACHE_KEY}:{language}"
        # One entry per scope (the figures depend on nothing else): users with the same
        # grants share it, users with other grants never see it.
        described = "i:{};a:{}".format(",".join(map(str, sorted(self.instance_ids))),
                                       ",".join(map(str, sorted(self.alert_instance_ids))))
        digest = hashlib.sha256(described.encode()).hexdigest()[:32]
        return f"{DASHBOARD_CACHE_KEY}:scope:{digest}:{language}"


def dashboard_scope(user):
    """The DashboardScope of `user`, or None when the user may see no dashboard at all."""
    from accounts.scoping import has_global_perm, visible_instance_ids

    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if any(has_global_perm(user, p) for p in DASHBOARD_PERMISSIONS):
        return DashboardScope(None, None, has_global_perm(user, ALERT_PERMISSION))
    alert_ids = frozenset(visible_instance_ids(user, ALERT_PERMISSION) or ())
    ids = alert_ids | frozenset(visible_instance_ids(user, "instances.view_weworkinstance") or ())
    if not ids:
        return None
    return DashboardScope(ids, alert_ids, bool(alert_ids))


def dashboard_for(user, use_cache=True):
    """The dashboard of `user` (figures restricted to what the user may see), or None."""
    scope = dashboard_scope(user)
    if scope is None:
        return None
    data = dict(dashboard_data(use_cache=use_cache, scope=scope))
    data["can_see_alerts"] = scope.can_see_alerts
    if not scope.can_see_alerts:
        data["active_alerts"] = []  # titles only for those who may read the alerts
        if not scope.is_global:
            data["active_alert_counts"], data["active_alert_total"] = {}, 0
    return data


def dashboard_data(use_cache=True, scope=None):
    """Figures for the admin home page, cached for settings.DASHBOARD_CACHE_SECONDS (15 s).

    Without `scope` (or a global one): every instance. With a scoped DashboardScope: only its
    instances, cached under a key of its own.
    """
    scope = scope or DashboardScope(None, None, True)
    ttl = int(getattr(settings, "DASHBOARD_CACHE_SECONDS", 15))
    # Labels are translated when computed: one entry per language.
    key = scope.cache_key(translation.get_language() or settings.LANGUAGE_CODE)
    if use_cache and ttl > 0:
        data = cache.get(key)
        if data is not None:
            return data
    data = _compute_dashboard(scope.instance_ids, scope.alert_instance_ids)
    if ttl > 0:
        cache.set(key, data, ttl)
    return data


def _choice_label(choices, value):
    try:
        return choices(value).label
    except ValueError:
        return value


def _alerts_in(instance_ids):
    """Open alerts, of every source or of the sources below `instance_ids`."""
    qs = AlertRecord.objects.filter(status__in=OPEN_STATUSES)
    if instance_ids is None:
        return qs
    ids = sorted(instance_ids)
    return qs.filter(Q(instance_id__in=ids)
                     | Q(source_type="instance", source_id__in=[str(i) for i in ids]))


def _compute_dashboard(instance_ids=None, alert_instance_ids=None):
    from contacts.models import AccountStatus, WeworkAccount
    from instances.models import InstanceStatus, WeworkInstance
    from messaging.models import Message, MessageTask, TaskStatus

    now = timezone.now()
    local_now = timezone.localtime(now)
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    scoped = instance_ids is not None
    ids = sorted(instance_ids) if scoped else None

    instance_qs = WeworkInstance.objects.all()
    account_qs = WeworkAccount.objects.all()
    task_qs = MessageTask.objects.filter(status=TaskStatus.RUNNING)
    if scoped:
        instance_qs = instance_qs.filter(pk__in=ids)
        account_qs = account_qs.filter(instance_id__in=ids)
        task_qs = task_qs.filter(account__instance_id__in=ids)

    inst = dict(instance_qs.values_list("status").annotate(n=Count("id"))
                .values_list("status", "n"))
    instances = [{"status": s.value, "label": str(s.label), "count": inst.get(s.value, 0)}
                 for s in InstanceStatus]
    acc = dict(account_qs.values_list("status").annotate(n=Count("id"))
               .values_list("status", "n"))
    accounts = [{"status": s.value, "label": str(s.label), "count": acc.get(s.value, 0)}
                for s in AccountStatus]

    # Messages per local hour: one query per message shard overlapping today, counting
    # Snowflake id ranges (the id encodes the time), so it reads the primary key only and
    # sends 24 numbers, not a day of rows. Scoped: the messages of the accounts of its
    # instances (a subquery, deleted accounts included).
    hours = [0] * 24
    buckets = {}
    for hour in range(local_now.hour + 1):
        start = midnight + datetime.timedelta(hours=hour)
        buckets[f"h{hour}"] = shards.id_bounds(since=start,
                                               until=start + datetime.timedelta(hours=1))
    day_low, _day_high = shards.id_bounds(since=midnight)
    for model in shards.shard_models(Message, since=midnight, until=now +
                                     datetime.timedelta(seconds=1)):
        messages = model.objects.filter(id__gte=day_low)
        if scoped:
            messages = messages.filter(account_id__in=WeworkAccount.all_objects.filter(
                instance_id__in=ids).values("id"))
        counts = messages.aggregate(**{
            key: Count("id", filter=Q(id__gte=low, id__lt=high))
            for key, (low, high) in buckets.items()
        })
        for key, value in counts.items():
            hours[int(key[1:])] += value or 0
    running = list(
        task_qs.order_by("-started_at")
        .values("id", "task_name", "progress", "success_count", "fail_count", "target_count")[:10]
    )
    for task in running:
        task["progress"] = float(task["progress"] or 0)
    if alert_instance_ids is not None and not alert_instance_ids:
        active_alerts, alert_counts = [], {}
    else:
        alerts = _alerts_in(alert_instance_ids)
        active_alerts = list(
            alerts.order_by("-created_at")
            .values("id", "alert_level", "alert_title", "status", "created_at", "source_type",
                    "source_id")[:10]
        )
        alert_counts = dict(alerts.values_list("alert_level").annotate(n=Count("id"))
                            .values_list("alert_level", "n"))
    for alert in active_alerts:
        alert["level_label"] = str(_choice_label(AlertLevel, alert["alert_level"]))
        alert["status_label"] = str(_choice_label(AlertStatus, alert["status"]))
    return {
        "generated_at": now,
        "scoped": scoped,
        "instance_ids": ids,
        "instances": instances,
        "instances_online": inst.get(InstanceStatus.ONLINE, 0),
        "instances_offline": sum(v for k, v in inst.items() if k != InstanceStatus.ONLINE),
        "accounts": accounts,
        "messages_today": sum(hours),
        "messages_per_hour": hours[: local_now.hour + 1],
        "running_tasks": running,
        "active_alerts": active_alerts,
        "active_alert_counts": alert_counts,
        "active_alert_total": sum(alert_counts.values()),
    }
