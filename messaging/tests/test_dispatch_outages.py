"""A dispatcher that ends early or on an outage lets go at once (issue 12): its lease (a resume
does not wait LEASE_TTL_S) and its claims (a resume does not wait CLAIM_LEASE_S)."""
import threading

import pytest
import redis

from messaging.clock import FakeClock
from messaging.dispatch import leases, recording, worker
from messaging.dispatch.outcomes import Outcome, OutcomeKind
from messaging.models import Message, MessageReceiver, MessageTask, ReceiverSendStatus as RS, SendStatus, TaskStatus
from wework import shards
from wework.testing.queries import capture_queries

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def _task(world, n, **kw):
    return make_task(world, message_type="text", content="x", receivers=[{"wxid": w} for w in world.contacts[:n]],
                     start=False, **kw)


@pytest.mark.parametrize("state", ["missing", "not-running"])
def test_early_exit_drops_the_lease(world, state):
    task = _task(world, 2)
    leases.lease_add(task.pk, "tok-early")
    if state == "missing":
        MessageTask.objects.filter(pk=task.pk).delete()
    assert worker.run(task.pk, token="tok-early") == state
    assert leases.lease_count(task.pk) == 0


def test_redis_outage_mid_dispatch_releases_claims_and_lease(world, sim, monkeypatch, fast):
    # Claims of 10 (run() reloads the task, so the setting, not an attribute, sets the size).
    fast.update({"CLAIM_BATCH": 10})
    # the loop renews the lease at every claim here, as it does once a second in a longer run
    monkeypatch.setattr(worker, "LEASE_RENEW_EVERY_S", 0)
    task = _task(world, 30)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    leases.lease_add(task.pk, "tok-outage")
    real_add = leases.lease_add
    d = worker.Dispatcher(task.pk, token="tok-outage")

    def flaky_add(task_id, token, ttl=None):
        # Redis goes away once the first claim has been sent. Only the loop's own renewal
        # raises: the claim-lease thread swallows the error, and when it happens to run must
        # not decide how far the run gets.
        if d.stats["sent"] >= 10:
            if threading.current_thread() is threading.main_thread():
                raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
            return None
        return real_add(task_id, token, ttl)

    monkeypatch.setattr(leases, "lease_add", flaky_add)
    with pytest.raises(redis.exceptions.ConnectionError):
        d.run()
    monkeypatch.setattr(leases, "lease_add", real_add)
    assert d.stats["sent"] == 10
    # nothing left claimed: the next dispatcher takes the rest at once
    assert not task.receivers.filter(send_status=RS.SENDING).exists()
    assert task.receivers.filter(send_status=RS.PENDING).count() >= 20
    assert leases.lease_count(task.pk) == 0
    assert worker.run(task.pk) == "completed"
    assert len(sim.messages) == 30


def test_the_loop_renews_the_dispatcher_lease_at_most_once_an_interval(world, sim, monkeypatch, fast):
    fast.update({"CLAIM_BATCH": 10})
    task = _task(world, 50)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    renewals = []
    real_add = leases.lease_add

    def counted_add(task_id, token, ttl=None):
        if threading.current_thread() is threading.main_thread():
            renewals.append(token)
        return real_add(task_id, token, ttl)

    monkeypatch.setattr(leases, "lease_add", counted_add)
    clock = FakeClock()  # moves only when the run sleeps
    start = clock.monotonic()
    d = worker.Dispatcher(task.pk, token="tok-renew", clock=clock)
    assert d.run() == "completed"
    assert d.stats["claims"] >= 5 and len(sim.messages) == 50
    # once at the first heartbeat, then once a second of the run's clock (it was twice a claim);
    # the claim lease's thread renews it as well, on its own schedule
    assert 1 <= len(renewals) <= 1 + (clock.monotonic() - start) / worker.LEASE_RENEW_EVERY_S < d.stats["claims"]
    monkeypatch.setattr(worker, "LEASE_RENEW_EVERY_S", 0)
    renewals.clear()
    task2 = _task(world, 30)
    MessageTask.objects.filter(pk=task2.pk).update(status=TaskStatus.RUNNING)
    assert worker.Dispatcher(task2.pk, token="tok-every").run() == "completed"
    assert len(renewals) >= 3  # at least one a claim when the interval is 0


