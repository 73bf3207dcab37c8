"""Claim leases (dispatch/heartbeat.py): a running dispatcher renews its claims, so a live
worker's long claim is never taken over; a dead worker's claims are taken over once the lease
has run out, not before, and re-sent with their uuid (each message once at the instance); a
dispatcher that could not renew stops sending and recording before anyone may take over.
Dispatchers run on a fake clock: the lease's time is the clock's, not a sleep."""
import threading
from datetime import timedelta

import pytest
from django.db import OperationalError

from messaging import pacing
from messaging.dispatch import claims, heartbeat, transport, worker
from messaging.models import MessageReceiver, ReceiverSendStatus as RS

from .conftest import running_task

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = 25


@pytest.fixture
def leased(fast):
    fast.update({"CLAIM_LEASE_S": LEASE, "CLAIM_HEARTBEAT_S": 5.0, "ACK_WAIT_S": 3600})
    return fast


def _sending(task):
    return MessageReceiver.objects.filter(task=task, send_status=RS.SENDING).count()


def test_a_dead_workers_claims_are_taken_over_after_the_lease_not_before(world, sim, leased, clock):
    task = running_task(world, content="x", n=6)
    # A worker claims 4 receivers, hands one message over, and dies (no renewal ever again).
    dead = worker.Dispatcher(task.pk, clock=clock)
    dead.load()
    dead.batch = 4
    prepared, _failed = dead.claim(0)
    account = dead.task.account
    transport.Sender(transport.instance_client(account.instance), dead.task, account, dead.stats).send(prepared[0])
    assert len(sim.receipts) == 1 and _sending(task) == 4

    # Before the lease has run out: neither beat's kick nor a live dispatcher takes them over.
    clock.advance(LEASE - 1)
    assert claims.reclaim_stale(now=clock.now()) == 0
    assert worker.run(task.pk, clock=clock) == "idle"  # sends the 2 unclaimed ones, waits for the rest
    assert _sending(task) == 4
    assert MessageReceiver.objects.filter(task=task, send_status=RS.SUCCESS).count() == 2

    # After it: a live dispatcher of the task takes them over itself and re-sends with their uuid.
    clock.advance(2)
    assert worker.run(task.pk, clock=clock) == "completed"
    task.refresh_from_db()
    assert (task.success_count, task.fail_count) == (6, 0)
    assert len(sim.messages) == 6  # the message handed over before the death is not sent twice
    assert sim.receipts[prepared[0].message_uuid] == 2  # its re-send was answered as a duplicate
    assert all(count == 1 for uuid, count in sim.receipts.items() if uuid != prepared[0].message_uuid)


def test_beats_kick_takes_over_expired_claims(world, sim, leased, clock):
    task = running_task(world, content="x", n=3)
    dead = worker.Dispatcher(task.pk, clock=clock)
    dead.load()
    dead.claim(0)
    assert claims.reclaim_stale(now=clock.now() + timedelta(seconds=LEASE - 1)) == 0
    assert claims.reclaim_stale(now=clock.now() + timedelta(seconds=LEASE + 1)) == 3
    assert MessageReceiver.objects.filter(task=task, send_status=RS.PENDING, message_id__isnull=False).count() == 3


