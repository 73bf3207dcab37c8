"""The dashboard of the admin home page (and /api/v1/monitoring/dashboard/).

`dashboard_for(user)` gives the figures a user may see (every instance for a role grant, the
instances of their object grants otherwise), or None; `dashboard_data(scope)` computes them,
cached briefly per scope and language.
"""
from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q
from django.utils import timezone, translation

from accounts.scoping import has_global_perm, visible_instance_ids
from contacts.models import AccountStatus, WeworkAccount
from instances.models import InstanceStatus, WeworkInstance
from messaging.models import Message, MessageTask, SendStatus, TaskStatus
from monitoring.models import OPEN_STATUSES, AlertLevel, AlertRecord, AlertStatus
from wework import shards
from wework.i18n import render_data

DASHBOARD_CACHE_KEY = "monitoring:dashboard:v1"
# Bumped whenever an alert opens, is acknowledged or resolved: the cached figures of every scope
# (dashboard and header badge) are then stale at once, so the badge and the dashboard's alert
# card never disagree with each other or lag an alert by the cache's 15 s.
ALERTS_VERSION_KEY = f"{DASHBOARD_CACHE_KEY}:alerts-version"


def alerts_changed() -> None:
    """An alert opened, was acknowledged or resolved (call after the commit)."""
    try:
        cache.incr(ALERTS_VERSION_KEY)
    except ValueError:  # not there yet (or evicted): a fresh version
        cache.set(ALERTS_VERSION_KEY, 1, None)
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
        prefix = f"{DASHBOARD_CACHE_KEY}:{cache.get(ALERTS_VERSION_KEY) or 0}"
        if self.is_global:
            return f"{prefix}:{language}"
        # One entry per scope (the figures depend on nothing else): users with the same
        # grants share it, users with other grants never see it.
        described = "i:{};a:{}".format(",".join(map(str, sorted(self.instance_ids))),
                                       ",".join(map(str, sorted(self.alert_instance_ids))))
        digest = hashlib.sha256(described.encode()).hexdigest()[:32]
        return f"{prefix}:scope:{digest}:{language}"


