"""A claim's outcomes written by the dispatcher's recorder thread while it claims and sends the
next (messaging/dispatch/background.py): every message once, counters exact, a failed write
stops the run and loses nothing, and the loop writes itself where a second connection cannot
help (inside a transaction, SQLite, or the setting off)."""
import threading

import pytest
from django.db import transaction

from simulator.server import SimError

from messaging.dispatch import background, worker
from messaging.dispatch.outcomes import OutcomeKind
from messaging.models import ReceiverSendStatus as RS
from wework.db.layout import connection_for

from .conftest import assert_each_sent_once, running_task

pytestmark = pytest.mark.django_db(transaction=True)

needs_mysql = pytest.mark.skipif(connection_for("messaging").vendor != "mysql",
                                 reason="background recording is for MariaDB/MySQL (SQLite takes one writer at a time)")


#: (thread name, outcome kinds) of each flush recorded by the spy of _record_threads
flushes: list = []


def _record_threads(monkeypatch, fail_in_background=None):
    """Spy on the flushes: the thread each ran on; `fail_in_background` (a list): the first one
    written by the recorder thread raises, after appending the messages sent by then. Every
    claim's end writes something: its "queued" answers are not held for their acknowledgement
    (which the loop may read itself, or not, as the simulator's timing goes)."""
    monkeypatch.setattr(worker, "QUEUED_HOLD_S", 0.0)
    flushes.clear()
    real = worker.apply_outcomes
    threads = []

    def spy(*args, **kwargs):
        name = threading.current_thread().name
        flushes.append((name, {o.kind for o in args[1]}))
        first_in_background = name.startswith("record-") and not any(t.startswith("record-") for t in threads)
        threads.append(name)
        if fail_in_background is not None and first_in_background:
            fail_in_background.append(len(fail_in_background[0].messages))
            raise RuntimeError("the database went away during a flush")
        return real(*args, **kwargs)

    monkeypatch.setattr(worker, "apply_outcomes", spy)
    return threads


@needs_mysql
def test_claims_are_recorded_in_the_background_each_message_once(world, sim, fast, monkeypatch):
    fast.update({"CLAIM_BATCH": 10, "BATCH_SEND_SIZE": 5})
    task = running_task(world, 40)
    threads = _record_threads(monkeypatch)
    d = worker.Dispatcher(task.pk)
    assert d.run() == "completed"
    assert any(name.startswith(f"record-{task.pk}") for name in threads)
    assert_each_sent_once(world, sim, task, 40)
    assert not any(t.name.startswith(f"record-{task.pk}") for t in threading.enumerate())  # closed


@needs_mysql
def test_a_failed_background_write_stops_the_run_and_the_next_run_loses_nothing(world, sim, fast, monkeypatch):
    fast.update({"CLAIM_BATCH": 10, "BATCH_SEND_SIZE": 10})
    task = running_task(world, 50)
    failure = [sim]
    threads = _record_threads(monkeypatch, fail_in_background=failure)
    with pytest.raises(RuntimeError, match="went away"):
        worker.Dispatcher(task.pk).run()
    assert any(t.startswith(f"record-{task.pk}") for t in threads)
    # it stopped at its next flush (at most the claim in flight then went out), and handed
    # every claim back at once
    assert len(sim.messages) <= failure[1] + 10
    assert not task.receivers.filter(send_status=RS.SENDING).exists()
    monkeypatch.undo()
    assert worker.run(task.pk) == "completed"
    task.refresh_from_db()
    assert (task.success_count, task.fail_count) == (50, 0)  # the re-sent ones counted once
    assert len(sim.messages) == 50  # re-sent with the same uuid: the instance kept one of each
    world.account.refresh_from_db()
    assert world.account.total_messages == 50


@needs_mysql
def test_a_flush_that_hands_receivers_back_is_written_before_the_next_claim(world, sim, fast, monkeypatch):
    """A lost batch answer retries its receivers at once (RETRY_BASE_S 0): the next claim of the
    same run must find them, so that flush is not left to the recorder thread."""
    fast.update({"CLAIM_BATCH": 10, "BATCH_SEND_SIZE": 10})
    original = sim.cmd_send_messages
    calls = []

    def lose_first_answers(path, query, body):
        calls.append(1)
        status, data = original(path, query, body)
        if len(calls) <= 2:  # the answer is lost, also for the client's own retry
            raise SimError("internal", "Crashed before answering.")
        return status, data

    monkeypatch.setattr(sim, "cmd_send_messages", lose_first_answers)
    task = running_task(world, 10)
    task.max_retry = 3
    task.save(update_fields=["max_retry"])
    _record_threads(monkeypatch)
    assert worker.Dispatcher(task.pk).run() == "completed"  # in this one run
    retries = [name for name, kinds in flushes if OutcomeKind.RETRY in kinds]
    assert retries and set(retries) == {threading.current_thread().name}
    assert any(name.startswith("record-") for name, _kinds in flushes)  # the rest went there
    task.refresh_from_db()
    assert task.success_count == 10 and len(sim.messages) == 10


def test_without_background_recording_the_loop_writes_itself(world, sim, fast, monkeypatch):
    fast.update({"CLAIM_BATCH": 10, "BATCH_SEND_SIZE": 5, "RECORD_IN_BACKGROUND": False})
    task = running_task(world, 20)
    threads = _record_threads(monkeypatch)
    d = worker.Dispatcher(task.pk)
    assert d.run() == "completed" and d.recorder is None
    assert set(threads) == {threading.current_thread().name}
    task.refresh_from_db()
    assert task.success_count == 20 and len(sim.messages) == 20


@needs_mysql
def test_no_background_recording_inside_a_transaction(world, fast):
    assert background.available()
    with transaction.atomic(using=worker.MessageReceiver.objects.db):
        assert not background.available()  # a second connection would not see this transaction's rows
    fast["RECORD_IN_BACKGROUND"] = False
    assert not background.available()
