"""Delivering one alert to one channel target (called by the Celery tasks).

Channels of a rule (`alert_rules.notify_channels`, JSON):
    {"email": ["ops@example.com"], "wecom": ["ops-robot"]}
WeCom robots are named: their webhook URLs (which embed the robot's secret key) live in the
environment (`ALERT_WECOM_ROBOTS="ops-robot=https://qyapi...key=...,night=..."`), never in the
database or the task queue. Alerts of rules without channels (and ad-hoc alerts fired by other
apps) use `settings.ALERT_DEFAULT_CHANNELS`.
"""
import logging

from django.conf import settings
from django.utils import timezone

from . import notifications
from .notifications import DeliveryError

logger = logging.getLogger(__name__)

__all__ = ["DeliveryError", "deliver", "flush_parked", "targets_for"]


def robots():
    return dict(getattr(settings, "ALERT_WECOM_ROBOTS", {}) or {})


def channels_for_rule(rule):
    channels = (rule.notify_channels if rule is not None else None) or getattr(
        settings, "ALERT_DEFAULT_CHANNELS", {}) or {}
    return channels if isinstance(channels, dict) else {}


def targets_for(alert_id):
    """[(channel, target)] of an alert: (email, address) and (wecom, robot name)."""
    from .models import AlertRecord, AlertRule

    alert = AlertRecord.objects.filter(pk=alert_id).first()
    if alert is None:
        return []
    rule = AlertRule.objects.filter(name=alert.rule_name).first()
    channels = channels_for_rule(rule)
    targets = []
    emails = [e for e in channels.get("email", []) if e]
    if emails:
        targets.append(("email", ",".join(emails)))
    for name in channels.get("wecom", []) or []:
        targets.append(("wecom", name))
    return targets


def _mark_sent(alert_id):
    from .models import AlertRecord

    AlertRecord.objects.filter(pk=alert_id).update(
        notification_sent=True, notification_sent_at=timezone.now()
    )


def schedule_flush(robot_name, countdown):
    from .tasks import flush_robot

    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        # Eager mode (tests, development without a broker) has no countdown: the flush would
        # run now, find the minute still full and loop. Parked messages wait for the next
        # send to this robot or for `flush_robot` run by hand.
        logger.info("robot %s: flush not scheduled in eager mode", robot_name)
        return
    flush_robot.apply_async((robot_name,), countdown=countdown)


def deliver(alert_id, channel, target, attempt=1, final=False):
    """Deliver; returns "sent", "parked" or "skipped"; raises DeliveryError to be retried."""
    from .models import AlertRecord

    alert = AlertRecord.objects.filter(pk=alert_id).first()
    if alert is None:
        return "skipped"
    try:
        if channel == "email":
            subject, body = notifications.render_email(alert)
            notifications.send_email(target.split(","), subject, body)
            outcome = "sent"
        elif channel == "wecom":
            url = robots().get(target)
            if not url:
                logger.error("alert %s: no WeCom robot named %r is configured "
                             "(ALERT_WECOM_ROBOTS)", alert_id, target,
                             extra={"action": "alert_notify_failed"})
                return "skipped"
            text = notifications.render_markdown(alert)
            if notifications.take_robot_slot(url):
                notifications.send_wecom(url, text)
                outcome = "sent"
            else:
                if notifications.park_message(url, text):
                    schedule_flush(target, notifications.seconds_to_next_minute())
                outcome = "parked"
        else:
            logger.error("alert %s: unknown notification channel %r", alert_id, channel)
            return "skipped"
    except DeliveryError as exc:
        log = logger.error if final else logger.warning
        log("alert %s: %s notification to %s failed (attempt %d%s): %s", alert_id, channel,
            target if channel != "wecom" else f"robot {target}", attempt,
            ", giving up" if final else ", will retry", exc,
            extra={"action": "alert_notify_failed", "alert_id": alert_id, "attempt": attempt})
        raise
    if outcome in ("sent", "parked"):
        # Parked messages go out within a minute, merged: the alert counts as notified.
        _mark_sent(alert_id)
        logger.info("alert %s: %s notification %s", alert_id, channel, outcome,
                    extra={"action": "alert_notified", "alert_id": alert_id})
    return outcome


def flush_parked(robot_name):
    """Send what was parked for a robot as one merged message (next minute)."""
    url = robots().get(robot_name)
    if not url:
        return 0
    texts = notifications.take_parked(url)
    if not texts:
        return 0
    if not notifications.take_robot_slot(url):
        # Still full (many senders): park again for the following minute.
        for text in texts:
            notifications.park_message(url, text)
        schedule_flush(robot_name, notifications.seconds_to_next_minute())
        return 0
    try:
        notifications.send_wecom(url, notifications.merge(texts))
    except DeliveryError:
        for text in texts:
            notifications.park_message(url, text)
        raise
    return len(texts)
