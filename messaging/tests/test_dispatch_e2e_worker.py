"""End to end: the simulator, real Celery workers on Redis, a broadcast to 1,200 receivers, the
workers killed with SIGKILL twice mid-way and restarted. Every receiver must end exactly once
and the simulator must hold each message exactly once. Twice: with single sends (a revision 1.0
instance) and with batch sends (1.1)."""
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

from .conftest import TOKEN, build_world, make_task

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

N = 1200
ROOT = Path(__file__).resolve().parents[2]
WORKER_SETTINGS = {
    "MIN_INTERVAL_S": 0, "JITTER_S": 0, "PER_MINUTE": 0, "DAILY": 0, "CONVERSATION_INTERVAL_S": 0,
    "CHECK_MEDIA_URLS": False,
    "CLAIM_BATCH": 50, "CLAIM_TIMEOUT_S": 4, "LEASE_TTL_S": 4, "DISPATCHERS_PER_TASK": 2,
    "ACK_POLL_AFTER_S": 0.2, "ACK_WAIT_S": 10, "FLUSH_INTERVAL_S": 0.2, "DISPATCH_SLICE_S": 20,
}


def _db_url():
    s = connection.settings_dict
    if connection.vendor == "mysql":
        return f"mysql://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 3306}/{s['NAME']}"
    return f"sqlite:///{s['NAME']}"


def _start_worker(log, worker_settings):
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "wework.test_settings",
        "DATABASE_URL": _db_url(),
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
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"] in (":memory:", "") or \
            "mode=memory" in str(connection.settings_dict["NAME"]):
        pytest.skip("workers need a database they can open: run on MariaDB or with TEST_SQLITE_NAME")
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
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