def test_a_deadlocked_flush_is_retried_at_once_and_counts_once(world, monkeypatch):
    from django.db import OperationalError

    from messaging.dispatch import recording
    from messaging.dispatch.outcomes import Outcome, OutcomeKind

    task = _task(world, 1)
    d = worker.Dispatcher(task.pk)
    d.load()
    prepared, _failed = d.claim(0)
    real = recording._apply_success
    calls = []

    def deadlock_once(items, now, later):
        calls.append(1)
        n = real(items, now, later)
        if len(calls) == 1:  # after the writes, as a deadlock on the counter rows would be
            raise OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
        return n

    monkeypatch.setattr(recording, "_apply_success", deadlock_once)
    monkeypatch.setattr("wework.db.retry.time.sleep", lambda s: None)
    item = prepared[0]
    done = recording.apply_outcomes(task.pk, [Outcome(item.row["id"], item.message_id, OutcomeKind.SUCCESS)],
                                    world.account.pk, world.instance.pk)
    assert done["success"] == 1 and len(calls) == 2
    task.refresh_from_db()
    world.account.refresh_from_db()
    assert task.success_count == 1 and world.account.total_messages == 1


def _receiver_reads(queries) -> int:
    """SELECTs of receiver rows (the locking read of a flush; FOR UPDATE is not written on SQLite)."""
    return sum(1 for q in queries if q["sql"].lstrip().upper().startswith("SELECT") and "message_receivers" in q["sql"])


def test_a_flush_of_live_claims_needs_no_locking_read_and_a_late_outcome_changes_nothing(world):
    """A flush whose receivers are all SENDING is proved so by its conditional UPDATEs (no
    locking read first); one late outcome among them rolls that back and records the flush
    with its receivers locked and filtered: the late receiver's message keeps the state it had,
    and only the live receivers count."""
    task = _task(world, 4)
    d = worker.Dispatcher(task.pk)
    d.load()
    prepared, _failed = d.claim(0)
    assert len(prepared) == 4
    first, late, *rest = prepared
    with capture_queries() as live:
        done = recording.apply_outcomes(task.pk, [Outcome(first.row["id"], first.message_id, OutcomeKind.SUCCESS)],
                                        world.account.pk, world.instance.pk)
    assert done["success"] == 1 and _receiver_reads(live.captured_queries) == 0
    # the status webhook settled `late` as failed before the dispatcher's flush of its answer
    MessageReceiver.objects.filter(pk=late.row["id"]).update(send_status=RS.FAILED)
    recording.update_messages([late.message_id], send_status=SendStatus.FAILED, error_code="target_not_found")
    outcomes = [Outcome(late.row["id"], late.message_id, OutcomeKind.SUCCESS)] + [
        Outcome(p.row["id"], p.message_id, OutcomeKind.SUCCESS) for p in rest]
    with capture_queries() as mixed:
        done = recording.apply_outcomes(task.pk, outcomes, world.account.pk, world.instance.pk)
    assert done["success"] == 2 and _receiver_reads(mixed.captured_queries) >= 1
    late_message = shards.get(Message, late.message_id)
    assert late_message.send_status == SendStatus.FAILED and late_message.error_code == "target_not_found"
    assert MessageReceiver.objects.get(pk=late.row["id"]).send_status == RS.FAILED
    assert all(shards.get(Message, p.message_id).send_status == SendStatus.SUCCESS for p in [first, *rest])
    task.refresh_from_db()
    world.account.refresh_from_db()
    assert (task.success_count, task.fail_count, world.account.total_messages) == (3, 0, 3)
    assert float(task.progress) == 75.0
