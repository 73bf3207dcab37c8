"""A broadcast on a Redis Cluster (REDIS_URL=redis+cluster://...): a master killed (SIGKILL) in
the middle costs no duplicate send and no lost message. The replica takes over the slots; the
cluster client retries against the new slot map. Needs the cluster of `scripts/services up
redis-cluster` on this machine (its nodes are killed and started again): CI runs it in the
section "Tests on the Redis Cluster" and sets WEWORK_REQUIRE_REDIS_CLUSTER=1, so that a missing
cluster fails there instead of skipping."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from messaging import pacing
from messaging.dispatch import worker
from messaging.models import MessageTask, ReceiverSendStatus as RS, TaskStatus
from wework import redis_conn

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster():
    url = settings.REDIS_URL
    if not redis_conn.is_cluster(url):
        if os.environ.get("WEWORK_REQUIRE_REDIS_CLUSTER") in ("1", "true", "yes"):
            pytest.fail("WEWORK_REQUIRE_REDIS_CLUSTER is set but REDIS_URL names no Redis Cluster.")
        pytest.skip("needs REDIS_URL=redis+cluster://... (scripts/services up redis-cluster)")
    client = redis_conn.client(url)
    yield client
    _restart_and_wait()


def _restart_and_wait():
    """Start the killed node again (it rejoins as a replica) and wait for a healthy cluster.

    The ports are scripts/services' own (SERVICES_REDIS_CLUSTER_PORTS or its defaults), never
    the client's node list: after the kill that list no longer names the dead node."""
    done = subprocess.run([str(ROOT / "scripts/services"), "up", "redis-cluster"],
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, f"scripts/services up redis-cluster failed:\n{done.stdout}\n{done.stderr}"


def _kill_master_of(client, key):
    node = client.get_node_from_key(key)
    pid = redis.Redis(host=node.host, port=node.port).info("server")["process_id"]
    os.kill(int(pid), signal.SIGKILL)
    return node


def test_a_master_killed_during_a_broadcast_costs_no_duplicate_and_no_loss(world, sim, fast, clock, cluster):
    fast.update({"MIN_INTERVAL_S": 1.0, "ACK_WAIT_S": 3600, "CLAIM_BATCH": 10})
    pacer = pacing.pacer()
    pacer.reset(world.account.pk)
    receivers = world.contacts[:40]
    task = make_task(world, message_type="text", content="hello", receivers=receivers, start=False)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)

    original = type(pacer).reserve
    calls = {"n": 0, "killed": None, "at": None}

    def reserve(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 15 and calls["killed"] is None:
            # the master holding this account's pacing keys dies between two sends
            calls["killed"] = _kill_master_of(cluster, pacing._keys(world.account.pk)[0])
            calls["at"] = time.monotonic()
        return original(self, *args, **kwargs)

    type(pacer).reserve = reserve
    try:
        outcomes = []
        for _attempt in range(6):  # beat's kick would start the dispatcher again after an error
            try:
                outcomes.append(worker.run(task.pk, clock=clock))
            except Exception as exc:  # noqa: BLE001 - recorded: the next run must resume
                outcomes.append(repr(exc))
            if outcomes[-1] == "completed":
                break
    finally:
        type(pacer).reserve = original

    assert calls["killed"] is not None, outcomes
    # the client waited for the replica to take over: the run itself went on to the end
    assert outcomes == ["completed"], outcomes
    assert cluster.get_node_from_key(pacing._keys(world.account.pk)[0]).port != calls["killed"].port
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == len(receivers)
    assert set(task.receivers.values_list("send_status", flat=True)) == {RS.SUCCESS}
    sent_to = sorted(m["request"]["conversation_id"] for m in sim.messages.values())
    assert sent_to == sorted(receivers)  # none lost, none sent twice
    assert set(sim.receipts.values()) == {1}  # not even a resend of one client_msg_id


def test_redis_flushed_during_a_broadcast_costs_no_duplicate_and_no_loss(world, sim, fast, clock, settings):
    """Redis restarted empty (or FLUSHALL) in the middle: leases, pacing and dedupe marks are
    gone; the claims and the message rows in the database still decide. Single Redis or the
    cluster (every primary is flushed)."""
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    fast.update({"MIN_INTERVAL_S": 1.0, "ACK_WAIT_S": 3600, "CLAIM_BATCH": 10})
    pacer = pacing.pacer()
    pacer.reset(world.account.pk)
    receivers = world.contacts[:40]
    task = make_task(world, message_type="text", content="hello", receivers=receivers, start=False)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    original = type(pacer).reserve
    calls = {"n": 0}

    def reserve(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 15:
            for node in redis_conn.primaries(redis_conn.client()):
                node.flushdb()
        return original(self, *args, **kwargs)

    type(pacer).reserve = reserve
    try:
        outcomes = []
        for _attempt in range(6):
            try:
                outcomes.append(worker.run(task.pk, clock=clock))
            except Exception as exc:  # noqa: BLE001 - recorded: the next run must resume
                outcomes.append(repr(exc))
            if outcomes[-1] == "completed":
                break
    finally:
        type(pacer).reserve = original
    assert calls["n"] >= 15
    assert outcomes[-1] == "completed", outcomes
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == len(receivers)
    sent_to = sorted(m["request"]["conversation_id"] for m in sim.messages.values())
    assert sent_to == sorted(receivers)  # none lost, none sent twice
    assert set(sim.receipts.values()) == {1}
