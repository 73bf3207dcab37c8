"""What the dispatcher does with each answer (dispatch/outcomes.py and the worker): failures
for good, retries with the same or a new uuid, risk control that stops the account exactly
where the instance refused, acknowledgements by webhook, an account flagged by the instance."""
import pytest
from django.utils import timezone

from contacts.models import AccountStatus

from messaging import inbound, pacing
from messaging.dispatch import worker
from messaging.dispatch.outcomes import OutcomeKind, backoff_s, classify, error_outcome, status_outcome
from messaging.models import Message, MessageReceiver, MessageTask, ReceiverSendStatus as RS, SendStatus, TaskStatus
from messaging.services import lifecycle, receivers, sending
from messaging.signals import task_changed
from wework import shards

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("code,retry_count,kind,keep", [
    ("timeout", 0, OutcomeKind.RETRY, True),  # the instance may have it: same uuid
    ("internal", 0, OutcomeKind.RETRY, False),  # a refusal: a repeat needs a new uuid
    ("rate_limited", 2, OutcomeKind.RETRY, False),
    ("timeout", 3, OutcomeKind.FAILED, True),  # retries used up
    ("target_not_found", 0, OutcomeKind.FAILED, True),
    (None, 0, OutcomeKind.FAILED, True),
])
def test_classify(code, retry_count, kind, keep):
    assert classify(code, retry_count, max_retry=3) == (kind, keep)


def test_answers_that_stop_or_pause(settings):
    settings.MESSAGING = {"RETRY_BASE_S": 5, "RETRY_MAX_S": 600}
    assert error_outcome(1, 2, 0, 3, 9, "risk_control", "x").kind == OutcomeKind.STOP
    assert error_outcome(1, 2, 0, 3, 9, "account_offline", "x").kind == OutcomeKind.PAUSE
    assert status_outcome(1, 2, 0, 3, 9, "queued").kind == OutcomeKind.QUEUED
    assert status_outcome(1, 2, 0, 3, 9, "sent").kind == "success"  # the kinds read as their names
    assert (backoff_s(0), backoff_s(3), backoff_s(10), backoff_s(0, retry_after_s=30)) == (5, 40, 600, 30)


def test_media_fetch_failure_fails_receiver_with_reason(world, sim):
    task = sending.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                message_type="image", content={"url": "https://cdn.example.com/fail.png"})
    r = task.receivers.get()
    assert r.send_status == RS.FAILED and r.error_code == "media_fetch_failed"
    task.refresh_from_db()
    # nothing reached anyone: the task ends failed, never "completed" (issue 18)
    assert task.fail_count == 1 and task.status == TaskStatus.FAILED
    assert list(receivers.failed_receivers(task)) == [r]


def test_transient_errors_retry_with_new_uuid_then_succeed(world, sim):
    sim.inject(rate_limit_per_min=2)
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:3], max_retry=2, start=False)
    lifecycle.start_task(task.pk)
    # the third send to arrive is refused (without pacing, sends of a claim go several at a time,
    # so which receiver's send arrives third is not fixed)
    assert task.receivers.filter(send_status=RS.SUCCESS).count() == 2
    r3 = task.receivers.get(error_code="rate_limited")
    assert r3.send_status == RS.PENDING and r3.retry_count == 1
    assert r3.message_id is None  # a refused send gets a new uuid next time
    sim.inject(rate_limit_per_min=0)
    MessageReceiver.objects.filter(pk=r3.pk).update(send_time=None)
    pacing.pacer().reset(world.account.pk)
    lifecycle.kick()
    r3.refresh_from_db()
    assert r3.send_status == RS.SUCCESS
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 3


def test_risk_control_stops_account_pauses_tasks_and_never_retries(world, sim, fast, stops_announced):
    fast["SEND_CONCURRENCY"] = 1  # one send at a time: the refusal is seen before the next send
    other = make_task(world, message_type="text", content="y", receivers=world.contacts[10:12], start=False,
                      scheduled_time=timezone.now() + timezone.timedelta(hours=1))
    sim.inject(risk_control_after=2)
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:5])
    task.refresh_from_db()
    other.refresh_from_db()
    assert task.status == TaskStatus.PAUSED and other.status == TaskStatus.PAUSED
    counts = {s: task.receivers.filter(send_status=s).count() for s in RS.values}
    # two accepted before the stop (sent, or refused when the account turned abnormal), the third
    # refused with risk_control, the last two never attempted
    assert counts[RS.PENDING] == 2 and counts[RS.SUCCESS] + counts[RS.FAILED] + counts[RS.SENDING] == 3
    assert task.receivers.filter(error_code="risk_control").exists()
    assert len(stops_announced) == 1 and stops_announced[0]["reason"] == "risk_control"
    assert pacing.blocked_reason(world.account.pk) == "risk_control"
    world.account.refresh_from_db()
    assert world.account.status == 2  # abnormal
    lifecycle.kick()  # nothing restarts it
    task.refresh_from_db()
    assert task.status == TaskStatus.PAUSED