def test_a_live_workers_long_claim_renews_and_is_not_stolen(world, sim, leased, clock, monkeypatch):
    """With pacing (10 s between messages) one claim of 8 takes 80 s, three leases: the claim is
    renewed while it runs, and a reclaim at every send (beat, another worker) finds nothing."""
    leased.update({"MIN_INTERVAL_S": 10.0})
    pacing.pacer().reset(world.account.pk)
    task = running_task(world, content="x", n=8)
    reclaimed, stamps = [], []
    real_send = transport.Sender.send

    def send(self, item):
        reclaimed.append(claims.reclaim_stale(now=clock.now()))
        stamps.append(min(MessageReceiver.objects.filter(task=task, send_status=RS.SENDING)
                          .values_list("updated_at", flat=True)))
        return real_send(self, item)

    monkeypatch.setattr(transport.Sender, "send", send)
    d = worker.Dispatcher(task.pk, clock=clock, slice_s=3600)
    assert d.run() == "completed"
    assert d.stats["claims"] >= 1 and d.batch >= 8  # one claim held all eight
    assert reclaimed == [0] * 8
    assert d.lease.renewals >= 80 // 5 - 2
    assert stamps[-1] - stamps[0] >= timedelta(seconds=60)  # the oldest claim's stamp moved on
    task.refresh_from_db()
    assert task.success_count == 8 and len(sim.messages) == 8
    assert all(count == 1 for count in sim.receipts.values())


def test_a_dispatcher_that_cannot_renew_stops_before_anyone_may_take_over(world, sim, leased, clock, monkeypatch):
    """Its database is away for longer than the lease (renewals fail): it sends and records nothing
    more once its claims may be taken over, and hands nothing back; the next holder finishes with
    every message once."""
    leased.update({"MIN_INTERVAL_S": 10.0})
    pacing.pacer().reset(world.account.pk)
    task = running_task(world, content="x", n=6)
    sends = []
    real_send = transport.Sender.send

    def send(self, item):
        sends.append((clock.monotonic(), item.message_uuid))
        return real_send(self, item)

    def renew_fails(part, now):
        raise OperationalError(2006, "MySQL server has gone away")

    monkeypatch.setattr(transport.Sender, "send", send)
    monkeypatch.setattr(heartbeat.ClaimLease, "_renew_part", staticmethod(renew_fails))
    monkeypatch.setattr(heartbeat, "run_idempotent", lambda fn, name: fn())  # no back-off waits
    d = worker.Dispatcher(task.pk, clock=clock, slice_s=3600)
    started = clock.monotonic()
    assert d.run() == "lease-lost"
    assert d.lease.failures >= 1
    # every send happened while the lease was certainly valid (the last within lease less a margin)
    assert sends and all(t - started < d.lease.valid_s for t, _uuid in sends)
    assert len(sends) < 6
    assert _sending(task) >= 6 - len(sends)  # nothing handed back: they wait for the lease to run out
    monkeypatch.undo()
    leased.update({"MIN_INTERVAL_S": 0.0})
    clock.advance(LEASE + 1)
    assert worker.run(task.pk, clock=clock) == "completed"
    task.refresh_from_db()
    assert task.success_count == 6 and len(sim.messages) == 6


def test_the_renewing_thread_renews_while_the_loop_is_blocked(world, sim, leased):
    """System clock: the thread renews held claims on its own (the loop is blocked in a send)."""
    leased.update({"CLAIM_LEASE_S": 3, "CLAIM_HEARTBEAT_S": 0.5})
    task = running_task(world, content="x", n=2)
    d = worker.Dispatcher(task.pk)
    d.load()
    d.claim(0)
    renewed = threading.Event()
    d.lease.on_renew = renewed.set
    MessageReceiver.objects.filter(task=task).update(updated_at=d.clock.now() - timedelta(hours=1))
    d.lease.renewed_at -= 1  # due
    d.lease.start()
    try:
        assert renewed.wait(10)
    finally:
        d.lease.stop()
    assert claims.reclaim_stale(now=d.clock.now()) == 0
    assert _sending(task) == 2


def test_lease_settings_are_bounded(settings):
    settings.MESSAGING = {"CLAIM_LEASE_S": 0, "CLAIM_HEARTBEAT_S": 60}
    assert heartbeat.lease_s() == heartbeat.MIN_LEASE_S
    assert heartbeat.interval_s() == heartbeat.MIN_LEASE_S / 3
    settings.MESSAGING = {"CLAIM_LEASE_S": 30, "CLAIM_HEARTBEAT_S": 10}
    assert heartbeat.interval_s() == 10