def dashboard_scope(user) -> DashboardScope | None:
    """The DashboardScope of `user`, or None when the user may see no dashboard at all."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if any(has_global_perm(user, p) for p in DASHBOARD_PERMISSIONS):
        return DashboardScope(None, None, has_global_perm(user, ALERT_PERMISSION))
    alert_ids = frozenset(visible_instance_ids(user, ALERT_PERMISSION) or ())
    ids = alert_ids | frozenset(visible_instance_ids(user, "instances.view_weworkinstance") or ())
    if not ids:
        return None
    return DashboardScope(ids, alert_ids, bool(alert_ids))


def dashboard_for(user, use_cache: bool = True) -> dict | None:
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


def dashboard_data(use_cache: bool = True, scope: DashboardScope | None = None) -> dict:
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


#: The badge counts up to this many open alerts and shows "99+" beyond (never a full count).
BADGE_CAP = 99


def open_alert_count(user) -> int | None:
    """Open alerts the user may see (capped at BADGE_CAP + 1), for the badge of every admin
    page; None when the user may see no alert. Cached like the dashboard, per scope."""
    scope = dashboard_scope(user)
    if scope is None or not scope.can_see_alerts:
        return None
    key = scope.cache_key("badge")
    count = cache.get(key)
    if count is None:
        count = _alerts_in(scope.alert_instance_ids)[: BADGE_CAP + 1].count()
        cache.set(key, count, int(getattr(settings, "DASHBOARD_CACHE_SECONDS", 15)))
    return count


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


def _status_counts(qs, choices):
    """({status: count}, [{"status", "label", "count"} for every status])."""
    counts = dict(qs.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return counts, [{"status": c.value, "label": str(c.label), "count": counts.get(c.value, 0)}
                    for c in choices]


def _messages_per_hour(now, midnight, instance_ids):
    """Messages of each local hour of today so far: messages received, and messages sent that
    the instance confirmed (send_status "sent"). A message row still pending, being sent or
    failed is no message a customer saw: failed attempts before a retry and rows prepared for
    receivers of a cancelled task are not counted (docs/monitoring.md, "Dashboard figures").

    One query per message shard overlapping today, counting Snowflake id ranges (the id encodes
    the time): 24 numbers, not a day of rows. Scoped: the messages of the accounts of those
    instances (a subquery, deleted accounts included).
    """
    local_now = timezone.localtime(now)
    hours = [0] * 24
    buckets = {}
    for hour in range(local_now.hour + 1):
        start = midnight + datetime.timedelta(hours=hour)
        buckets[f"h{hour}"] = shards.id_bounds(since=start,
                                               until=start + datetime.timedelta(hours=1))
    day_low, _day_high = shards.id_bounds(since=midnight)
    for model in shards.shard_models(Message, since=midnight, until=now +
                                     datetime.timedelta(seconds=1)):
        messages = model.objects.filter(id__gte=day_low, send_status=SendStatus.SUCCESS)
        if instance_ids is not None:
            messages = messages.filter(account_id__in=WeworkAccount.all_objects.filter(
                instance_id__in=instance_ids).values("id"))
        counts = messages.aggregate(**{
            key: Count("id", filter=Q(id__gte=low, id__lt=high))
            for key, (low, high) in buckets.items()
        })
        for key, value in counts.items():
            hours[int(key[1:])] += value or 0
    return hours[: local_now.hour + 1]


def _running_tasks(task_qs):
    running = list(
        task_qs.order_by("-started_at")
        .values("id", "task_name", "progress", "success_count", "fail_count", "target_count")[:10]
    )
    for task in running:
        task["progress"] = float(task["progress"] or 0)
    return running


def _open_alerts(alert_instance_ids):
    """(the ten newest open alerts with labels, {level: count})."""
    if alert_instance_ids is not None and not alert_instance_ids:
        return [], {}
    alerts = _alerts_in(alert_instance_ids)
    newest = list(
        alerts.order_by("-created_at")
        .values("id", "alert_level", "alert_title", "alert_i18n", "status", "created_at",
                "source_type", "source_id")[:10]
    )
    for alert in newest:
        # in the reader's language (the cache key has it), whichever process raised it
        alert["alert_title"] = render_data((alert.pop("alert_i18n") or {}).get("title"),
                                           alert["alert_title"])
        alert["level_label"] = str(_choice_label(AlertLevel, alert["alert_level"]))
        alert["status_label"] = str(_choice_label(AlertStatus, alert["status"]))
    counts = dict(alerts.values_list("alert_level").annotate(n=Count("id"))
                  .values_list("alert_level", "n"))
    return newest, counts


def _compute_dashboard(instance_ids=None, alert_instance_ids=None):
    now = timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    scoped = instance_ids is not None
    ids = sorted(instance_ids) if scoped else None
    instance_qs = WeworkInstance.objects.all()
    account_qs = WeworkAccount.objects.all()
    task_qs = MessageTask.objects.filter(status=TaskStatus.RUNNING)
    if scoped:
        instance_qs = instance_qs.filter(pk__in=ids)
        account_qs = account_qs.filter(instance_id__in=ids)
        task_qs = task_qs.filter(account__instance_id__in=ids)
    inst, instances = _status_counts(instance_qs, InstanceStatus)
    _acc, accounts = _status_counts(account_qs, AccountStatus)
    hours = _messages_per_hour(now, midnight, ids)
    active_alerts, alert_counts = _open_alerts(alert_instance_ids)
    return {
        "generated_at": now,
        "scoped": scoped,
        "instance_ids": ids,
        "instances": instances,
        "instances_online": inst.get(InstanceStatus.ONLINE, 0),
        "instances_offline": sum(v for k, v in inst.items() if k != InstanceStatus.ONLINE),
        "accounts": accounts,
        "messages_today": sum(hours),
        "messages_per_hour": hours,
        "running_tasks": _running_tasks(task_qs),
        "active_alerts": active_alerts,
        "active_alert_counts": alert_counts,
        "active_alert_total": sum(alert_counts.values()),
    }
