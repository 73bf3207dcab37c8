"""Alert notifications: email and WeCom group-robot webhooks.

A WeCom group robot accepts at most 20 messages a minute (errcode 45009 beyond that). Sends to one
robot are counted per minute in the cache (Redis in production: one atomic INCR per send,
shared by every worker); a message that finds the minute full is parked in a per-robot pending
list, and one flush task (scheduled once per robot and minute) merges everything parked into a
single message at the start of the next minute. Delivery failures raise `DeliveryError`, which
the Celery task retries with exponential back-off; evaluation only enqueues, so it never waits.
"""
import hashlib
import json
import logging
import time

import httpx
from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.utils import timezone, translation
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

ROBOT_LIMIT_PER_MINUTE = 20
MARKDOWN_MAX_BYTES = 4096  # WeCom robot markdown content limit
WECOM_RATE_LIMITED = 45009


class DeliveryError(Exception):
    """A notification could not be delivered (retryable)."""


def robot_limit():
    return int(getattr(settings, "ALERT_WECOM_ROBOT_LIMIT_PER_MINUTE", ROBOT_LIMIT_PER_MINUTE))


def _robot_key(url):
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]


def _minute(now=None):
    return int((now if now is not None else time.time()) // 60)


def take_robot_slot(url, now=None):
    """True if one more message may go to this robot in the current minute (and counts it)."""
    key = f"monitoring:robot:{_robot_key(url)}:{_minute(now)}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=120)
        count = 1
    return count <= robot_limit()


def seconds_to_next_minute(now=None):
    now = now if now is not None else time.time()
    return max(1, int(60 - (now % 60)) + 1)


# --- pending (merged) messages per robot ---------------------------------------------------------
def _redis():
    try:
        from django_redis import get_redis_connection

        return get_redis_connection("default")
    except Exception:  # noqa: BLE001 - not a django-redis cache: fall back to the cache API
        return None


def _pending_key(url):
    return f"monitoring:robot:{_robot_key(url)}:pending"


def park_message(url, text):
    """Keep a message for the next merged send; True if a flush must be scheduled."""
    client = _redis()
    key = _pending_key(url)
    if client is not None:
        full_key = cache.make_key(key)
        client.rpush(full_key, text.encode("utf-8"))
        client.expire(full_key, 3600)
    else:
        items = cache.get(key) or []
        items.append(text)
        cache.set(key, items[-500:], timeout=3600)
    # One flush per robot and minute.
    return cache.add(f"{key}:flush:{_minute()}", 1, timeout=120)


def take_parked(url):
    client = _redis()
    key = _pending_key(url)
    if client is not None:
        full_key = cache.make_key(key)
        pipe = client.pipeline()
        pipe.lrange(full_key, 0, -1)
        pipe.delete(full_key)
        items, _ = pipe.execute()
        return [i.decode("utf-8") for i in items]
    items = cache.get(key) or []
    cache.delete(key)
    return items


def merge(texts):
    """One markdown text from several, cut to the robot's size limit."""
    if len(texts) == 1:
        return texts[0]
    header = f"**{len(texts)} alerts** (merged: robot rate limit)\n\n"
    body = "\n\n---\n\n".join(texts)
    merged = header + body
    raw = merged.encode("utf-8")
    if len(raw) > MARKDOWN_MAX_BYTES:
        merged = raw[: MARKDOWN_MAX_BYTES - 20].decode("utf-8", "ignore") + "\n\n(...)"
    return merged


# --- transports ----------------------------------------------------------------------------------
def send_wecom(url, markdown, timeout=None):
    """POST one markdown message to a group robot; raises DeliveryError on any failure."""
    timeout = timeout or getattr(settings, "ALERT_WEBHOOK_TIMEOUT", 5.0)
    payload = {"msgtype": "markdown", "markdown": {"content": markdown}}
    try:
        response = httpx.post(url, json=payload, timeout=timeout)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"robot unreachable: {exc.__class__.__name__}: {exc}") from exc
    if response.status_code >= 300:
        raise DeliveryError(f"robot answered HTTP {response.status_code}")
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        body = {}
    errcode = body.get("errcode", 0) if isinstance(body, dict) else 0
    if errcode:
        raise DeliveryError(f"robot refused the message: errcode {errcode} {body.get('errmsg')}")
    return True


def send_email(recipients, subject, text):
    try:
        sent = send_mail(subject[:200], text, settings.DEFAULT_FROM_EMAIL, list(recipients),
                         fail_silently=False)
    except Exception as exc:  # SMTP errors of every kind are retryable
        raise DeliveryError(f"email failed: {exc.__class__.__name__}: {exc}") from exc
    if not sent:
        raise DeliveryError("email backend sent nothing")
    return True


def _when(value):
    """A time as the platform's people read it (its time zone)."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _facts(alert):
    """(heading, lines) of an alert in the platform's language (LANGUAGE_CODE): notifications
    are read outside any request, so they speak the platform's language and time zone."""
    resolved = alert.status == "RESOLVED"
    level = alert.get_alert_level_display()
    heading = (_("[Resolved] %(title)s") if resolved else _("[%(level)s] %(title)s")) % {
        "level": level, "title": alert.display_title}
    lines = [str(alert.display_message or "")]
    if alert.metric_name:
        lines.append(_("%(metric)s = %(value)s (threshold %(threshold)s)") % {
            "metric": alert.metric_name, "value": alert.metric_value, "threshold": alert.threshold_value})
    lines.append(_("Rule: %(rule)s · source: %(source)s") % {
        "rule": alert.rule_name, "source": alert.source_label})
    lines.append(_("Raised at %(at)s") % {"at": _when(alert.created_at)})
    if resolved:
        lines.append(_("Resolved at %(at)s: %(comment)s") % {
            "at": _when(alert.resolved_at), "comment": alert.resolved_comment or "-"})
    return resolved, heading, lines


def render_markdown(alert):
    with translation.override(settings.LANGUAGE_CODE):
        resolved, heading, lines = _facts(alert)
        color = "info" if resolved else {"CRITICAL": "warning", "ERROR": "warning",
                                         "WARNING": "comment"}.get(alert.alert_level, "info")
        return "\n".join([f'**<font color="{color}">{heading}</font>**', *(f"> {line}" for line in lines)])


def render_email(alert):
    with translation.override(settings.LANGUAGE_CODE):
        _resolved, heading, lines = _facts(alert)
        return heading, "\n".join(lines) + "\n"
