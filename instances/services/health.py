"""Instance health: heartbeats, starts and client exits, metrics, alerts, offline marking
and reconnect probes."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _, gettext_noop

from instances import hooks, protocol
from instances.exceptions import InstanceError
from wework import metrics as metric_store
from wework.i18n import Text, in_platform_language

from ..models import (
    InstanceStatus,
    WeworkInstance,
)
from .base import MISSED_HEARTBEATS, ServiceError
from .commands import client_for, push_config, record_instance_error

logger = logging.getLogger("wework.instances")

# ---------------------------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------------------------


def fire_alert(instance, kind, message, *, level="ERROR"):
    """Raise the alert `instance.<kind>` for this instance (monitoring app); never raises.
    `message` (title and message) is a `wework.i18n.Text`: each reader sees it in their
    language."""
    alerts = hooks.alerts()
    if alerts is None:
        return None
    try:
        return alerts.fire_alert(
            f"instance.{kind}", source_type="instance", source_id=instance.pk,
            title=message, message=message, level=level.upper(),
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
    message = Text(gettext_noop("The WeCom client exited: %(reason)s"), reason=reason)
    record_instance_error(instance, in_platform_language(message), status=InstanceStatus.ERROR)
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
    message = Text(
        gettext_noop("Events lost between %(start)s and %(end)s (account %(account)s): %(detail)s"),
        start=start.isoformat(timespec="seconds"), end=end.isoformat(timespec="seconds"),
        account=data.get("account_id") or "-", detail=data.get("detail") or "")
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
        values = {"seconds": interval * MISSED_HEARTBEATS, "count": MISSED_HEARTBEATS}
        message = in_platform_language(Text(
            gettext_noop("No heartbeat for %(seconds)d seconds (%(count)d intervals)."), **values))
        with transaction.atomic():
            changed = WeworkInstance.objects.filter(
                pk=instance.pk, status=instance.status,
                last_heartbeat=instance.last_heartbeat,
            ).update(status=InstanceStatus.OFFLINE, error_message=message, updated_at=now)
            if not changed:
                continue
            hooks.instance_went_offline(instance)
        fire_alert(instance, "offline", Text(
            gettext_noop("%(name)s: no heartbeat for %(seconds)d seconds (%(count)d intervals)."),
            name=instance.name, **values))
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
