"""Task progress tells the truth (issue 18): a cancelled task is not a full bar, a task where
nothing was sent does not read "completed", retries and their last error show as they happen,
and message rows prepared for cancelled receivers do not stay "pending" for ever."""
import pytest
from django.urls import reverse
from django.utils import timezone

from messaging.models import Message, MessageReceiver, MessageTask, ReceiverSendStatus as RS, SendStatus, TaskStatus
from messaging.services import counters, lifecycle, transitions
from wework import shards

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def _task(world, n):
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:n], start=False)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    return task, list(MessageReceiver.objects.filter(task_id=task.pk).order_by("id"))


def test_a_cancelled_task_shows_what_was_sent_not_a_full_bar(browser, world):
    task, rows = _task(world, 5)
    MessageReceiver.objects.filter(pk=rows[0].pk).update(send_status=RS.SUCCESS)
    prepared = shards.create(Message, account_id=world.account.pk, chat_type=1, chat_wxid=rows[1].receiver_wxid,
                             message_type="text", message_content="x", send_status=SendStatus.PENDING,
                             task_id=task.pk, created_at=timezone.now())
    MessageReceiver.objects.filter(pk=rows[1].pk).update(message_id=prepared.pk)

    lifecycle.cancel_task(world.admin, task)

    task.refresh_from_db()
    assert float(task.progress) == 20.0 and task.success_count == 1
    message = shards.get(Message, prepared.pk)
    assert message.send_status == SendStatus.FAILED and message.error_code == "cancelled"
    p = browser.get(reverse("messaging:task_progress", args=[task.pk])).json()
    assert p["outcome"] == counters.Outcome.CANCELLED and p["skipped"] == 4
    assert "1 of 5 sent" in p["outcome_text"]
    page = browser.get(reverse("messaging:task_detail", args=[task.pk])).content.decode()
    assert 'class="seg seg-ok" style="width:20.0%"' in page
    assert 'class="seg seg-skipped" style="width:80.0%"' in page


def test_a_task_where_every_receiver_failed_ends_failed_not_completed(world):
    task, _rows = _task(world, 5)
    MessageReceiver.objects.filter(task_id=task.pk).update(send_status=RS.FAILED, error_code="offline")

    assert transitions.finish_if_done(task.pk)

    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED and task.fail_count == 5
    assert "all 5 failed" in task.error_message
    outcome, text = counters.task_outcome(task.status, counters.receiver_counts(task.pk))
    assert outcome == counters.Outcome.ALL_FAILED and "5" in text


def test_a_task_with_some_failures_completes_but_says_so(world):
    task, rows = _task(world, 4)
    MessageReceiver.objects.filter(task_id=task.pk).update(send_status=RS.SUCCESS)
    MessageReceiver.objects.filter(pk=rows[0].pk).update(send_status=RS.FAILED)

    assert transitions.finish_if_done(task.pk)

    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    outcome, text = counters.task_outcome(task.status, counters.receiver_counts(task.pk))
    assert outcome == counters.Outcome.PARTLY_FAILED and "3 of 4 sent, 1 failed" in text


def test_retries_and_their_last_error_show_while_the_task_runs(browser, world):
    task, rows = _task(world, 3)
    MessageReceiver.objects.filter(pk=rows[0].pk).update(retry_count=2, error_code="unreachable",
                                                         error_message="The instance did not answer.")

    p = browser.get(reverse("messaging:task_progress", args=[task.pk])).json()

    assert p["retrying"] == 1 and p["last_error"] == "The instance did not answer."
    assert p["outcome"] == counters.Outcome.IN_PROGRESS and p["fail_count"] == 0
    page = browser.get(reverse("messaging:task_detail", args=[task.pk])).content.decode()
    assert "The instance did not answer." in page


def test_in_flight_counts_only_receivers_handed_to_the_instance(browser, world):
    """A dispatcher claims a batch and sends it one by one (pacing): the claimed receivers not
    sent yet are waiting, not "in flight"; only those whose message was handed over and awaits
    its outcome are."""
    task, rows = _task(world, 5)
    now = timezone.now()
    for row, status in zip(rows[:4], (SendStatus.SENDING, SendStatus.PENDING, SendStatus.PENDING, SendStatus.PENDING)):
        message = shards.create(Message, account_id=world.account.pk, chat_type=1, chat_wxid=row.receiver_wxid,
                                message_type="text", message_content="x", send_status=status, task_id=task.pk,
                                created_at=now)
        MessageReceiver.objects.filter(pk=row.pk).update(send_status=RS.SENDING, message_id=message.pk)
    p = browser.get(reverse("messaging:task_progress", args=[task.pk])).json()
    assert p["sending"] == 1  # handed over, its acknowledgement awaited
    assert p["pending"] == 4  # three claimed but not sent yet, one not claimed
    page = browser.get(reverse("messaging:task_detail", args=[task.pk])).content.decode()
    assert '<span id="p-sending">1</span>' in page and 'style="width:20.0%"' in page


def test_progress_figures_add_up_when_a_receiver_settles_after_the_task_was_read(world):
    """The progress endpoint reads the task, then its receivers: a send recorded in between (the
    dispatcher's flush) must not make the parts miss a receiver (the browser suite saw
    pending 6 + in flight 0 + sent 1 of 8)."""
    task, rows = _task(world, 4)
    read_before = MessageTask.objects.get(pk=task.pk)
    MessageReceiver.objects.filter(pk__in=[rows[0].pk, rows[1].pk]).update(send_status=RS.SUCCESS)
    MessageReceiver.objects.filter(pk=rows[2].pk).update(send_status=RS.FAILED)
    MessageTask.objects.filter(pk=task.pk).update(success_count=2, fail_count=1, progress=75)

    p = counters.task_progress(read_before)

    assert (p["success_count"], p["fail_count"], p["pending"], p["sending"]) == (2, 1, 1, 0)
    assert p["pending"] + p["sending"] + p["success_count"] + p["fail_count"] + p["skipped"] == 4
    assert p["progress"] == 75.0


def test_one_receiver_reads_in_the_singular():
    counts = {RS.SUCCESS: 1}
    assert counters.task_outcome(TaskStatus.COMPLETED, counts)[1] == "Finished: 1 receiver sent."
    assert counters.task_outcome(TaskStatus.FAILED, {RS.FAILED: 1})[1] == "Nothing was sent: the 1 receiver failed."
    assert counters.task_outcome(TaskStatus.COMPLETED, {RS.SUCCESS: 3})[1] == "Finished: all 3 receivers sent."
