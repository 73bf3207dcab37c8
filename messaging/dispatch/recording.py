"""Recording outcomes: one transaction of conditional UPDATEs per flush.

Receiver rows change only while they are SENDING, so a late or repeated outcome (two workers
after a reclaim, a webhook after a poll) changes nothing and counts nothing; task counters grow
by the rows actually changed, in the same transaction.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Case, ExpressionWrapper, F, FloatField, Value, When
from django.db.models.functions import Least, Round
from django.utils import timezone
from django.utils.translation import gettext as _

from wework import shards
from wework.db.retry import run_idempotent

from ..models import Message, MessageReceiver, MessageTask, ReceiverSendStatus as RS, SendStatus, TaskStatus
from ..services.counters import count_messages
from .outcomes import Outcome, OutcomeKind as K


def update_messages(message_ids: Iterable[int | None], **fields) -> int:
    """UPDATE messages (in their monthly shards) by id; ids that are None are left out."""
    ids = [mid for mid in message_ids if mid]
    if not ids:
        return 0
    n = 0
    for model, group in shards.group_ids_by_shard(Message, ids).items():
        n += model._base_manager.filter(pk__in=group).update(**fields)
    return n


def cancel_prepared_messages(message_ids: Iterable[int | None]) -> int:
    """Message rows prepared for receivers of a cancelled task, never handed to the instance:
    failed with the code "cancelled", so that no row stays "pending" for ever and no figure
    counts it. Rows already sending or settled keep their state."""
    ids = [mid for mid in message_ids if mid]
    n = 0
    for model, group in shards.group_ids_by_shard(Message, ids).items():
        n += model._base_manager.filter(pk__in=group, send_status=SendStatus.PENDING).update(
            send_status=SendStatus.FAILED, error_code="cancelled", error_message=_("Task cancelled."))
    return n


def _sending(items: list[Outcome]):
    """The receivers of `items` that are still SENDING (the condition of every update)."""
    return MessageReceiver.objects.filter(pk__in=[o.receiver_id for o in items], send_status=RS.SENDING)


def _still_sending(items: list[Outcome]) -> list[Outcome]:
    """The outcomes whose receiver is still SENDING, its row locked until the commit.

    A message row changes only with its receiver: a late outcome (the flush of a `queued`
    answer after the status webhook settled the send) must not write the message back to
    "sending" or "failed". Locking the receivers first is also the documented lock order
    (receivers, then messages, then the task, the account, the instance: docs/messaging.md).
    """
    if not items:
        return []
    live = set(_sending(items).select_for_update().values_list("pk", flat=True))
    return [o for o in items if o.receiver_id in live]


class _NotAllSending(Exception):
    """A receiver of an unlocked flush was no longer SENDING (a late or repeated outcome): the
    flush is rolled back and recorded again with its receivers locked and filtered first."""


def apply_outcomes(task_id: int, outcomes: list[Outcome], account_id: int | None = None,
                   instance_id: int | None = None, now: datetime | None = None) -> dict[str, int]:
    """Record outcomes in one transaction; returns {"success": n, "failed": n, "retry": n}, the
    receivers actually changed."""
    if not outcomes:
        return {"success": 0, "failed": 0, "retry": 0}
    now = now or timezone.now()
    # Conditional UPDATEs only: a deadlock or a lost connection is retried at once.
    try:
        return run_idempotent(lambda: _apply_all(task_id, outcomes, account_id, instance_id, now, locked=False),
                              name="apply_outcomes")
    except _NotAllSending:
        return run_idempotent(lambda: _apply_all(task_id, outcomes, account_id, instance_id, now, locked=True),
                              name="apply_outcomes")


def _apply_all(task_id, outcomes, account_id, instance_id, now, locked: bool) -> dict[str, int]:
    """apply_outcomes' one transaction (run_idempotent's).

    Receivers first, then their messages (the lock order). Usually every receiver of a flush is
    still SENDING: its conditional UPDATEs then match every one of them, which proves it without
    the locking read a flush cost before (`locked=False`). When they match fewer, some outcome is
    late: _NotAllSending rolls the transaction back, and it is run again `locked`, keeping only
    the outcomes whose receiver is still SENDING (`_still_sending`), so that no message row
    changes without its receiver."""
    if locked:
        outcomes = _still_sending(outcomes)
    by_kind = _by_kind(outcomes)
    later: list = []  # the message writes, after every receiver's
    done = {
        "success": _apply_success(by_kind[K.SUCCESS], now, later),
        "failed": _apply_failed(by_kind[K.FAILED], now, later),
        "retry": _apply_retry(by_kind[K.RETRY], now, later),
    }
    moved = (_apply_queued(by_kind[K.QUEUED], now, later) + _apply_defer(by_kind[K.DEFER], now)
             + _apply_release(task_id, by_kind[K.RELEASE], now, later))
    if not locked:
        expected = sum(len({o.receiver_id for o in group}) for group in by_kind.values())
        if sum(done.values()) + moved != expected:
            raise _NotAllSending
    for write in later:
        write()
    if done["success"] or done["failed"]:
        _count_on_task(task_id, done["success"], done["failed"], now)
    if done["success"] and account_id:
        count_messages(account_id, instance_id, done["success"])
    return done


def _count_on_task(task_id: int, success: int, failed: int, now: datetime) -> None:
    """The task's counters and progress in one UPDATE (was two a flush).

    `progress` comes first and is computed from the old counts plus the deltas: MySQL/MariaDB
    evaluate a single-table UPDATE's assignments left to right (a later one sees the new
    values), SQLite and PostgreSQL all from the old row; first in the list, both read the same."""
    grown = (F("success_count") + success + F("fail_count") + failed) * Value(100.0) / F("target_count")
    progress = Least(Round(ExpressionWrapper(grown, output_field=FloatField()), 2), Value(100.0),
                     output_field=FloatField())
    MessageTask.objects.filter(pk=task_id).update(
        progress=Case(When(target_count__gt=0, then=progress), default=F("progress"), output_field=FloatField()),
        success_count=F("success_count") + success,
        fail_count=F("fail_count") + failed,
        updated_at=now,
    )


def _by_kind(outcomes: list[Outcome]) -> dict[K, list[Outcome]]:
    """Outcomes grouped by kind. An acknowledgement read before the flush supersedes the
    "queued" answer of the same send: one write with the final state instead of two."""
    final = {o.receiver_id for o in outcomes if o.kind.is_final}
    by_kind: dict[K, list[Outcome]] = {kind: [] for kind in K}
    for o in outcomes:
        if o.kind == K.QUEUED and o.receiver_id in final:
            continue
        by_kind[o.kind].append(o)
    return by_kind


def _grouped(items: list[Outcome], key) -> dict:
    groups: dict = {}
    for o in items:
        groups.setdefault(key(o), []).append(o)
    return groups


def _apply_success(items: list[Outcome], now: datetime, later: list) -> int:
    if not items:
        return 0
    n = _sending(items).update(send_status=RS.SUCCESS, send_time=now, error_code=None, error_message=None,
                               updated_at=now)
    later.append(lambda: update_messages([o.message_id for o in items], send_status=SendStatus.SUCCESS,
                                         send_time=now, receive_time=now, error_code=None, error_message=None))
    return n


def _apply_failed(items: list[Outcome], now: datetime, later: list) -> int:
    n = 0
    for (code, error), group in _grouped(items, lambda o: (o.code, o.error)).items():
        code = (code or "failed")[:50]
        n += _sending(group).update(send_status=RS.FAILED, send_time=now, error_code=code, error_message=error,
                                    updated_at=now)
        later.append(lambda group=group, code=code, error=error: update_messages(
            [o.message_id for o in group], send_status=SendStatus.FAILED, error_code=code, error_message=error))
    return n


def _apply_retry(items: list[Outcome], now: datetime, later: list) -> int:
    """Back to PENDING, due after the back-off; a retry with a new uuid drops the message link
    (the old message is marked failed)."""
    n = 0
    for (code, error, keep, delay), group in _grouped(
        items, lambda o: (o.code, o.error, o.keep_message, round(o.delay_s))
    ).items():
        code = (code or "")[:50] or None
        fields = dict(send_status=RS.PENDING, retry_count=F("retry_count") + 1,
                      send_time=now + timedelta(seconds=delay), error_code=code, error_message=error,
                      updated_at=now)
        if not keep:
            fields["message_id"] = None
        n += _sending(group).update(**fields)
        if not keep:
            later.append(lambda group=group, code=code, error=error: update_messages(
                [o.message_id for o in group], send_status=SendStatus.FAILED, error_code=code,
                error_message=error))
    return n


def _apply_queued(items: list[Outcome], now: datetime, later: list) -> int:
    """Handed over: the claim stays fresh (no reclaim) and the message is SENDING."""
    if not items:
        return 0
    n = _sending(items).update(updated_at=now)
    later.append(lambda: update_messages([o.message_id for o in items], send_status=SendStatus.SENDING,
                                         send_time=now))
    return n


def _apply_defer(items: list[Outcome], now: datetime) -> int:
    """Waiting for its conversation: back to PENDING, due later; no retry is used."""
    n = 0
    for due, group in _grouped(items, lambda o: _due_second(now, o.delay_s)).items():
        n += _sending(group).update(send_status=RS.PENDING, send_time=due, updated_at=now)
    return n


def _due_second(now: datetime, delay_s: float) -> datetime:
    """now + delay, rounded up to the second: send_time is a DATETIME without fractions (the
    design), and a truncated due time would come back before the conversation is free."""
    due = now + timedelta(seconds=delay_s)
    if due.microsecond:
        due = due.replace(microsecond=0) + timedelta(seconds=1)
    return due


def _apply_release(task_id: int, items: list[Outcome], now: datetime, later: list) -> int:
    """Released receivers were never handed to the instance: in a cancelled task they are
    skipped, otherwise they wait for the next claim."""
    if not items:
        return 0
    if MessageTask.objects.filter(pk=task_id, status=TaskStatus.CANCELLED).exists():
        fields = dict(send_status=RS.SKIPPED, error_code="cancelled", error_message=_("Task cancelled."))
        later.append(lambda: cancel_prepared_messages(o.message_id for o in items))
    else:
        fields = dict(send_status=RS.PENDING)
    return _sending(items).update(updated_at=now, **fields)
