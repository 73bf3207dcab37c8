"""Mass-send statistics: what became of a task's messages.

Per task: delivered (receivers sent), failed, skipped, waiting; replied within a window (a
message received from the contact within `window_hours` after ours was sent); opted out after
it (from the opt-out sources registered by a higher app, "unknown" while none is); the same
per day (of sending) and per sending account.

Receivers are walked by id in chunks (`CHUNK`); each chunk asks each month shard of the
window once, on the messages' `idx_account_chat` index: `account_id = ? AND chat_wxid IN (the
chunk's contacts) AND id in the window's id range AND task_id IS NULL`, so the cost grows with
the task's receivers and their replies, never with the shards' size. Group chats are not counted
as replies (their members talk among themselves). Results are cached for CACHE_S seconds.

Opt-out sources: `register_opt_out_source(fn)`; `fn(task, receivers)` gets the task and a chunk
of `(wxid, sent_at)` and returns the set of wxids that opted out after `sent_at`, or None when
it cannot say. The app that records opt-outs registers one from its `AppConfig.ready()`
(messaging never imports it).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext as _

from wework import shards
from wework.ids import id_bounds, id_time

from ..errors import invalid
from ..models import Message, MessageReceiver, MessageTask, ReceiverSendStatus as RS, ReceiverType

DEFAULT_WINDOW_HOURS = 24
MAX_WINDOW_HOURS = 24 * 30
CHUNK = 2000
CACHE_S = 60

OptOutSource = Callable[[MessageTask, list[tuple[str, datetime]]], "set[str] | None"]
_opt_out_sources: list[OptOutSource] = []


def register_opt_out_source(fn: OptOutSource) -> None:
    """Add a source of opt-outs (idempotent)."""
    if fn not in _opt_out_sources:
        _opt_out_sources.append(fn)


def unregister_opt_out_source(fn: OptOutSource) -> None:
    if fn in _opt_out_sources:
        _opt_out_sources.remove(fn)


def window_hours(value: Any) -> int:
    """The reply window asked for (hours, 1-720; default 24); MessagingInvalid under `window_hours`."""
    if value in (None, ""):
        return DEFAULT_WINDOW_HOURS
    try:
        hours = int(value)
    except (TypeError, ValueError):
        hours = 0
    if not 1 <= hours <= MAX_WINDOW_HOURS:
        raise invalid("window_hours", _("The reply window must be between 1 and %(max)d hours.")
                      % {"max": MAX_WINDOW_HOURS})
    return hours


def _opted_out(task: MessageTask, chunk: list[tuple[str, datetime]]) -> set[str] | None:
    if not _opt_out_sources or not chunk:
        return None
    found: set[str] = set()
    for source in _opt_out_sources:
        result = source(task, chunk)
        if result is None:
            return None
        found |= set(result)
    return found


def _sent_at(receiver: dict) -> datetime:
    """When our message went out, to the second: received messages are stored (and their ids
    made) to the second, so a reply within the second of the send counts as after it."""
    when = id_time(receiver["message_id"]) if receiver.get("message_id") else receiver["send_time"]
    return when.replace(microsecond=0)


def _replies(task: MessageTask, chunk: list[dict], window: timedelta) -> dict[str, datetime]:
    """{wxid: time of the first message received after ours, within the window} for the
    chunk's delivered contact receivers."""
    sent = {r["receiver_wxid"]: _sent_at(r) for r in chunk
            if r["send_status"] == RS.SUCCESS and r["send_time"] and r["receiver_type"] == ReceiverType.CONTACT}
    if not sent or task.account_id is None:
        return {}
    since, until = min(sent.values()), max(sent.values()) + window
    low, high = id_bounds(since, until)
    first: dict[str, datetime] = {}
    for model in shards.shard_models(Message, since, until):
        rows = (model._default_manager
                .filter(account_id=task.account_id, chat_wxid__in=list(sent), pk__gte=low, pk__lt=high,
                        task_id__isnull=True)
                .values_list("chat_wxid", "pk"))
        for wxid, pk in rows.iterator(chunk_size=2000):
            at = id_time(pk)
            start = sent.get(wxid)
            if start is not None and start <= at <= start + window and (wxid not in first or at < first[wxid]):
                first[wxid] = at
    return first


RECEIVER_FIELDS = ("id", "receiver_type", "receiver_wxid", "receiver_name", "message_id", "send_status",
                   "send_time", "error_code", "error_message", "retry_count")


def receiver_results(task: MessageTask, hours: int = DEFAULT_WINDOW_HOURS, *,
                     chunk_size: int = CHUNK) -> Iterator[dict]:
    """Every receiver of the task with its outcome, by id: the receiver's columns plus
    `replied_at` (datetime or None) and `opted_out` (True/False, None when unknown)."""
    window = timedelta(hours=hours)
    after = 0
    while True:
        chunk = list(MessageReceiver.objects.filter(task_id=task.pk, pk__gt=after)
                     .order_by("pk").values(*RECEIVER_FIELDS)[:chunk_size])
        if not chunk:
            return
        after = chunk[-1]["id"]
        replies = _replies(task, chunk, window)
        delivered = [(r["receiver_wxid"], r["send_time"]) for r in chunk
                     if r["send_status"] == RS.SUCCESS and r["send_time"]]
        opted = _opted_out(task, delivered)
        for r in chunk:
            r["replied_at"] = replies.get(r["receiver_wxid"])
            r["opted_out"] = None if opted is None else r["receiver_wxid"] in opted
            yield r


