"""A task's life: start, the operator's actions (pause, resume, cancel, resend failed, rebuild
counters) and beat's `kick`.

Operator actions take the acting user and check `messaging.manage_task` on the task's instance
(SendPermissionDenied); a refused action raises TaskStateError (or MessagingInvalid about the
account) and leaves a FAILURE audit row. Every change is audited (task_audit).
"""
from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User

from .. import permissions, tasks as jobs
from ..dispatch import claims, leases, recording
from ..errors import TaskStateError
from ..models import MessageReceiver, MessageTask, ReceiverSendStatus as RS, TaskStatus, TaskType
from . import stops, task_audit
from .counters import COUNTER_FIELDS, rebuild_counters
from .senders import check_account_can_send, get_account
from .task_audit import audited_action
from .transitions import FINAL_TASK_STATUSES, finish_if_done

#: Tasks looked at per beat kick (due ones to start, running ones to keep going).
KICK_LIMIT = 500


def due_q(now: datetime) -> Q:
    return Q(scheduled_time__isnull=True) | Q(scheduled_time__lte=now)


def enqueue_start(task_id: int) -> None:
    """Start the task in Celery (call it on commit)."""
    jobs.start_task.delay(task_id)


def start_task(task_id: int, now: datetime | None = None) -> bool:
    """PENDING (due) or RUNNING → RUNNING, then make sure dispatchers run.

    Runs in Celery (queued by create/resume/resend, or by beat for a scheduled task that is due):
    the PENDING → RUNNING change is audited (`message_task.start`) with that context's actor."""
    now = now or timezone.now()
    with transaction.atomic():
        started = MessageTask.objects.filter(pk=task_id, status=TaskStatus.PENDING).filter(
            due_q(now)
        ).update(status=TaskStatus.RUNNING, started_at=now, updated_at=now)
        task = MessageTask.objects.filter(pk=task_id).first()
        if started and task is not None:
            task_audit.record("start", task, TaskStatus.PENDING, TaskStatus.RUNNING)
    if task is None or task.status != TaskStatus.RUNNING:
        return False
    leases.ensure_dispatchers(task)
    return True


def _locked_status(task_id: int) -> int | None:
    """The task's status, its row locked until the end of the transaction (MariaDB)."""
    return MessageTask.objects.select_for_update().filter(pk=task_id).values_list("status", flat=True).first()


def pause_task(user: User, task: MessageTask, reason: str | None = None) -> MessageTask:
    permissions.require_manage(user, task)
    return _pause(user, task, reason)


@audited_action("pause")
def _pause(user: User, task: MessageTask, reason: str | None) -> MessageTask:
    with transaction.atomic():
        old = _locked_status(task.pk)
        n = MessageTask.objects.filter(
            pk=task.pk, status__in=[TaskStatus.PENDING, TaskStatus.RUNNING]
        ).update(status=TaskStatus.PAUSED, error_message=reason, updated_at=timezone.now())
        if not n:
            raise TaskStateError(_("Only pending or running tasks can be paused."))
        task_audit.record("pause", task, old, TaskStatus.PAUSED,
                          new_values={"error_message": reason} if reason else None)
    task.refresh_from_db()
    return task


def resume_task(user: User, task: MessageTask, clear_stop: bool = False) -> MessageTask:
    """PAUSED → RUNNING (or PENDING while its scheduled time is ahead). `clear_stop` also clears
    the account's risk-control stop; without it a stopped account refuses the resume."""
    permissions.require_manage(user, task)
    return _resume(user, task, clear_stop)


@audited_action("resume")
def _resume(user: User, task: MessageTask, clear_stop: bool) -> MessageTask:
    if task.status != TaskStatus.PAUSED:
        raise TaskStateError(_("Only paused tasks can be resumed."))
    if task.account_id:
        if clear_stop:
            stops.clear_stop(task.account_id)
        check_account_can_send(get_account(task.account_id))
    now = timezone.now()
    status = (TaskStatus.PENDING if task.scheduled_time and task.scheduled_time > now and not task.started_at
              else TaskStatus.RUNNING)
    with transaction.atomic():
        n = MessageTask.objects.filter(pk=task.pk, status=TaskStatus.PAUSED).update(
            status=status, error_message=None, updated_at=now,
            started_at=task.started_at or (now if status == TaskStatus.RUNNING else None),
        )
        if not n:
            raise TaskStateError(_("Only paused tasks can be resumed."))
        task_audit.record("resume", task, TaskStatus.PAUSED, status,
                          extra={"clear_stop": True} if clear_stop else None)
    task.refresh_from_db()
    if status == TaskStatus.RUNNING:
        transaction.on_commit(lambda: enqueue_start(task.pk))
    return task


def cancel_task(user: User, task: MessageTask) -> MessageTask:
    """Pending receivers become skipped (messages already handed over keep their outcome)."""
    permissions.require_manage(user, task)
    return _cancel(user, task)


