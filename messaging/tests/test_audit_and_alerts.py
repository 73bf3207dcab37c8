"""Task actions change rows with QuerySet.update() (no model signal): every action reports its
change (messaging.signals.task_changed) and monitoring writes the audit row with the actor, the
task, the old and new status — from the page, the API, the admin action and Celery; a refused
action leaves a FAILURE row. (An integration test of messaging and monitoring: the rows are
monitoring's.)"""
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from messaging import pacing
from messaging.models import MessageReceiver, MessageTask, ReceiverSendStatus as RS, TaskStatus
from messaging.services import counters, lifecycle, stops
from contacts.models import AccountStatus, WeworkAccount
from monitoring.models import AlertRecord, AlertStatus, AuditLog

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def _task(world, n=3):
    return make_task(world, message_type="text", content="x", receivers=world.contacts[:n], start=False)


def _rows(task, operation):
    return list(AuditLog.objects.filter(operation=f"message_task.{operation}", resource_id=str(task.pk),
                                        resource_type="message_tasks").order_by("id"))


def _one(task, operation, result="SUCCESS"):
    rows = [r for r in _rows(task, operation) if r.result == result]
    assert len(rows) == 1, (operation, [(r.operation, r.result) for r in _rows(task, operation)])
    return rows[0]


def test_page_actions_are_audited(browser, world, sim):
    task = _task(world)
    assert browser.post(reverse("messaging:task_action", args=[task.pk, "pause"])).status_code == 302
    row = _one(task, "pause")
    assert row.user_id == world.admin.pk and row.username == "root"
    assert row.old_values == {"status": TaskStatus.PENDING} and row.new_values == {"status": TaskStatus.PAUSED}
    assert row.extra_info["source"] == "web" and row.resource_name == str(task)

    browser.post(reverse("messaging:task_action", args=[task.pk, "resume"]))
    row = _one(task, "resume")
    assert row.user_id == world.admin.pk
    assert row.old_values["status"] == TaskStatus.PAUSED and row.new_values["status"] == TaskStatus.RUNNING
    # the resume queued the start (eager Celery): the task was already running, no second row
    assert not _rows(task, "start")

    other = _task(world)
    browser.post(reverse("messaging:task_action", args=[other.pk, "cancel"]))
    row = _one(other, "cancel")
    assert row.old_values == {"status": TaskStatus.PENDING}
    assert row.new_values == {"status": TaskStatus.CANCELLED, "receivers_skipped": 3}
    # refused: a cancelled task cannot be cancelled again nor resent
    browser.post(reverse("messaging:task_action", args=[other.pk, "cancel"]))
    row = _one(other, "cancel", result="FAILURE")
    assert row.old_values == {"status": TaskStatus.CANCELLED} and row.new_values is None
    assert "already finished" in row.error_message and row.user_id == world.admin.pk
    browser.post(reverse("messaging:task_action", args=[other.pk, "resend"]))
    assert _one(other, "resend_failed", result="FAILURE").old_values == {"status": TaskStatus.CANCELLED}


def test_api_actions_are_audited(browser, world, sim):
    task = _task(world, 2)
    r = browser.post(f"/api/v1/messaging/tasks/{task.pk}/pause/")
    assert r.status_code == 200, r.content
    row = _one(task, "pause")
    assert row.extra_info["source"] == "api" and row.user_id == world.admin.pk
    assert (row.old_values, row.new_values) == ({"status": 0}, {"status": 5})
    r = browser.post(f"/api/v1/messaging/tasks/{task.pk}/resume/", {"clear_stop": True},
                     content_type="application/json")
    assert r.status_code == 200, r.content
    row = _one(task, "resume")
    assert row.new_values == {"status": TaskStatus.RUNNING} and row.extra_info["clear_stop"] is True
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED  # delivered by the simulator
    # two receivers failed: resend them
    MessageReceiver.objects.filter(task=task).update(send_status=RS.FAILED, error_code="x")
    counters.rebuild_counters(task.pk)
    r = browser.post(f"/api/v1/messaging/tasks/{task.pk}/resend-failed/")
    assert r.status_code == 200 and r.json()["requeued"] == 2
    row = _one(task, "resend_failed")
    assert row.old_values == {"status": TaskStatus.COMPLETED}
    assert row.new_values == {"status": TaskStatus.RUNNING, "requeued": 2}
    # refused through the API: 400 and a FAILURE row naming the status it found
    r = browser.post(f"/api/v1/messaging/tasks/{task.pk}/pause/")
    assert r.status_code == 400
    assert _one(task, "pause", result="FAILURE").old_values == {"status": TaskStatus.COMPLETED}


def test_admin_actions_are_audited(browser, world, sim):
    a, b = _task(world, 1), _task(world, 2)
    url = reverse("admin:messaging_messagetask_changelist")
    r = browser.post(url, {"action": "pause_tasks", "_selected_action": [a.pk, b.pk]})
    assert r.status_code == 302
    for task in (a, b):
        row = _one(task, "pause")
        assert row.extra_info["source"] == "admin" and row.user_id == world.admin.pk
        assert row.new_values == {"status": TaskStatus.PAUSED}
    browser.post(url, {"action": "cancel_tasks", "_selected_action": [a.pk]})
    assert _one(a, "cancel").old_values == {"status": TaskStatus.PAUSED}
    # counters rebuilt by hand: old and new counters, status unchanged
    MessageTask.objects.filter(pk=b.pk).update(target_count=9, success_count=7)
    browser.post(url, {"action": "rebuild", "_selected_action": [b.pk]})
    row = _one(b, "rebuild_counters")
    assert row.old_values["status"] == row.new_values["status"] == TaskStatus.PAUSED
    assert (row.old_values["target_count"], row.new_values["target_count"]) == (9, 2)
    assert (row.old_values["success_count"], row.new_values["success_count"]) == (7, 0)
    browser.post(url, {"action": "resume_tasks", "_selected_action": [b.pk]})
    assert _one(b, "resume").new_values == {"status": TaskStatus.RUNNING}


