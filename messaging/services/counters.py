"""Counters: a task's success/fail counts and progress, rebuilt from its receiver rows; the
accounts' and instances' message counts."""
from __future__ import annotations

from django.db.models import Count, F
from django.utils import formats, timezone
from django.utils.translation import gettext as _, ngettext

from contacts.models import WeworkAccount
from instances.models import WeworkInstance

from wework import shards

from ..models import Message, MessageReceiver, MessageTask, ReceiverSendStatus as RS, SendStatus, TaskStatus

COUNTER_FIELDS = ("target_count", "success_count", "fail_count", "progress")
#: Receivers in "sending" looked at to tell the ones handed to the instance from the ones only
#: claimed (a dispatcher claims up to CLAIM_BATCH at a time); more than this read as claimed.
IN_FLIGHT_SCAN = 2000


def receiver_counts(task_id: int) -> dict[int, int]:
    """{send_status: number of receivers} of the task."""
    return dict(
        MessageReceiver.objects.filter(task_id=task_id).values_list("send_status").annotate(n=Count("id")).order_by()
    )


def rebuild_counters(task_id: int) -> dict[int, int]:
    """Recompute success/fail counts and progress from the receiver rows."""
    counts = receiver_counts(task_id)
    total = sum(counts.values())
    # Receivers with an outcome (sent or failed) over all receivers: skipped receivers of a
    # cancelled task had none, so a task cancelled at 19 of 220 reads 8.6 %, not a full bar.
    done = counts.get(RS.SUCCESS, 0) + counts.get(RS.FAILED, 0)
    progress = round(done * 100 / total, 2) if total else 0
    MessageTask.objects.filter(pk=task_id).update(
        target_count=total,
        success_count=counts.get(RS.SUCCESS, 0),
        fail_count=counts.get(RS.FAILED, 0),
        progress=progress,
    )
    return counts


class Outcome:
    """How a task's page names where it stands; an end state never reads as success unless
    every receiver was sent."""

    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    ALL_SENT = "all_sent"
    PARTLY_FAILED = "partly_failed"
    ALL_FAILED = "all_failed"
    CANCELLED = "cancelled"


def task_outcome(status: int, counts: dict[int, int]) -> tuple[str, str]:
    """(outcome, sentence) of a task in `status` whose receivers are `counts`."""
    sent, failed = counts.get(RS.SUCCESS, 0), counts.get(RS.FAILED, 0)
    skipped, total = counts.get(RS.SKIPPED, 0), sum(counts.values())
    figures = {"sent": sent, "failed": failed, "skipped": skipped, "total": total}
    if status == TaskStatus.CANCELLED:
        return Outcome.CANCELLED, _("Cancelled: %(sent)d of %(total)d sent, %(failed)d failed, "
                                    "%(skipped)d skipped.") % figures
    if status == TaskStatus.PAUSED:
        return Outcome.PAUSED, _("Paused: %(sent)d of %(total)d sent so far.") % figures
    if status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
        if failed and not sent:
            return Outcome.ALL_FAILED, ngettext("Nothing was sent: the %(failed)d receiver failed.",
                                                "Nothing was sent: all %(failed)d receivers failed.",
                                                failed) % figures
        if failed:
            return Outcome.PARTLY_FAILED, _("Finished with failures: %(sent)d of %(total)d sent, "
                                            "%(failed)d failed.") % figures
        return Outcome.ALL_SENT, ngettext("Finished: %(sent)d receiver sent.",
                                          "Finished: all %(sent)d receivers sent.", sent) % figures
    return Outcome.IN_PROGRESS, _("Sending: %(sent)d of %(total)d sent, %(failed)d failed.") % figures


def retry_state(task_id: int) -> tuple[int, str | None]:
    """(receivers waiting for a retry, the newest error of one of them): instance errors show
    on the task page as they happen, before a receiver has used its retries and failed."""
    waiting = MessageReceiver.objects.filter(task_id=task_id, send_status__in=(RS.PENDING, RS.SENDING),
                                             retry_count__gt=0)
    newest = waiting.exclude(error_message=None).order_by("-updated_at").values_list("error_message", flat=True)[:1]
    return waiting.count(), next(iter(newest), None)


def in_flight(task_id: int, sending: int) -> int:
    """Receivers handed to the instance whose outcome is awaited (their message is "sending"),
    out of the task's `sending` receivers: the others are only claimed by a dispatcher and wait
    for their turn (pacing), so the page counts them as waiting, not in flight."""
    if not sending:
        return 0
    ids = list(MessageReceiver.objects.filter(task_id=task_id, send_status=RS.SENDING)
               .exclude(message_id=None).values_list("message_id", flat=True)[:IN_FLIGHT_SCAN])
    return sum(model._base_manager.filter(pk__in=group, send_status=SendStatus.SENDING).count()
               for model, group in shards.group_ids_by_shard(Message, ids).items())


def task_progress(task: MessageTask) -> dict:
    """The JSON the progress bar polls. `sending` counts the receivers really in flight (handed
    to the instance, outcome awaited); receivers a dispatcher claimed but has not sent yet are
    `pending`, like the ones not claimed.

    The figures come from one GROUP BY over the task's receivers, not from the task row's
    counters: read a moment apart (READ COMMITTED), a receiver settling in between was counted
    twice or not at all, and the parts did not add up to the receivers."""
    counts = receiver_counts(task.pk)
    sent, failed, total = counts.get(RS.SUCCESS, 0), counts.get(RS.FAILED, 0), sum(counts.values())
    claimed = counts.get(RS.SENDING, 0)
    flying = min(in_flight(task.pk, claimed), claimed)  # a later read: never more than the claimed
    outcome, outcome_text = task_outcome(task.status, counts)
    retrying, last_error = retry_state(task.pk)
    return {
        "id": task.pk,
        "status": task.status,
        "status_label": str(TaskStatus(task.status).label),
        "target_count": task.target_count,
        "success_count": sent,
        "fail_count": failed,
        "pending": counts.get(RS.PENDING, 0) + claimed - flying,
        "sending": flying,
        "skipped": counts.get(RS.SKIPPED, 0),
        "progress": round((sent + failed) * 100 / total, 2) if total else float(task.progress),
        "outcome": outcome,
        "outcome_text": outcome_text,
        "retrying": retrying,
        "last_error": last_error,
        "error_message": task.error_message,
        "started_at": task.started_at.isoformat() if task.started_at else None,
        "completed_at": task.completed_at.isoformat() if task.completed_at else None,
        # as the page shows dates (the active language, the platform's time zone)
        "completed_at_display": _display_time(task.completed_at),
    }


def _display_time(value):
    return formats.date_format(timezone.localtime(value), "DATETIME_FORMAT") if value else None


def count_messages(account_id: int, instance_id: int | None, n: int) -> None:
    """today_messages / total_messages on the account and its instance (sent and received)."""
    if not n:
        return
    WeworkAccount.all_objects.filter(pk=account_id).update(
        today_messages=F("today_messages") + n, total_messages=F("total_messages") + n
    )
    if instance_id:
        WeworkInstance.all_objects.filter(pk=instance_id).update(
            today_messages=F("today_messages") + n, total_messages=F("total_messages") + n
        )


def reset_daily_counters() -> tuple[int, int]:
    """today_messages back to 0 (beat, at local midnight); returns (accounts, instances) reset."""
    accounts = WeworkAccount.all_objects.exclude(today_messages=0).update(today_messages=0)
    instances = WeworkInstance.all_objects.exclude(today_messages=0).update(today_messages=0)
    return accounts, instances
