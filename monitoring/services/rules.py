"""Alert rules: each rule type's evaluator, run by beat every minute (`evaluate_rules`).

Each rule fires for the sources that meet its condition and resolves the open records of the
sources that no longer do.
"""
from __future__ import annotations

import datetime
import decimal
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _, gettext_noop

from contacts.models import AccountStatus, WeworkAccount
from instances.models import InstanceMonitor, InstanceStatus, WeworkInstance
from messaging.models import MessageTask
from monitoring.models import OPEN_STATUSES, AlertRecord, AlertRule, Comparison, RuleType
from monitoring.services.alerts import fire_alert, resolve_alert
from wework import shards
from wework.i18n import Text
from wework.shards.conf import all_configs

logger = logging.getLogger("monitoring.services")


#: The rules a new platform starts with (seeded by a migration, `manage.py alerts seed-rules`
#: creates any that are missing). Without a rule of their own, alerts notify the default
#: channels (ALERT_EMAILS, ALERT_DEFAULT_ROBOTS); a rule's channels point it elsewhere.
DEFAULT_RULES: list[dict[str, Any]] = [
    {"name": "instance.offline", "display_name": "Instance offline (missed heartbeats)",
     "rule_type": RuleType.INSTANCE_OFFLINE, "threshold_value": 3, "alert_level": "ERROR"},
    {"name": "account.status", "display_name": "Account abnormal or banned",
     "rule_type": RuleType.ACCOUNT_STATUS, "alert_level": "WARNING"},
    {"name": "task.failure_rate", "display_name": "Message task failure rate above 20%",
     "rule_type": RuleType.TASK_FAILURE_RATE, "threshold_value": 20,
     "comparison": Comparison.GT, "alert_level": "WARNING"},
    {"name": "instance.cpu", "display_name": "Instance CPU above 90% for 5 minutes",
     "rule_type": RuleType.METRIC_THRESHOLD, "metric_name": "cpu", "threshold_value": 90,
     "comparison": Comparison.GT, "duration_seconds": 300, "alert_level": "WARNING"},
    {"name": "shards.rotation", "display_name": "Shard rotation behind",
     "rule_type": RuleType.SHARD_ROTATION, "alert_level": "CRITICAL"},
]


def seed_default_rules(rule_model=AlertRule) -> int:
    """Create the default rules that are missing (never changes an existing one); returns how
    many were created. `rule_model`: a migration's historical model."""
    fields = {f.name for f in rule_model._meta.get_fields()}
    created = 0
    for spec in DEFAULT_RULES:
        defaults = {k: (str(v) if k == "display_name" else v) for k, v in spec.items() if k in fields}
        _rule, was_created = rule_model.objects.get_or_create(name=spec["name"], defaults=defaults)
        created += int(was_created)
    return created


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


def evaluate_rules(now: datetime.datetime | None = None,
                   rules=None) -> dict[str, tuple[int, int] | None]:
    """Evaluate every enabled rule; returns {rule name: (fired, resolved)}.

    Each rule fires for the sources that meet its condition and resolves the open records of
    sources that no longer do. One failing rule is logged and does not stop the others.
    """
    now = now or timezone.now()
    results: dict[str, tuple[int, int] | None] = {}
    rules = rules if rules is not None else AlertRule.objects.filter(is_enabled=True)
    for rule in rules:
        try:
            results[rule.name] = evaluate_rule(rule, now)
        except Exception:
            logger.exception("alert rule %s failed to evaluate", rule.name)
            results[rule.name] = None
    return results


