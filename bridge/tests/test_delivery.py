"""The bridge's webhook pusher (bridge/delivery.py) against a recording receiver: single events,
batches when the platform announced `webhook_batch_max` (protocol revision 1.2), a refused batch
pushed again one event at a time, retries of the same batch, and a stop that loses nothing. No
node needed: the outbox is the bridge's real SQLite store."""
import time
from types import SimpleNamespace

import pytest

from bridge.delivery import Deliverer, batch_limit
from bridge.store import Store
from instances import protocol
from simulator.testing import WebhookReceiver

SECRET = "bridge-delivery-secret"


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def outbox(tmp_path):
    store = Store(str(tmp_path / "outbox.sqlite3"))
    yield store
    store.close()


def fill(store, n):
    return [store.append("message.received", "acc-1", {"text": f"m{i}"}, "inst-1") for i in range(n)]


def deliverer(store, url, **config):
    bridge = SimpleNamespace(store=store, config={"instance_id": "inst-1", "webhook_url": url,
                                                  "webhook_secret": SECRET, **config})
    return Deliverer(bridge, retry_base_s=0.01, retry_max_s=0.05, max_attempts=5, timeout_s=5)


def delivered_seqs(receiver, status=200):
    return [e["seq"] for d in receiver.deliveries if d.status == status for e in d.events]


def test_without_a_batch_size_each_event_is_one_request(outbox):
    fill(outbox, 5)
    with WebhookReceiver() as receiver:
        pusher = deliverer(outbox, receiver.url)
        pusher.start()
        wait_for(lambda: pusher.delivered == 5)
        pusher.stop()
    assert [len(d.events) for d in receiver.deliveries] == [1] * 5
    assert delivered_seqs(receiver) == [1, 2, 3, 4, 5]
    assert all(protocol.EVENT_COUNT_HEADER not in d.headers for d in receiver.deliveries)
    assert outbox.get("delivered_seq") == 5


def test_a_backlog_goes_in_signed_batches_of_the_announced_size_in_seq_order(outbox):
    events = fill(outbox, 250)
    with WebhookReceiver() as receiver:
        pusher = deliverer(outbox, receiver.url, webhook_batch_max=100)
        pusher.start()
        wait_for(lambda: pusher.delivered == 250)
        pusher.stop()
    assert [len(d.events) for d in receiver.deliveries] == [100, 100, 50]
    assert delivered_seqs(receiver) == list(range(1, 251))
    for delivery in receiver.deliveries:
        first = delivery.events[0]
        assert delivery.signature_ok(SECRET)  # the HMAC covers the whole batch body
        assert delivery.headers[protocol.EVENT_ID_HEADER] == first["event_id"]
        assert delivery.headers[protocol.SEQ_HEADER] == str(first["seq"])
        assert delivery.headers[protocol.EVENT_COUNT_HEADER] == str(len(delivery.events))
    assert [e["event_id"] for d in receiver.deliveries for e in d.events] == [e["event_id"] for e in events]
    assert (pusher.batches, outbox.get("delivered_seq")) == (3, 250)


def test_a_refused_batch_is_pushed_again_one_event_at_a_time(outbox):
    fill(outbox, 4)
    with WebhookReceiver(statuses=[400, 200, 400, 200, 200]) as receiver:
        pusher = deliverer(outbox, receiver.url, webhook_batch_max=10)
        pusher.start()
        wait_for(lambda: len(receiver.deliveries) == 5)
        pusher.stop()
    sizes = [(len(d.events), d.status) for d in receiver.deliveries]
    # the batch is refused; then each event meets its own verdict (the second one is refused alone)
    assert sizes == [(4, 400), (1, 200), (1, 400), (1, 200), (1, 200)]
    assert delivered_seqs(receiver) == [1, 3, 4]
    assert (pusher.batches_split, outbox.get("delivered_seq")) == (1, 4)  # a refused event is moved past


def test_a_batch_not_acknowledged_is_sent_again_whole(outbox):
    fill(outbox, 3)
    with WebhookReceiver(statuses=[503, 429]) as receiver:
        pusher = deliverer(outbox, receiver.url, webhook_batch_max=10)
        pusher.start()
        wait_for(lambda: pusher.delivered == 3)
        pusher.stop()
    assert [d.status for d in receiver.deliveries] == [503, 429, 200]
    assert len({d.body for d in receiver.deliveries}) == 1  # the same batch each time
    assert outbox.get("delivered_seq") == 3


def test_a_stop_during_retries_keeps_the_batch_for_the_next_start(outbox):
    fill(outbox, 3)
    with WebhookReceiver(default_status=503) as receiver:
        pusher = deliverer(outbox, receiver.url, webhook_batch_max=10)
        pusher.start()
        wait_for(lambda: len(receiver.deliveries) >= 2)
        pusher.stop()
    assert outbox.get("delivered_seq", 0) == 0  # nothing acknowledged, nothing counted as delivered
    with WebhookReceiver() as receiver:
        again = deliverer(outbox, receiver.url, webhook_batch_max=10)
        again.start()
        wait_for(lambda: again.delivered == 3)
        again.stop()
    assert delivered_seqs(receiver) == [1, 2, 3]


@pytest.mark.parametrize("value, limit", [(None, 1), (1, 1), (50, 50), (10_000, protocol.MAX_WEBHOOK_BATCH),
                                          ("100", 1), (True, 1), (0, 1)])
def test_batch_limit_reads_the_announced_size(value, limit):
    assert batch_limit({"webhook_batch_max": value}) == limit
