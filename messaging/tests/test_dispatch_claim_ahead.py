"""The next claim made by a thread of the dispatcher while it sends the current one
(messaging/dispatch/background.py, ClaimAhead): every message once and in id order, a run that
stops hands the claim made ahead back unsent, a claim that fails ahead stops the run and hands
every claim back, and no claim is made ahead with pacing, inside a transaction or with the
setting off."""
import threading

import pytest
from django.db import transaction

from messaging.dispatch import background, claims, worker
from messaging.models import MessageTask, ReceiverSendStatus as RS, TaskStatus
from wework.db.layout import connection_for

from .conftest import assert_each_sent_once, running_task

pytestmark = pytest.mark.django_db(transaction=True)

needs_mysql = pytest.mark.skipif(connection_for("messaging").vendor != "mysql",
                                 reason="claims ahead are for MariaDB/MySQL (SQLite takes one writer at a time)")


def _claim_spy(monkeypatch):
    """[(thread name, after_id, receiver ids)] of every locking read of a claim."""
    seen = []
    real = claims.lock_claimable

    def spy(task_id, limit, after_id, now):
        rows = real(task_id, limit, after_id, now)
        seen.append((threading.current_thread().name, after_id, [r["id"] for r in rows]))
        return rows

    monkeypatch.setattr(claims, "lock_claimable", spy)
    return seen


@needs_mysql
def test_claims_are_made_ahead_in_order_and_each_message_goes_once(world, sim, fast, monkeypatch):
    fast.update({"CLAIM_BATCH": 10, "BATCH_SEND_SIZE": 5})
    task = running_task(world, 40)
    seen = _claim_spy(monkeypatch)
    d = worker.Dispatcher(task.pk)
    assert d.run() == "completed"
    assert sum(1 for name, _after, _ids in seen if name.startswith(f"claim-{task.pk}")) >= 3
    claimed = [i for _name, _after, ids in seen for i in ids]
    assert claimed == sorted(claimed) and len(claimed) == len(set(claimed)) == 40  # one at a time, id order
    assert_each_sent_once(world, sim, task, 40)
    assert not any(t.name.startswith(f"claim-{task.pk}") for t in threading.enumerate())  # closed


@needs_mysql
def test_a_pause_hands_back_the_claim_made_ahead_unsent(world, sim, fast, monkeypatch):
    fast.update({"CLAIM_BATCH": 10, "BATCH_SEND_SIZE": 10})
    task = running_task(world, 40)
    original = sim.cmd_send_messages

    def pause_on_first_send(path, query, body):
        MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.PAUSED)  # the operator pauses
        return original(path, query, body)

    monkeypatch.setattr(sim, "cmd_send_messages", pause_on_first_send)
    seen = _claim_spy(monkeypatch)
    assert worker.Dispatcher(task.pk).run() == "stopped"
    assert [name for name, _after, ids in seen if ids][1].startswith(f"claim-{task.pk}")  # made ahead
    assert len(sim.messages) == 10
    assert not task.receivers.filter(send_status=RS.SENDING).exists()
    assert task.receivers.filter(send_status=RS.PENDING).count() == 30

    monkeypatch.setattr(sim, "cmd_send_messages", original)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    assert worker.Dispatcher(task.pk).run() == "completed"
    task.refresh_from_db()
    assert (task.success_count, task.fail_count) == (40, 0)
    assert len(sim.messages) == 40 and set(sim.receipts.values()) == {1}


@needs_mysql
def test_a_claim_failing_ahead_stops_the_run_and_every_claim_is_handed_back(world, sim, fast, monkeypatch):
    """The claim made ahead committed (its receivers SENDING), then its thread failed: the run
    raises that failure and hands those receivers back with the others, not after the lease."""
    fast.update({"CLAIM_BATCH": 10, "BATCH_SEND_SIZE": 10})
    task = running_task(world, 40)
    real = worker.Dispatcher.claim
    failed_after = []

    def claim_then_fail(self, after_id):
        result = real(self, after_id)
        if threading.current_thread().name.startswith("claim-") and not failed_after:
            failed_after.append(after_id)
            raise RuntimeError("the database went away after the claim")
        return result

    monkeypatch.setattr(worker.Dispatcher, "claim", claim_then_fail)
    with pytest.raises(RuntimeError, match="went away"):
        worker.Dispatcher(task.pk).run()
    assert failed_after
    assert not task.receivers.filter(send_status=RS.SENDING).exists()
    sent_before = len(sim.messages)
    assert sent_before == 10  # the first claim only: the second one never went out

    monkeypatch.undo()
    assert worker.run(task.pk) == "completed"
    task.refresh_from_db()
    assert (task.success_count, task.fail_count) == (40, 0)
    # the first claim's answers were held for their acknowledgement when the run failed: handed
    # back, re-sent with the same uuid, and the instance kept one of each
    assert len(sim.messages) == 40


def test_no_claim_ahead_with_pacing_or_with_the_setting_off(world, sim, fast, monkeypatch):
    fast.update({"CLAIM_BATCH": 10, "BATCH_SEND_SIZE": 5, "CLAIM_AHEAD": False})
    task = running_task(world, 12)
    seen = _claim_spy(monkeypatch)
    d = worker.Dispatcher(task.pk)
    assert d.run() == "completed" and d.ahead is None
    assert {name for name, _after, _ids in seen} == {threading.current_thread().name}
    assert len(sim.messages) == 12

    fast.update({"CLAIM_AHEAD": True, "MIN_INTERVAL_S": 0.01})  # paced: claims hold minutes of sends
    paced = running_task(world, 2)
    d = worker.Dispatcher(paced.pk)
    assert d.run() == "completed" and d.ahead is None


@needs_mysql
def test_no_claim_ahead_inside_a_transaction(world, fast):
    assert background.available("CLAIM_AHEAD")
    with transaction.atomic(using=worker.MessageReceiver.objects.db):
        assert not background.available("CLAIM_AHEAD")  # its connection would not see the task
    fast["CLAIM_AHEAD"] = False
    assert not background.available("CLAIM_AHEAD")


def test_a_pause_stops_a_run_whose_claims_go_out_in_one_batch_each(world, sim, fast, monkeypatch):
    """With claims no bigger than a batch the strategies never looked at the task between
    sends: a paused broadcast kept going until its slice ended (found with claims made ahead).
    The loop now looks after every claim, with or without claims ahead."""
    fast.update({"CLAIM_BATCH": 10, "BATCH_SEND_SIZE": 10, "CLAIM_AHEAD": False})
    task = running_task(world, 40)
    original = sim.cmd_send_messages

    def pause_on_first_send(path, query, body):
        MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.PAUSED)
        return original(path, query, body)

    monkeypatch.setattr(sim, "cmd_send_messages", pause_on_first_send)
    assert worker.Dispatcher(task.pk).run() == "stopped"
    assert len(sim.messages) == 10
    assert task.receivers.filter(send_status=RS.PENDING).count() == 30