@audited_action("cancel")
def _cancel(user: User, task: MessageTask) -> MessageTask:
    now = timezone.now()
    with transaction.atomic():
        old = _locked_status(task.pk)
        if old is None or old in FINAL_TASK_STATUSES:
            raise TaskStateError(_("The task is already finished."))
        MessageTask.objects.filter(pk=task.pk).update(
            status=TaskStatus.CANCELLED, completed_at=now, updated_at=now
        )
        pending = MessageReceiver.objects.filter(task_id=task.pk, send_status=RS.PENDING)
        prepared = list(pending.filter(message_id__isnull=False).values_list("message_id", flat=True))
        skipped = pending.update(
            send_status=RS.SKIPPED, error_code="cancelled", error_message=_("Task cancelled."), updated_at=now
        )
        recording.cancel_prepared_messages(prepared)
        task_audit.record("cancel", task, old, TaskStatus.CANCELLED, new_values={"receivers_skipped": skipped})
    rebuild_counters(task.pk)
    task.refresh_from_db()
    return task


def resend_failed(user: User, task: MessageTask) -> int:
    """Put failed receivers back in the queue with a fresh message (new message_uuid); returns
    how many."""
    permissions.require_manage(user, task)
    return _resend_failed(user, task)


@audited_action("resend_failed")
def _resend_failed(user: User, task: MessageTask) -> int:
    if task.status == TaskStatus.CANCELLED:
        raise TaskStateError(_("A cancelled task cannot be resent."))
    if task.account_id:
        check_account_can_send(get_account(task.account_id))
    now = timezone.now()
    with transaction.atomic():
        old = _locked_status(task.pk)
        if old == TaskStatus.CANCELLED:
            raise TaskStateError(_("A cancelled task cannot be resent."))
        n = MessageReceiver.objects.filter(task_id=task.pk, send_status=RS.FAILED).update(
            send_status=RS.PENDING, retry_count=0, message_id=None, send_time=None,
            error_code=None, error_message=None, updated_at=now,
        )
        if not n:
            raise TaskStateError(_("The task has no failed receivers."))
        MessageTask.objects.filter(pk=task.pk).update(
            status=TaskStatus.RUNNING, completed_at=None, error_message=None, updated_at=now,
            started_at=task.started_at or now,
        )
        rebuild_counters(task.pk)
        task_audit.record("resend_failed", task, old, TaskStatus.RUNNING, new_values={"requeued": n})
        transaction.on_commit(lambda: enqueue_start(task.pk))
    task.refresh_from_db()
    return n


def recount_task(user: User, task: MessageTask) -> dict[int, int]:
    """Rebuild the task's counters from its receivers, audited (`message_task.rebuild_counters`,
    old and new counters; the status does not change)."""
    permissions.require_manage(user, task)
    return _recount(user, task)


@audited_action("rebuild_counters")
def _recount(user: User, task: MessageTask) -> dict[int, int]:
    with transaction.atomic():
        row = MessageTask.objects.select_for_update().filter(pk=task.pk).values("status", *COUNTER_FIELDS).first()
        if row is None:
            raise TaskStateError(_("The task no longer exists."))
        counts = rebuild_counters(task.pk)
        after = MessageTask.objects.filter(pk=task.pk).values(*COUNTER_FIELDS).first()
        task_audit.record("rebuild_counters", task, row["status"], row["status"],
                          old_values={f: row[f] for f in COUNTER_FIELDS},
                          new_values={f: after[f] for f in COUNTER_FIELDS})
    task.refresh_from_db()
    return counts


def kick(now: datetime | None = None) -> dict[str, int]:
    """Beat: start due tasks, hand back stale claims, keep dispatchers running, finish tasks."""
    now = now or timezone.now()
    started = 0
    for task_id in MessageTask.objects.filter(status=TaskStatus.PENDING).filter(due_q(now)).order_by(
        "priority", "id"
    ).values_list("id", flat=True)[:KICK_LIMIT]:
        started += bool(start_task(task_id, now))
    reclaimed = claims.reclaim_stale(now=now)
    kicked = 0
    for task in MessageTask.objects.filter(status=TaskStatus.RUNNING).order_by("priority", "id")[:KICK_LIMIT]:
        if finish_if_done(task.pk):
            continue
        kicked += leases.ensure_dispatchers(task)
    return {"started": started, "reclaimed": reclaimed, "kicked": kicked}


def skip_receiver_in_broadcasts(account_id: int, receiver_wxid: str, *, code: str, reason: str) -> int:
    """A contact's pending receivers in the account's unfinished broadcasts and batches become
    skipped (`code`, `reason`): an opt-out honoured from then on, also in a broadcast that is
    already sending. Single messages are left alone. Returns how many were skipped."""
    now = timezone.now()
    task_ids = list(MessageTask.objects.filter(account_id=account_id).exclude(task_type=TaskType.SINGLE)
                    .exclude(status__in=FINAL_TASK_STATUSES)
                    .filter(pk__in=MessageReceiver.objects.filter(receiver_wxid=receiver_wxid,
                                                                  send_status=RS.PENDING).values("task_id"))
                    .values_list("pk", flat=True))
    skipped = 0
    for task_id in task_ids:
        with transaction.atomic():
            pending = MessageReceiver.objects.filter(task_id=task_id, receiver_wxid=receiver_wxid,
                                                     send_status=RS.PENDING)
            prepared = list(pending.filter(message_id__isnull=False).values_list("message_id", flat=True))
            n = pending.update(send_status=RS.SKIPPED, error_code=code[:50], error_message=reason, updated_at=now)
            recording.cancel_prepared_messages(prepared)
        if n:
            skipped += n
            rebuild_counters(task_id)
            finish_if_done(task_id)
    return skipped