def evaluate_rule(rule: AlertRule, now: datetime.datetime | None = None) -> tuple[int, int]:
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
                "title": Text(gettext_noop("Instance %(name)s is offline"), name=row["name"]),
                "message": Text(
                    gettext_noop("No heartbeat for %(s)d s (%(n)d missed heartbeats of %(i)d s)."),
                    s=int(silent), n=int(silent // interval), i=interval),
                "instance": row["id"], "metric_name": "silent_seconds",
                "metric_value": int(silent), "threshold_value": missed * interval,
            }
    return firing


def _account_status(rule, now):
    firing = {}
    rows = (WeworkAccount.objects
            .filter(status__in=(AccountStatus.ABNORMAL, AccountStatus.BANNED))
            .values("id", "wxid", "nickname", "status", "instance_id"))
    for row in rows:
        label = Text.label(AccountStatus(row["status"]).label)
        name = row["nickname"] or row["wxid"]
        firing[("account", str(row["id"]))] = {
            "title": Text(gettext_noop("Account %(name)s is %(status)s"), name=name, status=label),
            "message": Text(gettext_noop("WeCom account %(wxid)s reports status %(status)s."),
                            wxid=row["wxid"], status=label),
            "instance": row["instance_id"],
        }
    return firing


def _task_failure_rate(rule, now):
    threshold = rule.threshold_value if rule.threshold_value is not None else 20
    since = now - datetime.timedelta(seconds=rule.window_seconds or 300)
    minimum = int(getattr(settings, "ALERT_TASK_MIN_PROCESSED", 10))
    firing = {}
    rows = (MessageTask.objects
            .filter(Q(started_at__gte=since) | Q(completed_at__gte=since) | Q(status=1))
            .values("id", "task_name", "success_count", "fail_count", "target_count", "account_id"))
    failing = []
    for row in rows:
        processed = (row["success_count"] or 0) + (row["fail_count"] or 0)
        if processed < minimum:
            continue
        rate = decimal.Decimal(row["fail_count"] or 0) * 100 / processed
        if compare(rate, rule.comparison, threshold):
            failing.append((row, processed, rate))
    # The tasks' instances, read on the accounts' own database: on per-module databases a
    # values("account__instance_id") joined message_tasks to wework_accounts across two.
    account_ids = {row["account_id"] for row, _processed, _rate in failing}
    instance_of = dict(WeworkAccount._base_manager.filter(pk__in=account_ids).values_list("pk", "instance_id")
                       ) if account_ids else {}
    for row, processed, rate in failing:
        firing[("message_task", str(row["id"]))] = {
            "title": Text(gettext_noop("Task %(name)s fails %(rate).1f%% of its sends"),
                          name=row["task_name"], rate=float(rate)),
            "message": Text(gettext_noop("%(f)d of %(p)d sends failed."),
                            f=row["fail_count"], p=processed),
            "metric_name": "failure_rate", "metric_value": rate,
            "threshold_value": threshold,
            # the task's instance: the alert shows on that instance's scoped dashboard
            "instance": instance_of.get(row["account_id"]),
        }
    return firing


def _metric_threshold(rule, now):
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
                "title": Text(gettext_noop("%(metric)s is %(value)s on instance %(id)s"),
                              metric=rule.metric_name, value=str(value), id=instance_id),
                "message": Text(gettext_noop("%(metric)s = %(value)s, threshold %(op)s %(t)s."),
                                metric=rule.metric_name, value=str(value),
                                op=Text.label(Comparison(rule.comparison).label),
                                t=str(rule.threshold_value)),
                "instance": instance_id, "metric_name": rule.metric_name,
                "metric_value": value, "threshold_value": rule.threshold_value,
            }
    return firing


def _shard_rotation(rule, now):
    """Fires when a time-sharded model has no shard for now or for tomorrow (rotation stalled)."""
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
                "title": Text(gettext_noop("Shard rotation is behind for %(label)s"), label=label),
                "message": Text(gettext_noop("No shard exists for %(days)s: `manage.py shards "
                                             "rotate` has not run or failed."),
                                days=", ".join(missing)),
            }
    return firing


EVALUATORS: dict[str, Callable[[AlertRule, datetime.datetime], dict]] = {
    RuleType.INSTANCE_OFFLINE: _instance_offline,
    RuleType.ACCOUNT_STATUS: _account_status,
    RuleType.TASK_FAILURE_RATE: _task_failure_rate,
    RuleType.METRIC_THRESHOLD: _metric_threshold,
    RuleType.SHARD_ROTATION: _shard_rotation,
}
