"""Status changes the platform makes by itself: completion, and pauses or failures decided by a
dispatcher or a risk-control stop. Each is a conditional UPDATE, audited when it changed the row."""
from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone
from django.utils.translation import gettext as _

from wework.db.retry import run_idempotent

from ..models import MessageReceiver, MessageTask, ReceiverSendStatus as RS, TaskStatus
from . import task_audit
from .counters import rebuild_counters

FINAL_TASK_STATUSES = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


def auto_transition(task_id: int, operation: str, from_statuses: Iterable[int], new_status: int,
                    reason: str | None = None, **fields) -> bool:
    """Move the task from one of `from_statuses` to `new_status` (and set `fields`), audited
    (actor: the worker/system context) when it changed the row. Returns whether it did."""
    now = timezone.now()
    from_statuses = list(from_statuses)

    def transition() -> bool:
        row = (MessageTask.objects.select_for_update().filter(pk=task_id, status__in=from_statuses)
               .only("id", "task_name", "status").first())
        if row is None:
            return False
        old = row.status
        MessageTask.objects.filter(pk=task_id).update(status=new_status, updated_at=now, **fields)
        task_audit.record(operation, row, old, new_status, new_values={"reason": str(reason)} if reason else None)
        return True

    # Conditional on the old status (and audited in the same transaction): retried at once.
    return run_idempotent(transition, name=f"auto_transition {operation}")


def finish_if_done(task_id: int) -> bool:
    """RUNNING → COMPLETED when no receiver is pending or in flight."""
    if MessageReceiver.objects.filter(task_id=task_id, send_status__in=[RS.PENDING, RS.SENDING]).exists():
        return False
    counts = rebuild_counters(task_id)
    if counts.get(RS.FAILED) and not counts.get(RS.SUCCESS):
        # Nothing reached anyone: an end state that must not read "completed".
        message = _("No receiver was sent: all %(n)d failed.") % {"n": counts[RS.FAILED]}
        return auto_transition(task_id, "fail", [TaskStatus.RUNNING], TaskStatus.FAILED, reason=message,
                               error_message=message, completed_at=timezone.now(), progress=100)
    return auto_transition(task_id, "complete", [TaskStatus.RUNNING], TaskStatus.COMPLETED,
                           completed_at=timezone.now(), progress=100)


def fail_task(task_id: int, message: str) -> bool:
    """The task cannot go on (its account or instance is gone)."""
    return auto_transition(task_id, "fail", [TaskStatus.RUNNING, TaskStatus.PAUSED, TaskStatus.PENDING],
                           TaskStatus.FAILED, reason=message, error_message=message, completed_at=timezone.now())


def pause_automatically(task_id: int, reason: str) -> bool:
    """A running task pauses because its account cannot send now (offline, unauthorized, ...)."""
    return auto_transition(task_id, "pause_automatic", [TaskStatus.RUNNING], TaskStatus.PAUSED,
                           reason=reason, error_message=str(reason)[:2000])
