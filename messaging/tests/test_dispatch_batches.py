"""Dispatch with batch sends (protocol 1.1): without pacing, a dispatcher hands an instance that
offers batches up to BATCH_SEND_SIZE messages a request, with the same guarantees as single
sends: each message once, exact stop bounds, retries with the same uuid after a transient
failure, single sends when the instance has no batches or refuses one."""
import pytest

from simulator.server import SimError
from messaging import pacing
from messaging.models import Message, ReceiverSendStatus as RS, SendStatus, TaskStatus
from wework import shards

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def _broadcast(world, n, **kw):
    return make_task(world, message_type="text", content="Hi {{ receiver_name }}", receivers=world.contacts[:n], **kw)


def test_broadcast_goes_in_batches_each_message_once(world, sim, fast):
    fast["BATCH_SEND_SIZE"] = 25
    task = _broadcast(world, 60)
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 60 and task.fail_count == 0
    assert sim.batch_sizes == [25, 25, 10]
    assert sim.requests.get("send_message", 0) == 0
    assert len(sim.messages) == 60 and set(sim.receipts.values()) == {1}
    receivers = list(task.receivers.all())
    assert {r.send_status for r in receivers} == {RS.SUCCESS}
    messages = [shards.get(Message, r.message_id) for r in receivers]
    assert {m.send_status for m in messages} == {SendStatus.SUCCESS}
    # each receiver's message went out with its own uuid and its rendered text
    sent = {rec["client_msg_id"]: rec["request"] for rec in sim.messages.values()}
    for r, m in zip(receivers, messages):
        assert sent[m.message_uuid]["conversation_id"] == r.receiver_wxid
        assert sent[m.message_uuid]["content"]["text"] == f"Hi {r.receiver_name}"


def test_single_sends_to_an_instance_without_batches(world, sim, fast):
    sim.batch_send_max = 0  # a revision 1.0 instance
    task = _broadcast(world, 12)
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 12
    assert sim.batch_sizes == [] and sim.requests["send_message"] == 12


def test_batches_only_without_pacing(world, sim, fast):
    fast["MIN_INTERVAL_S"] = 0.01
    task = _broadcast(world, 5)
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 5
    assert sim.batch_sizes == [] and sim.requests["send_message"] == 5


def test_risk_control_in_a_batch_stops_exactly_there(world, sim, fast, stops_announced):
    sim.inject(risk_control_after=2)
    task = _broadcast(world, 20)
    task.refresh_from_db()
    assert task.status == TaskStatus.PAUSED
    # two accepted, the third refused with risk_control, nothing after it attempted
    assert len(sim.receipts) == 3 and set(sim.receipts.values()) == {1}
    counts = {s: task.receivers.filter(send_status=s).count() for s in RS.values}
    assert counts[RS.PENDING] == 17
    assert counts[RS.SUCCESS] + counts[RS.FAILED] + counts[RS.SENDING] == 3
    # the refused one failed; the two accepted may also report risk_control when the instance
    # finishes them after the account turned abnormal
    refused = task.receivers.filter(error_code="risk_control")
    assert 1 <= refused.count() <= 3 and {r.send_status for r in refused} <= {RS.FAILED}
    assert len(stops_announced) == 1 and pacing.blocked_reason(world.account.pk) == "risk_control"


def test_rate_limited_item_holds_the_rest_back(world, sim, fast):
    sim.inject(rate_limit_per_min=2)
    task = _broadcast(world, 6, max_retry=2)
    counts = {s: task.receivers.filter(send_status=s).count() for s in RS.values}
    assert counts[RS.SUCCESS] == 2 and counts[RS.PENDING] == 4
    limited = task.receivers.get(error_code="rate_limited")
    assert limited.retry_count == 1 and limited.message_id is None  # refused: a new uuid next time
    # the three never attempted keep their message and their retry budget
    untouched = task.receivers.filter(send_status=RS.PENDING, error_code__isnull=True)
    assert untouched.count() == 3 and {r.retry_count for r in untouched} == {0}
    assert len(sim.receipts) == 3


def test_a_batch_refused_as_a_whole_falls_back_to_single_sends(world, sim, fast, monkeypatch):
    def refuse(path, query, body):
        raise SimError("target_not_found", "No such command.")

    monkeypatch.setattr(sim, "cmd_send_messages", refuse)
    fast["BATCH_SEND_SIZE"] = 10
    task = _broadcast(world, 35)  # one claim, four batches' worth: the rest goes one by one
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 35
    assert sim.requests["send_messages"] == 1 and sim.requests["send_message"] == 35
    assert len(sim.messages) == 35 and set(sim.receipts.values()) == {1}


def test_lost_batch_answer_is_retried_with_the_same_uuids(world, sim, fast, monkeypatch):
    original = sim.cmd_send_messages
    calls = []

    def accept_then_fail(path, query, body):
        calls.append(len(body["messages"]))
        status, data = original(path, query, body)  # the instance takes them...
        if len(calls) <= 2:  # ...and the answer is lost, also for the client's own retry
            raise SimError("internal", "Crashed before answering.")
        return status, data

    monkeypatch.setattr(sim, "cmd_send_messages", accept_then_fail)
    task = _broadcast(world, 10, max_retry=3)
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 10
    # every message exists once at the instance although each was received three times
    assert len(sim.messages) == 10 and set(sim.receipts.values()) == {3}
    assert {r.retry_count for r in task.receivers.all()} == {1}


def test_fallback_to_single_sends_keeps_the_risk_control_bound(world, sim, fast, monkeypatch):
    def refuse(path, query, body):
        raise SimError("invalid_request", "Batches are broken here.")

    monkeypatch.setattr(sim, "cmd_send_messages", refuse)
    sim.inject(risk_control_after=3)
    task = _broadcast(world, 20)
    task.refresh_from_db()
    assert task.status == TaskStatus.PAUSED
    # three accepted, the fourth refused; nothing after it was attempted, one by one or not
    assert len(sim.receipts) == 4 and sim.requests["send_message"] == 4
    assert task.receivers.filter(send_status=RS.PENDING).count() == 16


@pytest.mark.parametrize("value, text", [
    (None, "NULL"), (True, "1"), (7, "7"), (2**62, str(2**62)),
    ("2026-12-04 06:20:00.123456", "'2026-12-04 06:20:00.123456'"),
    ("it's", None), ("1; DROP TABLE x", None), ("50%", None), ({"a": 1}, None), (1.5, None),
])
def test_only_values_that_need_no_escaping_are_written_into_the_statement(value, text):
    """Message rows are inserted with integers, NULLs and timestamps as literals (no driver
    escaping); anything else stays a parameter."""
    from wework.db.literals import inline_literal

    assert inline_literal(value) == text
