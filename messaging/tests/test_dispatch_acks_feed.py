"""Acknowledgements from the instance's event feed: a flush reads the feed at most every
FEED_EVERY_S (worker.py); what it did not read yet is taken by the next read."""
import time
import uuid

from messaging.clock import FakeClock
from messaging.dispatch import transport, worker
from messaging.dispatch.acks import Acknowledgements
from messaging.dispatch.preparing import Prepared


def _send(client, world, sim, n):
    """Hand a message over to the simulator; its Prepared item, once its acknowledgement is in
    the feed (the simulator acknowledges on its own thread)."""
    message_uuid = str(uuid.uuid4())
    answer = client.send_message(world.account.wxid, client_msg_id=message_uuid, conversation_id=world.contacts[n],
                                 conversation_type="single", type="text", content={"text": f"m{n}"})
    assert answer["status"] == "queued"
    deadline = time.monotonic() + 10
    while sim.messages[answer["message_id"]]["status"] == "queued":
        assert time.monotonic() < deadline, "the simulator never acknowledged the send"
        time.sleep(0.01)
    return Prepared({"id": n}, n, message_uuid, "single", {"text": f"m{n}"})


def test_flushes_within_feed_every_s_share_one_read_of_the_feed(world, sim):
    clock = FakeClock()
    client = transport.instance_client(world.instance)
    reads = []
    real_read = client.events_after

    def counted_read(*args, **kwargs):
        reads.append(clock.monotonic())
        return real_read(*args, **kwargs)

    client.events_after = counted_read
    sender = transport.Sender(client, None, world.account, {})
    acks = Acknowledgements(sender, clock, {})
    acks.open()
    assert len(reads) == 1 and acks.cursor is not None

    first = _send(client, world, sim, 0)
    acks.watch(first)
    [(item, status, _error, _id)] = acks.take_from_feed(worker.FEED_EVERY_S)  # never read yet: read
    assert item is first and status == "sent" and acks.inflight == []
    assert len(reads) == 2

    second = _send(client, world, sim, 1)
    acks.watch(second)
    assert acks.take_from_feed(worker.FEED_EVERY_S) == []  # read just now: no request
    assert len(reads) == 2 and acks.inflight == [second]

    clock.advance(worker.FEED_EVERY_S)
    [(item, status, _error, _id)] = acks.take_from_feed(worker.FEED_EVERY_S)
    assert item is second and status == "sent" and len(reads) == 3

    third = _send(client, world, sim, 2)
    acks.watch(third)
    [(item, _status, _error, _id)] = acks.take_from_feed(0.0)  # the run's end: always read
    assert item is third and len(reads) == 4
    client.close()
