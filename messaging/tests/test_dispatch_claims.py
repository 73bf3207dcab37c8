"""Claims (dispatch/claims.py, preparing.py, recording.py): concurrent workers never take the
same receiver, a claim links each receiver to its message in one transaction, stale claims come
back and are re-sent with the same uuid, late or repeated outcomes count once."""
import threading

import pytest
from django.db import OperationalError, close_old_connections, connection, transaction
from django.utils import timezone

from messaging.dispatch import claims, recording, transport, worker
from messaging.dispatch.outcomes import Outcome, OutcomeKind
from messaging.models import Message, MessageReceiver, MessageTask, ReceiverSendStatus as RS, SendStatus, TaskStatus
from messaging.services import lifecycle
from wework import shards

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def _task(world, n):
    return make_task(world, message_type="text", content="x", receivers=[{"wxid": w} for w in world.contacts[:n]],
                     start=False)


def _dispatcher(task, batch):
    d = worker.Dispatcher(task.pk)
    d.load()
    d.batch = batch
    return d


def test_concurrent_claims_are_disjoint(world):
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("in-memory SQLite (shared cache) locks tables instead of waiting: set TEST_SQLITE_NAME")
    task = _task(world, 60)
    got, errors = [], []
    lock = threading.Lock()

    def claimer():
        try:
            while True:
                rows = claims.claim(task.pk, 7)
                if not rows:
                    break
                with lock:
                    got.extend(r["id"] for r in rows)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(got) == len(set(got)) == 60
    assert MessageReceiver.objects.filter(task=task, send_status=RS.SENDING).count() == 60


def test_a_claim_that_lost_certification_is_run_again_and_claims_once(world, monkeypatch):
    """On Galera, claimers on two nodes can lock the same rows (SKIP LOCKED sees one node's
    locks); one of them fails at COMMIT with a deadlock error (1213) and nothing of it happened.
    The claim runs again instead of failing the dispatcher, and the rows are claimed once."""
    task = _task(world, 5)
    real, attempts = claims.mark_claimed, []

    def lost_certification(ids, *args, **kwargs):
        attempts.append(list(ids))
        real(ids, *args, **kwargs)
        if len(attempts) == 1:  # the UPDATE ran, then the COMMIT failed: all of it rolls back
            raise OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")

    monkeypatch.setattr(claims, "mark_claimed", lost_certification)
    rows = claims.claim(task.pk, 3)
    assert len(attempts) == 2 and [r["id"] for r in rows] == attempts[1]
    assert MessageReceiver.objects.filter(task=task, send_status=RS.SENDING).count() == 3
    assert MessageReceiver.objects.filter(task=task, send_status=RS.PENDING).count() == 2
    assert len(claims.claim(task.pk, 10)) == 2 and not claims.claim(task.pk, 10)


def test_claim_links_every_receiver_to_its_message_in_one_transaction(world, sim, fast):
    task = _task(world, 5)
    prepared, failed = _dispatcher(task, 3).claim(0)
    assert len(prepared) == 3 and not failed
    rows = {r.pk: r for r in task.receivers.all()}
    for item in prepared:
        row = rows[item.row["id"]]
        assert row.send_status == RS.SENDING and row.message_id == item.message_id
        assert shards.get(Message, item.message_id).message_uuid == item.message_uuid
    assert sum(1 for r in rows.values() if r.send_status == RS.PENDING and r.message_id is None) == 2


def test_stale_claims_reclaimed_and_resent_with_same_uuid(world, sim):
    task = _task(world, 3)
    # A worker claimed and prepared the messages, sent one, then died.
    d = _dispatcher(task, 10)
    prepared, _ = d.claim(0)
    account = d.task.account
    transport.Sender(transport.instance_client(account.instance), d.task, account, d.stats).send(prepared[0])
    assert len(sim.receipts) == 1
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    assert claims.reclaim_stale(now=timezone.now() + timezone.timedelta(hours=1)) == 3
    worker.run(task.pk)
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 3
    # the first message was re-sent with its uuid (a duplicate the instance ignored)
    assert len(sim.messages) == 3
    assert sim.receipts[prepared[0].message_uuid] == 2


def test_late_outcome_after_reclaim_counts_once(world):
    task = _task(world, 1)
    rows = claims.claim(task.pk, 1)
    out = Outcome(rows[0]["id"], None, OutcomeKind.SUCCESS)
    assert recording.apply_outcomes(task.pk, [out])["success"] == 1
    assert recording.apply_outcomes(task.pk, [out])["success"] == 0
    task.refresh_from_db()
    assert task.success_count == 1