def test_celery_start_is_audited_with_the_creator(browser, world, sim):
    """Compose → the start runs in Celery (eager here) with the creator as actor."""
    r = browser.post("/api/v1/messaging/tasks/", {
        "account": world.account.pk, "message_type": "text", "content": "hi",
        "receivers": [{"wxid": world.contacts[0]}, {"wxid": world.contacts[1]}]},
        content_type="application/json")
    assert r.status_code == 201, r.content
    task = MessageTask.objects.get(pk=r.json()["id"])
    row = _one(task, "start")
    assert (row.old_values, row.new_values) == ({"status": 0}, {"status": 1})
    assert row.user_id == world.admin.pk and row.extra_info["source"] == "task"


def test_scheduled_start_by_beat_is_audited_as_system(world, sim):
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:1],
                     scheduled_time=timezone.now() + timedelta(hours=1))
    assert not _rows(task, "start")
    lifecycle.kick(now=timezone.now() + timedelta(hours=2))
    row = _one(task, "start")
    assert row.user_id is None and row.new_values == {"status": TaskStatus.RUNNING}


def test_automatic_transitions_are_audited(world, sim, fast):
    """Completion, a pause on risk control and a pause because the account cannot send are
    decided by the platform: each leaves one audit row with the old and new status and why."""
    done = _task(world, 2)
    lifecycle.start_task(done.pk)
    done.refresh_from_db()
    assert done.status == TaskStatus.COMPLETED
    row = _one(done, "complete")
    assert (row.old_values, row.new_values) == ({"status": TaskStatus.RUNNING}, {"status": TaskStatus.COMPLETED})

    sim.inject(risk_control_after=1)
    stopped = _task(world, 5)
    lifecycle.start_task(stopped.pk)
    stopped.refresh_from_db()
    assert stopped.status == TaskStatus.PAUSED
    row = _one(stopped, "pause_risk_control")
    assert row.old_values == {"status": TaskStatus.RUNNING}
    assert row.new_values == {"status": TaskStatus.PAUSED, "reason": "risk_control"}
    assert not _rows(stopped, "complete")


def test_a_real_alert_once_per_account_stop(world):
    """monitoring turns messaging's account_stopped signal into one open alert per account."""
    stops.stop_account(world.account.pk, "risk_control", "test")
    pacing.unblock(world.account.pk)
    stops.stop_account(world.account.pk, "risk_control", "again")  # a second stop refreshes the open alert
    alerts = AlertRecord.objects.filter(rule_name="messaging.account_risk_control")
    assert alerts.count() == 1 and world.account.wxid in alerts.get().alert_title
    assert alerts.get().instance_id == world.instance.pk


def test_clearing_the_stop_closes_its_alert(browser, world, sim):
    """The CRITICAL risk-control alert stayed open after the stop was cleared and the task
    completed: clearing the stop (resume with "clear the stop") resolves it."""
    task = _task(world, 2)
    stops.stop_account(world.account.pk, "risk_control", "test")
    task.refresh_from_db()
    assert task.status == TaskStatus.PAUSED
    alert = AlertRecord.objects.get(rule_name="messaging.account_risk_control")
    assert alert.status == AlertStatus.ACTIVE
    WeworkAccount.all_objects.filter(pk=world.account.pk).update(status=AccountStatus.ONLINE)  # checked: fine
    r = browser.post(reverse("messaging:task_action", args=[task.pk, "resume"]), {"clear_stop": "1"})
    assert r.status_code == 302
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED and alert.resolved_by is None
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED


def test_page_offers_clearing_a_risk_control_stop(browser, world, sim):
    """After a risk-control stop the page's "Resume" is refused ("Clear the stop after checking
    the account"): the page offers "Clear the stop and resume"."""
    task = _task(world, 2)
    lifecycle.pause_task(world.admin, task)
    pacing.block(world.account.pk, "risk_control")
    try:
        page = browser.get(reverse("messaging:task_detail", args=[task.pk]))
        assert b'name="clear_stop" value="1"' in page.content
        url = reverse("messaging:task_action", args=[task.pk, "resume"])
        browser.post(url)  # plain resume: refused while the stop holds
        task.refresh_from_db()
        assert task.status == TaskStatus.PAUSED
        assert _one(task, "resume", result="FAILURE")
        assert browser.post(url, {"clear_stop": "1"}).status_code == 302
        assert pacing.blocked_reason(world.account.pk) is None
        row = _one(task, "resume")
        assert row.extra_info["clear_stop"] is True
        task.refresh_from_db()
        assert task.status in (TaskStatus.RUNNING, TaskStatus.COMPLETED)
        # no stop: the button is not shown
        other = _task(world, 1)
        lifecycle.pause_task(world.admin, other)
        page = browser.get(reverse("messaging:task_detail", args=[other.pk]))
        assert b'name="clear_stop"' not in page.content
    finally:
        pacing.unblock(world.account.pk)