def _blank() -> dict:
    return {"receivers": 0, "delivered": 0, "failed": 0, "skipped": 0, "waiting": 0, "replied": 0,
            "opted_out": 0}


def _add(bucket: dict, r: dict) -> None:
    status = r["send_status"]
    bucket["receivers"] += 1
    if status == RS.SUCCESS:
        bucket["delivered"] += 1
    elif status == RS.FAILED:
        bucket["failed"] += 1
    elif status == RS.SKIPPED:
        bucket["skipped"] += 1
    else:
        bucket["waiting"] += 1
    if r["replied_at"] is not None:
        bucket["replied"] += 1
    if r["opted_out"]:
        bucket["opted_out"] += 1


def _rate(part: int, whole: int) -> float:
    return round(100 * part / whole, 2) if whole else 0.0


def task_stats(task: MessageTask, hours: int = DEFAULT_WINDOW_HOURS, *, use_cache: bool = True) -> dict:
    """The task's figures: totals, `by_day` (local date of sending; receivers not sent under
    None) and `by_account`, rates in % of delivered; `opted_out` None when unknown."""
    key = f"wework:msg:stats:{task.pk}:{hours}"
    if use_cache:
        cached = cache.get(key)
        if cached is not None:
            return cached
    total = _blank()
    days: dict[Any, dict] = {}
    known = True
    for r in receiver_results(task, hours):
        _add(total, r)
        day = timezone.localtime(r["send_time"]).date() if r["send_time"] else None
        _add(days.setdefault(day, _blank()), r)
        if r["send_status"] == RS.SUCCESS and r["opted_out"] is None:
            known = False
    by_day = [{"day": day.isoformat(), **figures} for day, figures in sorted(
        ((d, f) for d, f in days.items() if d is not None), key=lambda item: item[0])]
    if None in days:
        by_day.append({"day": None, **days[None]})
    for row in [total, *by_day]:
        if not known:
            row["opted_out"] = None
        row["reply_rate"] = _rate(row["replied"], row["delivered"])
        row["delivery_rate"] = _rate(row["delivered"], row["delivered"] + row["failed"])
    account = task.account
    result = {
        "task_id": task.pk,
        "window_hours": hours,
        "totals": total,
        "by_day": by_day,
        "by_account": [{"account_id": task.account_id,
                        "account": (account.nickname or account.wxid) if account is not None else None,
                        **{k: v for k, v in total.items()}}],
        "opt_out_known": known,
        "computed_at": timezone.now().isoformat(),
    }
    if use_cache:
        cache.set(key, result, CACHE_S)
    return result


#: Tasks an overview adds up at most (each is walked as its own report is).
OVERVIEW_MAX_TASKS = 200


def overview(tasks, hours: int = DEFAULT_WINDOW_HOURS) -> dict:
    """The figures of several tasks (a scoped queryset of tasks, newest first) added up per
    sending account and per day: {"tasks", "truncated", "totals", "by_account", "by_day"}.
    At most OVERVIEW_MAX_TASKS tasks (`truncated` says when more matched)."""
    picked = list(tasks.select_related("account")[: OVERVIEW_MAX_TASKS + 1])
    truncated = len(picked) > OVERVIEW_MAX_TASKS
    picked = picked[:OVERVIEW_MAX_TASKS]
    totals = _blank()
    accounts: dict[Any, dict] = {}
    days: dict[Any, dict] = {}
    known = True
    keys = ("receivers", "delivered", "failed", "skipped", "waiting", "replied", "opted_out")
    for task in picked:
        figures = task_stats(task, hours)
        known = known and figures["opt_out_known"]
        for row in figures["by_account"]:
            bucket = accounts.setdefault(row["account_id"], {"account_id": row["account_id"],
                                                             "account": row["account"], "tasks": 0, **_blank()})
            bucket["tasks"] += 1
            for key in keys:
                bucket[key] += row[key] or 0
                totals[key] += row[key] or 0
        for row in figures["by_day"]:
            bucket = days.setdefault(row["day"], {"day": row["day"], **_blank()})
            for key in keys:
                bucket[key] += row[key] or 0
    by_day = sorted((d for d in days.values() if d["day"]), key=lambda d: d["day"])
    if None in days:
        by_day.append(days[None])
    for row in [totals, *accounts.values(), *by_day]:
        if not known:
            row["opted_out"] = None
        row["reply_rate"] = _rate(row["replied"], row["delivered"])
        row["delivery_rate"] = _rate(row["delivered"], row["delivered"] + row["failed"])
    return {"tasks": len(picked), "truncated": truncated, "window_hours": hours, "totals": totals,
            "by_account": sorted(accounts.values(), key=lambda a: -a["delivered"]), "by_day": by_day,
            "opt_out_known": known}
