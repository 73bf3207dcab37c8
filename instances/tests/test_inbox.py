"""The intake's inbox write: group commit of concurrent deliveries, duplicates inside a batch,
one publish per batch, the publisher thread."""
import threading
import time
from unittest import mock

import pytest
from django.db import connection

from instances.models import EventState, InstanceEvent
from instances.services import inbox
from instances.tests.factories import WeworkInstanceFactory
from wework.testing.instances import heartbeat_data, make_event
from wework.testing.queries import capture_queries


def _row(instance, event, replayed=False):
    return InstanceEvent(instance_id=instance.pk, event_id=event["event_id"], seq=event["seq"],
                         event_type=event["type"], account_wxid=None, payload=event,
                         ts_ms=event["ts_ms"], replayed=replayed)


def _pending(instance, seq, *, event_id=None, publish=True):
    event = make_event(instance, "instance.heartbeat", heartbeat_data(), seq=seq,
                       event_id=event_id)
    return inbox.Pending([_row(instance, event)], publish, 100)


@pytest.mark.django_db(transaction=True)
def test_a_batch_is_one_insert_and_every_row_gets_its_id():
    instance = WeworkInstanceFactory()
    batch = [_pending(instance, seq) for seq in range(1, 31)]
    with capture_queries() as queries:
        inbox.write_batch(batch)
    if connection.features.can_return_rows_from_bulk_insert:
        assert len(queries) == 1, [q["sql"][:80] for q in queries]
    stored = dict(InstanceEvent.objects.values_list("event_id", "pk"))
    assert len(stored) == 30
    for item in batch:
        assert not item.duplicate
        assert stored[item.row.event_id] == item.row.pk
    assert set(InstanceEvent.objects.values_list("state", flat=True)) == {EventState.PENDING}


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_in_a_batch_is_reported_and_the_others_stored():
    instance = WeworkInstanceFactory()
    seen = _pending(instance, 1)
    inbox.write_batch([seen])
    again = _pending(instance, 1, event_id=seen.row.event_id)
    twice = _pending(instance, 3, event_id="evt_twice")
    twice_again = _pending(instance, 3, event_id="evt_twice")
    fresh = _pending(instance, 2)
    inbox.write_batch([again, fresh, twice, twice_again])
    assert again.duplicate and twice_again.duplicate
    assert not fresh.duplicate and not twice.duplicate
    assert fresh.row.pk and twice.row.pk
    assert InstanceEvent.objects.count() == 3
    # the duplicates are not published
    with mock.patch.object(inbox.publisher, "add") as add:
        inbox.publish_batch([again, fresh, twice, twice_again])
    add.assert_called_once_with([fresh.row.pk, twice.row.pk])


def test_concurrent_deliveries_share_one_write_and_wait_for_it():
    """The first caller writes; those arriving meanwhile are written together afterwards, and
    nobody returns before the write that holds its event is done."""
    group = inbox.GroupCommit()
    batches = []
    first_started = threading.Event()
    release = threading.Event()

    def slow_write(batch):
        batches.append([item.row.seq for item in batch])
        if len(batches) == 1:
            first_started.set()
            release.wait(5)
        for item in batch:
            item.row.pk = item.row.seq

    returned = {}

    def deliver(seq):
        item = inbox.Pending([InstanceEvent(seq=seq, event_id=f"e{seq}")], False, 10)
        group.submit(item)
        returned[seq] = (item.row.pk, len(batches))

    with mock.patch.object(inbox, "write_batch", side_effect=slow_write), \
            mock.patch.object(inbox, "publish_batch"):
        first = threading.Thread(target=deliver, args=(0,))
        first.start()
        assert first_started.wait(5)
        others = [threading.Thread(target=deliver, args=(seq,)) for seq in range(1, 9)]
        for t in others:
            t.start()
        deadline = time.monotonic() + 5
        while len(group._queue) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not returned  # nobody answered while the write was under way
        release.set()
        for t in [first, *others]:
            t.join(5)
    assert batches[0] == [0]
    assert sorted(batches[1]) == list(range(1, 9))  # one write for the 8 that waited
    assert len(batches) == 2
    assert {seq: pk for seq, (pk, _n) in returned.items()} == {s: s for s in range(9)}
    assert all(n >= 2 for seq, (_pk, n) in returned.items() if seq)


def test_a_failed_write_fails_every_delivery_of_the_batch():
    group = inbox.GroupCommit()
    item = inbox.Pending([InstanceEvent(seq=1, event_id="e1")], True, 10)
    with mock.patch.object(inbox, "write_batch", side_effect=RuntimeError("db down")), \
            mock.patch.object(inbox.publisher, "add") as add:
        group.submit(item)
    assert isinstance(item.error, RuntimeError)
    add.assert_not_called()
    assert group._leader is False and not group._queue


def test_the_publisher_sends_one_message_per_burst(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    publisher = inbox.Publisher()
    sent = []
    with mock.patch("instances.tasks.process_events.delay", side_effect=sent.append), \
            mock.patch("instances.tasks.process_event.delay", side_effect=lambda pk: sent.append([pk])):
        for pk in range(1, 121):
            publisher.add([pk])
        deadline = time.monotonic() + 5
        while sum(map(len, sent)) < 120 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert sorted(pk for chunk in sent for pk in chunk) == list(range(1, 121))
    assert len(sent) <= 4  # 120 events in bursts of at most PUBLISH_CHUNK, not 120 messages
    assert all(len(chunk) <= inbox.PUBLISH_CHUNK for chunk in sent)


@pytest.mark.django_db(transaction=True)
def test_process_events_processes_each_once():
    from instances import services

    instance = WeworkInstanceFactory()
    batch = [_pending(instance, seq) for seq in range(1, 4)]
    inbox.write_batch(batch)
    pks = [item.row.pk for item in batch]
    assert services.process_events(pks + pks) == 3  # a repeated message claims nothing
    assert set(InstanceEvent.objects.values_list("state", flat=True)) == {EventState.DONE}


AWKWARD = {"text": "50% off 100%% \\ 'quoted' \"double\" 表情😀 \\n %s %(x)s", "nested": [None, True, 1.5]}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("batched", [False, True], ids=["one row", "batch"])
def test_rows_are_stored_exactly_as_given_whatever_their_text(batched):
    """The values are written into the statement (strings by the driver's escaping): %, quotes,
    backslashes, placeholders and 4-byte characters come back unchanged, on both paths."""
    from django.utils import timezone

    instance = WeworkInstanceFactory()
    received = timezone.now().replace(microsecond=0)  # the column keeps seconds
    items = []
    for seq, wxid in ((1, "wxid_50%_o'k"), (2, None)):
        event = make_event(instance, "message.received", AWKWARD, seq=seq, event_id=f"evt_%s_{seq}'\\")
        row = _row(instance, event, replayed=seq == 2)
        row.account_wxid, row.received_at = wxid, received
        items.append(inbox.Pending([row], False, 100))
    if batched:
        inbox.write_batch(items)
    else:
        for item in items:
            inbox.write_batch([item])
    stored = {r.seq: r for r in InstanceEvent.objects.filter(instance=instance)}
    for item in items:
        row = stored[item.row.seq]
        assert row.pk == item.row.pk
        assert (row.event_id, row.account_wxid, row.replayed, row.received_at) == (
            item.row.event_id, item.row.account_wxid, item.row.replayed, received)
        assert row.payload == item.row.payload and row.payload["data"] == AWKWARD
