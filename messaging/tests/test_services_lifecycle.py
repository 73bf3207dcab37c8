"""A task's life (services/lifecycle.py, transitions.py, stops.py, counters.py): the operator's
actions with their state rules and permission, counters rebuilt from rows, risk-control stops."""
import pytest

from messaging import pacing, permissions
from messaging.errors import MessagingInvalid, SendPermissionDenied, TaskStateError
from messaging.models import MessageReceiver, MessageTask, ReceiverSendStatus as RS, TaskStatus
from messaging.services import counters, lifecycle, stops

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def test_pause_resume_cancel_resend(world, sim):
    user = world.admin
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:4], start=False)
    lifecycle.pause_task(user, task)
    with pytest.raises(TaskStateError) as exc:
        lifecycle.pause_task(user, task)
    assert exc.value.fields == {"status": ["Only pending or running tasks can be paused."]}
    lifecycle.resume_task(user, task)
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 4
    # resend failed
    MessageReceiver.objects.filter(task=task, receiver_wxid=world.contacts[0]).update(send_status=RS.FAILED,
                                                                                      error_code="x")
    counters.rebuild_counters(task.pk)
    assert lifecycle.resend_failed(user, task) == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 4 and task.fail_count == 0
    with pytest.raises(TaskStateError, match="no failed receivers"):
        lifecycle.resend_failed(user, task)
    # cancel
    t2 = make_task(world, message_type="text", content="x", receivers=world.contacts[4:8], start=False)
    lifecycle.cancel_task(user, t2)
    t2.refresh_from_db()
    assert t2.status == TaskStatus.CANCELLED and t2.receivers.filter(send_status=RS.SKIPPED).count() == 4
    with pytest.raises(TaskStateError, match="already finished"):
        lifecycle.cancel_task(user, t2)
    with pytest.raises(TaskStateError, match="cancelled task cannot be resent"):
        lifecycle.resend_failed(user, t2)


def test_actions_need_the_manage_permission(world, make_operator):
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:1], start=False)
    viewer = make_operator(permissions.VIEW_TASK, permissions.SEND_MESSAGE, username="viewer")
    for action in (lifecycle.pause_task, lifecycle.cancel_task, lifecycle.resend_failed, lifecycle.recount_task):
        with pytest.raises(SendPermissionDenied, match="may not manage"):
            action(viewer, task)
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING
    manager = make_operator(permissions.MANAGE_TASK, username="manager")
    assert lifecycle.pause_task(manager, task).status == TaskStatus.PAUSED


def test_counters_rebuild_from_rows(world, sim):
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:5])
    MessageTask.objects.filter(pk=task.pk).update(success_count=0, fail_count=99, progress=3)
    counters.rebuild_counters(task.pk)
    task.refresh_from_db()
    assert (task.success_count, task.fail_count, float(task.progress)) == (5, 0, 100.0)
    progress = counters.task_progress(task)
    assert progress["success_count"] == 5 and progress["pending"] == 0 and progress["completed_at_display"]


def test_account_stop_pauses_tasks_once_and_is_never_undone(world, sim, stops_announced):
    pending = make_task(world, message_type="text", content="x", receivers=world.contacts[:2], start=False)
    assert stops.stop_account(world.account.pk, "risk_control", "test") == 1
    assert stops.stop_account(world.account.pk, "risk_control", "again") == 0  # already paused
    assert [(s["account_id"], s["wxid"], s["reason"], s["tasks_paused"]) for s in stops_announced] == [
        (world.account.pk, world.account.wxid, "risk_control", 1)]
    pending.refresh_from_db()
    world.account.refresh_from_db()
    assert pending.status == TaskStatus.PAUSED and world.account.status == 2  # abnormal
    assert pacing.blocked_reason(world.account.pk) == "risk_control"
    lifecycle.kick()  # nothing restarts it
    pending.refresh_from_db()
    assert pending.status == TaskStatus.PAUSED
    with pytest.raises(MessagingInvalid, match="Sending is stopped"):
        lifecycle.resume_task(world.admin, pending)
    world.account.status = 1
    world.account.save()
    lifecycle.resume_task(world.admin, pending, clear_stop=True)
    assert pacing.blocked_reason(world.account.pk) is None
    pending.refresh_from_db()
    assert pending.status == TaskStatus.COMPLETED


def test_daily_counters_reset(world, sim):
    counters.count_messages(world.account.pk, world.instance.pk, 3)
    assert counters.reset_daily_counters() == (1, 1)
    world.account.refresh_from_db()
    assert world.account.today_messages == 0 and world.account.total_messages == 3