def test_a_final_state_in_the_same_flush_supersedes_queued(world, sim, fast):
    task = _task(world, 1)
    (item,), _failed = _dispatcher(task, 1).claim(0)
    queued = Outcome(item.row["id"], item.message_id, OutcomeKind.QUEUED)
    success = Outcome(item.row["id"], item.message_id, OutcomeKind.SUCCESS)
    assert recording.apply_outcomes(task.pk, [queued, success])["success"] == 1
    assert MessageReceiver.objects.get(pk=item.row["id"]).send_status == RS.SUCCESS
    assert shards.get(Message, item.message_id).send_status == SendStatus.SUCCESS


def test_cancel_during_dispatch_skips_released_receivers(world):
    task = _task(world, 4)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    rows = claims.claim(task.pk, 4)  # a dispatcher holds them
    lifecycle.cancel_task(world.admin, task)
    # it notices the cancel and hands back what it did not send
    recording.apply_outcomes(task.pk, [Outcome(r["id"], None, OutcomeKind.RELEASE) for r in rows[1:]])
    assert MessageReceiver.objects.filter(task=task, send_status=RS.SKIPPED).count() == 3
    # the one it died holding (no message yet) is skipped by the reclaim
    claims.reclaim_stale(now=timezone.now() + timezone.timedelta(hours=1))
    assert MessageReceiver.objects.filter(task=task, send_status=RS.SKIPPED).count() == 4


def test_rows_locked_for_a_moment_by_another_claim_do_not_idle_the_dispatcher(world, sim):
    """SKIP LOCKED skips rows another transaction holds (a concurrent claim scanning the same
    index locks rows it then rejects): the dispatcher looks again instead of going idle until
    beat's next kick."""
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("no SKIP LOCKED on this database")
    task = _task(world, 3)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    locked, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                list(MessageReceiver.objects.select_for_update().filter(task=task))
                locked.set()
                release.wait(5)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(5)
    threading.Timer(0.5, release.set).start()
    try:
        result = worker.run(task.pk)
    finally:
        release.set()
        holder.join()
    task.refresh_from_db()
    assert result == "completed" and task.success_count == 3


def test_messages_are_inserted_into_their_shard_with_their_ids(world):
    task = _task(world, 1)
    rows = [{"message_uuid": f"00000000-0000-7000-8000-00000000000{i}", "account_id": world.account.pk,
             "chat_type": 1, "chat_wxid": f"c{i}", "message_type": "text", "message_content": f"m{i}",
             "send_status": 0, "task_id": task.pk} for i in range(3)]
    ids = claims.insert_messages(rows, chunk=2)
    stored = [shards.get(Message, mid) for mid in ids]
    assert [m.message_content for m in stored] == ["m0", "m1", "m2"]
    # created_at is the id's time (DATETIME keeps whole seconds)
    assert all(m.created_at.replace(microsecond=0) == shards.id_time(m.pk).replace(microsecond=0) for m in stored)


def test_queued_answers_are_held_until_their_final_state_or_the_hold_time():
    """A "queued" answer is not written at once: an acknowledgement (or any other outcome of
    the receiver) within QUEUED_HOLD_S replaces it, so the send is written once; after the hold,
    or when the run ends (write_held), it is written as handed over."""
    from messaging.clock import FakeClock

    clock = FakeClock()
    d = worker.Dispatcher(1, clock=clock)
    d._held_queued = {}
    q1, q2, q3 = (Outcome(i, 10 + i, OutcomeKind.QUEUED) for i in (1, 2, 3))
    assert d._hold_queued([q1, q2], write_all=False) == []
    clock.advance(worker.QUEUED_HOLD_S / 2)
    s1 = Outcome(1, 11, OutcomeKind.SUCCESS)
    assert d._hold_queued([s1], write_all=False) == [s1]  # q1 superseded, never written
    assert d._hold_queued([q2], write_all=False) == []  # a repeat keeps the first hold time
    clock.advance(worker.QUEUED_HOLD_S / 2 + 0.01)
    assert d._hold_queued([], write_all=False) == [q2]  # held long enough: written as queued
    assert d._hold_queued([q3], write_all=True) == [q3]  # the run ends: everything held
    assert d._hold_queued([], write_all=True) == [] and d._held_queued == {}
