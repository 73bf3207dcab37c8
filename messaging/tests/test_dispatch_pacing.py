"""Pacing in dispatch: a busy conversation waits (no retry used) while other receivers go, and
messages to one conversation go in the order they were made, across tasks. The dispatcher runs
on a fake clock: waiting for a conversation to be free is a step of the clock, not a sleep."""
from datetime import timedelta

import pytest

from messaging import pacing
from messaging.dispatch import worker
from messaging.models import MessageTask, ReceiverSendStatus as RS, TaskStatus
from messaging.services import sending

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def paced(fast):
    """Only the per-conversation interval paces; acknowledgements are awaited as long as needed
    (the fake clock runs through ACK_WAIT_S in no time)."""
    fast.update({"CONVERSATION_INTERVAL_S": 1.0, "ACK_WAIT_S": 3600})
    return fast


def test_busy_conversation_waits_while_others_go(world, sim, paced, clock):
    pacing.pacer().reset(world.account.pk)
    first = sending.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                 message_type="text", content={"text": "one"}, start=False)
    MessageTask.objects.filter(pk=first.pk).update(status=TaskStatus.RUNNING)
    assert worker.run(first.pk, clock=clock) == "completed"
    task = make_task(world, message_type="text", content="two", receivers=world.contacts[:3], start=False)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    # the run itself moves the fake clock (it waits for acknowledgements): bound the due time by
    # the clock before the run
    started = clock.now()
    assert worker.run(task.pk, clock=clock) == "waiting"  # comes back when the conversation is free
    a, b, c = task.receivers.order_by("id")
    assert b.send_status == c.send_status == RS.SUCCESS  # other conversations are not held up
    assert a.send_status == RS.PENDING and a.retry_count == 0 and a.error_code is None
    assert started < a.send_time <= started + timedelta(seconds=3)
    clock.advance(max(0.0, (a.send_time - clock.now()).total_seconds()))
    assert worker.run(task.pk, clock=clock) == "completed"
    a.refresh_from_db()
    task.refresh_from_db()
    assert a.send_status == RS.SUCCESS and task.success_count == 3
    assert [m["request"]["content"]["text"] for m in sorted(sim.messages.values(), key=lambda m: m["due"])
            if m["request"]["conversation_id"] == world.contacts[0]] == ["one", "two"]


def test_messages_to_one_conversation_go_in_the_order_they_were_made(world, sim, paced, clock):
    """The newer task's dispatcher runs first (two workers, or the order Celery picked them):
    its message to the contact waits for the older task's."""
    paced["CONVERSATION_INTERVAL_S"] = 0.2
    pacing.pacer().reset(world.account.pk)
    older = make_task(world, message_type="text", content="first", receivers=world.contacts[:1], start=False)
    newer = make_task(world, message_type="text", content="second", receivers=world.contacts[:2], start=False)
    MessageTask.objects.filter(pk__in=[older.pk, newer.pk]).update(status=TaskStatus.RUNNING)
    worker.run(newer.pk, clock=clock)
    to_first = newer.receivers.get(receiver_wxid=world.contacts[0])
    assert to_first.send_status == RS.PENDING and to_first.retry_count == 0  # waits, no retry used
    assert newer.receivers.get(receiver_wxid=world.contacts[1]).send_status == RS.SUCCESS  # others go
    assert worker.run(older.pk, clock=clock) == "completed"
    clock.advance(max(0.0, (to_first.send_time - clock.now()).total_seconds()))
    assert worker.run(newer.pk, clock=clock) == "completed"
    newer.refresh_from_db()
    assert newer.status == TaskStatus.COMPLETED and newer.success_count == 2
    to_contact = sorted((m["due"], m["request"]["content"]["text"]) for m in sim.messages.values()
                        if m["request"]["conversation_id"] == world.contacts[0])
    assert [text for _due, text in to_contact] == ["first", "second"]


def test_paced_sends_wait_on_the_clock(world, sim, fast, clock):
    """With an interval, each send waits for its slot: the dispatcher sleeps on its clock."""
    fast.update({"MIN_INTERVAL_S": 2.0, "ACK_WAIT_S": 3600})
    pacing.pacer().reset(world.account.pk)
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:3], start=False)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    assert worker.run(task.pk, clock=clock) == "completed"
    assert [s for s in clock.slept if s >= 1] == [2.0, 2.0]  # the second and third sends waited
    task.refresh_from_db()
    assert task.success_count == 3


def test_a_pause_during_the_wait_for_a_slot_sends_nothing_more(world, sim, fast, clock):
    """The browser walk paused a broadcast (1 s between receivers) and one more message went out:
    the run slept for its next slot, then sent without looking at the task again. Now a task
    paused during that wait stops before the send."""
    fast.update({"MIN_INTERVAL_S": 2.0, "ACK_WAIT_S": 3600})
    pacing.pacer().reset(world.account.pk)
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:3], start=False)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    sleep = clock.sleep

    def pause_while_waiting(seconds):
        if seconds >= 1:  # the wait for the second receiver's slot
            MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.PAUSED)
        sleep(seconds)

    clock.sleep = pause_while_waiting
    assert worker.run(task.pk, clock=clock) == "stopped"
    task.refresh_from_db()
    assert task.success_count == 1
    assert task.receivers.filter(send_status=RS.PENDING).count() == 2
