"""End to end: the simulator, real Celery workers on Redis, a broadcast to 1,200 receivers, the
workers killed with SIGKILL twice mid-way and restarted. Every receiver must end exactly once
and the simulator must hold each message exactly once. Twice: with single sends (a revision 1.0
instance) and with batch sends (1.1). Then once with the production claim lease (25 s) and beat's
pace (a kick every 5 s): the killed worker's claims are taken over after the lease, not before,
and within 30 s."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from simulator.server import Simulator
from messaging.models import MessageReceiver, ReceiverSendStatus as RS, TaskStatus
from messaging.services import counters, lifecycle
from wework.celery import app
from wework.testing.databases import database_env

from .conftest import TOKEN, build_world, make_task

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

N = 1200
ROOT = Path(__file__).resolve().parents[2]
WORKER_SETTINGS = {
    "MIN_INTERVAL_S": 0, "JITTER_S": 0, "PER_MINUTE": 0, "DAILY": 0, "CONVERSATION_INTERVAL_S": 0,
    "CHECK_MEDIA_URLS": False,
    "CLAIM_BATCH": 50, "CLAIM_LEASE_S": 6, "CLAIM_HEARTBEAT_S": 1.0, "LEASE_TTL_S": 4, "DISPATCHERS_PER_TASK": 2,
    "ACK_POLL_AFTER_S": 0.2, "ACK_WAIT_S": 10, "FLUSH_INTERVAL_S": 0.2, "DISPATCH_SLICE_S": 20,
}


def _start_worker(log, worker_settings):
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "wework.test_settings",
        **database_env(),  # every module's test database
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "MESSAGING_SETTINGS": json.dumps(worker_settings),
        "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
    })
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "wework", "worker", "-P", "prefork", "-c", "2",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _kill(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _done(task_id):
    return MessageReceiver.objects.filter(task_id=task_id, send_status__in=[RS.SUCCESS, RS.FAILED]).count()


def _needs_worker_services(settings):
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"] in (":memory:", "") or \
            "mode=memory" in str(connection.settings_dict["NAME"]):
        pytest.skip("workers need a database they can open: run on MariaDB or with TEST_SQLITE_NAME")
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")


@pytest.fixture
def big_sim():
    s = Simulator(port=0, token=TOKEN, accounts=1, contacts=N, rooms=1, members=3, seed=11, duplicate_rate=0.0,
                  chatter_per_min=0, history_on_login=0, heartbeat_interval_s=3600, send_delay_ms=0, latency_ms=4)
    s.start()
    yield s
    s.stop()


# Per mode: messaging settings and the simulator's latency per request, so that a run lasts a few
# seconds and the kills land mid-way (a batch request carries 10 messages).
MODES = {
    "single": ({"BATCH_SEND_SIZE": 0}, 4),
    "batch": ({"BATCH_SEND_SIZE": 10}, 40),
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_broadcast_survives_sigkill_of_workers(big_sim, settings, tmp_path, mode):
    _needs_worker_services(settings)
    overrides, latency_ms = MODES[mode]
    worker_settings = {**WORKER_SETTINGS, **overrides}
    big_sim.latency_ms = latency_ms
    settings.MESSAGING = dict(worker_settings)
    world = build_world(big_sim)
    task = make_task(world, message_type="text", content="Hello {{ receiver_name }}", filters={"source": "contacts"},
                     start=False)
    assert task.target_count == N
    log = open(tmp_path / "worker.log", "w")
    procs = []
    app.conf.task_always_eager = False
    try:
        lifecycle.start_task(task.pk)  # enqueues dispatchers on the Redis broker
        kills = 0
        deadline = time.monotonic() + 110
        proc = _start_worker(log, worker_settings)
        procs.append(proc)
        last_kick = time.monotonic()
        while time.monotonic() < deadline:
            done = _done(task.pk)
            if kills < 2 and done >= N * (0.25 + 0.3 * kills):
                _kill(proc)
                kills += 1
                time.sleep(0.5)
                proc = _start_worker(log, worker_settings)
                procs.append(proc)
            if time.monotonic() - last_kick > 1.0:
                lifecycle.kick()  # what beat does every 15 s: reclaim stale claims, restart dispatchers
                last_kick = time.monotonic()
            task.refresh_from_db()
            if task.status == TaskStatus.COMPLETED:
                break
            time.sleep(0.1)
    finally:
        app.conf.task_always_eager = True
        for p in procs:
            if p.poll() is None:
                _kill(p)
        log.close()
    worker_log = (tmp_path / "worker.log").read_text()[-3000:]
    assert kills == 2, worker_log
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED, (counters.task_progress(task), worker_log)
    # every receiver ended once, successfully; counters agree with the rows
    assert MessageReceiver.objects.filter(task=task, send_status=RS.SUCCESS).count() == N
    assert (task.success_count, task.fail_count) == (N, 0)
    counters.rebuild_counters(task.pk)
    task.refresh_from_db()
    assert (task.success_count, task.fail_count) == (N, 0)
    # the simulator holds each message exactly once, one per receiver
    records = list(big_sim.messages.values())
    assert len(records) == N
    assert len({r["request"]["conversation_id"] for r in records}) == N
    assert all(r["status"] == "sent" for r in records)
    resent = sum(1 for v in big_sim.receipts.values() if v > 1)
    if mode == "batch":
        assert big_sim.batch_sizes and big_sim.requests.get("send_message", 0) == 0
    print(f"\n{mode}: kills={kills} duplicates absorbed by client_msg_id={resent}")


LEASE_SETTINGS = {
    **WORKER_SETTINGS, "BATCH_SEND_SIZE": 0, "DISPATCHERS_PER_TASK": 1, "CLAIM_BATCH": 100,
    "CLAIM_LEASE_S": 25, "CLAIM_HEARTBEAT_S": 5.0, "LEASE_TTL_S": 25, "DISPATCH_SLICE_S": 120,
}
KICK_EVERY_S = 5.0  # beat's schedule


def test_a_killed_workers_claims_are_taken_over_within_the_lease(big_sim, settings, tmp_path):
    """One worker, one dispatcher, the production lease: SIGKILL mid-broadcast, the worker is
    restarted at once (a supervisor), beat kicks every 5 s. The dead dispatcher's claims stay
    SENDING until its lease runs out (not taken over early), then are re-sent with their uuid:
    every receiver once, each message once at the instance, sending resumed within 30 s."""
    _needs_worker_services(settings)
    n = 600
    big_sim.latency_ms = 30
    settings.MESSAGING = dict(LEASE_SETTINGS)
    world = build_world(big_sim, contacts=n)
    task = make_task(world, message_type="text", content="Hi {{ receiver_name }}", filters={"source": "contacts"},
                     start=False)
    assert task.target_count == n
    log = open(tmp_path / "worker.log", "w")
    procs = []
    app.conf.task_always_eager = False
    killed_at = held = sent_at_kill = None
    resumed_s = first_takeover_s = all_taken_over_s = None
    try:
        lifecycle.start_task(task.pk)
        procs.append(_start_worker(log, LEASE_SETTINGS))
        deadline = time.monotonic() + 150
        last_kick = time.monotonic()
        while time.monotonic() < deadline:
            now = time.monotonic()
            if killed_at is None and _done(task.pk) >= n // 4:
                _kill(procs[-1])
                killed_at = time.monotonic()
                held = set(MessageReceiver.objects.filter(task=task, send_status=RS.SENDING)
                           .values_list("pk", flat=True))
                sent_at_kill = len(big_sim.messages)  # sends the dead worker had in flight landed by now
                procs.append(_start_worker(log, LEASE_SETTINGS))
            if now - last_kick >= KICK_EVERY_S:
                lifecycle.kick()
                last_kick = now
            if killed_at is not None:
                since = time.monotonic() - killed_at
                if resumed_s is None and len(big_sim.messages) > sent_at_kill:
                    resumed_s = since
                still = MessageReceiver.objects.filter(pk__in=held, send_status=RS.SENDING,
                                                       message_id__isnull=False).count()
                if first_takeover_s is None and still < len(held):
                    first_takeover_s = since
                if all_taken_over_s is None and still == 0:
                    all_taken_over_s = since
            task.refresh_from_db()
            if task.status == TaskStatus.COMPLETED and all_taken_over_s is not None:
                break
            time.sleep(0.1)
    finally:
        app.conf.task_always_eager = True
        for p in procs:
            if p.poll() is None:
                _kill(p)
        log.close()
    worker_log = (tmp_path / "worker.log").read_text()[-3000:]
    assert killed_at is not None and held, worker_log
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED, (counters.task_progress(task), worker_log)
    assert MessageReceiver.objects.filter(task=task, send_status=RS.SUCCESS).count() == n
    assert (task.success_count, task.fail_count) == (n, 0)
    records = list(big_sim.messages.values())
    assert len(records) == n and len({r["request"]["conversation_id"] for r in records}) == n
    resent = sum(1 for v in big_sim.receipts.values() if v > 1)
    print(f"\nlease 25 s: {len(held)} claims held by the killed worker; sending resumed after {resumed_s:.1f} s, "
          f"first taken over after {first_takeover_s:.1f} s, all after {all_taken_over_s:.1f} s; "
          f"duplicates absorbed by client_msg_id={resent}")
    # Not before the lease (its last renewal was at most a heartbeat, plus the thread's 1 s step and
    # a truncated second, before the kill), and within 30 s (the lease, then beat's next kick or a
    # live dispatcher; a margin for this loaded 2-core machine).
    assert first_takeover_s >= 25 - 5 - 2
    assert all_taken_over_s <= 30 + 10
    assert resumed_s <= 30 + 10