def test_risk_control_with_concurrent_sends_stops_after_those_in_flight(world, sim, fast, stops_announced):
    fast["SEND_CONCURRENCY"] = 4
    sim.inject(risk_control_after=2)
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:20])
    task.refresh_from_db()
    assert task.status == TaskStatus.PAUSED
    counts = {s: task.receivers.filter(send_status=s).count() for s in RS.values}
    # two accepted, then the refusal; besides it only the sends already in flight (at most 3)
    # were attempted, each once; everything else is pending again
    receipts = sim.stats()["receipts"]
    attempted = len(receipts)
    assert set(receipts.values()) == {1}
    assert 3 <= attempted <= 6
    assert counts[RS.SUCCESS] + counts[RS.FAILED] + counts[RS.SENDING] == attempted
    assert counts[RS.PENDING] == 20 - attempted
    assert task.receivers.filter(error_code="risk_control").exists()
    assert len(stops_announced) == 1 and pacing.blocked_reason(world.account.pk) == "risk_control"


def test_status_webhook_confirms_queued_send(world, sim, fast):
    fast["ACK_WAIT_S"] = 0  # leave the acknowledgement to the webhook
    fast["ACK_POLL_AFTER_S"] = 3600
    fast["ACK_FROM_EVENTS"] = False
    task = sending.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                message_type="text", content="x")
    r = task.receivers.get()
    assert r.send_status == RS.SENDING
    m = shards.get(Message, r.message_id)
    assert m.send_status == SendStatus.SENDING
    event = {"event_id": "e1", "type": "message.status", "account_id": world.account.wxid, "seq": 1,
             "data": {"message_id": "msg_1", "client_msg_id": m.message_uuid, "status": "sent"}}
    done = inbound.handle_message_status(world.instance, event)
    assert done["success"] == 1
    assert inbound.handle_message_status(world.instance, event)["success"] == 0  # repeat: no change
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 1
    assert shards.get(Message, r.message_id).message_metadata["instance_message_id"] == "msg_1"


def test_offline_after_acceptance_retries_and_pauses_audited(world, sim, fast):
    """A message.status saying the account went offline after accepting: the message is retried
    later with a new uuid, the task pauses (an automatic, audited transition)."""
    fast["ACK_WAIT_S"] = 0
    fast["ACK_POLL_AFTER_S"] = 3600
    fast["ACK_FROM_EVENTS"] = False
    task = sending.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                message_type="text", content="x")
    r = task.receivers.get()
    changes = []
    task_changed.connect(lambda sender, **kw: changes.append(kw["operation"]), weak=False, dispatch_uid="t-off")
    try:
        event = {"event_id": "e2", "type": "message.status", "account_id": world.account.wxid, "seq": 2,
                 "data": {"client_msg_id": shards.get(Message, r.message_id).message_uuid, "status": "failed",
                          "error": {"code": "account_offline", "message": "Went offline."}}}
        assert inbound.handle_message_status(world.instance, event)["retry"] == 1
    finally:
        task_changed.disconnect(dispatch_uid="t-off")
    r.refresh_from_db()
    task.refresh_from_db()
    assert r.send_status == RS.PENDING and r.message_id is None and r.retry_count == 1
    assert task.status == TaskStatus.PAUSED and task.error_message == "Went offline."
    assert changes == ["pause_automatic"]


def test_banned_account_event_stops_running_dispatch(world, sim, stops_announced):
    """The contacts app marks the account banned (account.banned): the next dispatcher check
    stops the account's sending, pauses its tasks and tells monitoring once."""
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:3], start=False)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    type(world.account).all_objects.filter(pk=world.account.pk).update(status=AccountStatus.BANNED)
    assert worker.run(task.pk) == "stopped-account"
    task.refresh_from_db()
    assert task.status == TaskStatus.PAUSED and not sim.messages and len(stops_announced) == 1
    assert pacing.blocked_reason(world.account.pk) == "account_banned"


def test_late_queued_flush_does_not_overwrite_the_status_webhooks_success(world, sim, fast):
    """The race of issue 12 (34 % of rows stuck "sending"): the status webhook settles the
    message first, the dispatcher's flush of the instance's earlier `queued` answer follows."""
    from messaging.dispatch.outcomes import Outcome
    from messaging.dispatch.recording import apply_outcomes

    fast["ACK_WAIT_S"] = 0
    fast["ACK_POLL_AFTER_S"] = 3600
    fast["ACK_FROM_EVENTS"] = False
    task = sending.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                message_type="text", content="x")
    r = task.receivers.get()
    m = shards.get(Message, r.message_id)
    event = {"event_id": "e1", "type": "message.status", "account_id": world.account.wxid, "seq": 1,
             "data": {"message_id": "msg_1", "client_msg_id": m.message_uuid, "status": "sent"}}
    assert inbound.handle_message_status(world.instance, event)["success"] == 1
    apply_outcomes(task.pk, [Outcome(r.pk, m.pk, OutcomeKind.QUEUED)], world.account.pk, world.instance.pk)
    assert shards.get(Message, r.message_id).send_status == SendStatus.SUCCESS
    r.refresh_from_db()
    assert r.send_status == RS.SUCCESS
