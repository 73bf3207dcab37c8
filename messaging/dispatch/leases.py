"""How many dispatchers run for a task: leases in Redis (a sorted set of tokens by expiry), kept
alive by heartbeats. Beat's `kick` enqueues dispatchers for running tasks without a live lease
(a SIGKILLed worker's unacknowledged Celery message only comes back after Redis's visibility
timeout). Without Redis (embedded development) the leases live in process memory."""
from __future__ import annotations

import time
import uuid

from django.conf import settings

from .. import conf, pacing, tasks as jobs
from ..models import MessageTask, TaskStatus

_local_leases: dict[int, dict[str, float]] = {}
#: A dispatcher enqueued but not started yet holds its lease this much longer than LEASE_TTL_S
#: (a busy queue must not make every kick enqueue one more).
QUEUED_GRACE_S = 20


def _key(task_id: int) -> str:
    return f"wework:msg:disp:{task_id}"


def ttl_s() -> int:
    return int(conf.get("LEASE_TTL_S"))


def lease_add(task_id: int, token: str, ttl: int | None = None) -> None:
    ttl = ttl or ttl_s()
    expiry = time.time() + ttl
    client = pacing.redis_client()
    if client is None:
        _local_leases.setdefault(task_id, {})[token] = expiry
        return
    pipe = client.pipeline(transaction=False)  # one round trip (one key: one cluster slot)
    pipe.zadd(_key(task_id), {token: expiry})
    pipe.expire(_key(task_id), ttl * 2)
    pipe.execute()


def lease_drop(task_id: int, token: str) -> None:
    client = pacing.redis_client()
    if client is None:
        _local_leases.get(task_id, {}).pop(token, None)
        return
    client.zrem(_key(task_id), token)


def lease_count(task_id: int) -> int:
    now = time.time()
    client = pacing.redis_client()
    if client is None:
        leases = _local_leases.get(task_id, {})
        for k in [k for k, v in leases.items() if v < now]:
            leases.pop(k)
        return len(leases)
    client.zremrangebyscore(_key(task_id), "-inf", now)
    return int(client.zcard(_key(task_id)))


# The design's task priority 1 (high) .. 3 (low) as Celery's message priority. RabbitMQ
# (x-max-priority 10, wework/settings.py): the higher number goes first; Redis's transport:
# the lower number goes first. The folder broker ignores priorities.
_AMQP_PRIORITY = {1: 9, 2: 5, 3: 1}
_REDIS_PRIORITY = {1: 0, 2: 3, 3: 6}


def celery_priority(priority: int | None) -> int:
    amqp = str(getattr(settings, "CELERY_BROKER_URL", "")).startswith(("amqp://", "amqps://", "pyamqp://"))
    mapping = _AMQP_PRIORITY if amqp else _REDIS_PRIORITY
    return mapping.get(int(priority or 2), mapping[2])


def ensure_dispatchers(task: MessageTask) -> int:
    """Enqueue dispatchers until DISPATCHERS_PER_TASK hold a lease for the task; returns how many
    were enqueued."""
    if task.status != TaskStatus.RUNNING:
        return 0
    want = max(1, int(conf.get("DISPATCHERS_PER_TASK")))
    started = 0
    for _i in range(want - lease_count(task.pk)):
        token = uuid.uuid4().hex
        lease_add(task.pk, token, ttl=ttl_s() + QUEUED_GRACE_S)
        jobs.dispatch_task.apply_async((task.pk, token), priority=celery_priority(task.priority))
        started += 1
    return started


def continue_later(task: MessageTask, countdown: float) -> str:
    """Enqueue the next run of a dispatcher in `countdown` seconds (with a lease covering the
    wait); "continued", or "waiting" when Celery runs eagerly (beat's kick resumes then)."""
    if countdown > 0 and getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return "waiting"  # eager (tests, no broker): no countdown possible
    token = uuid.uuid4().hex
    lease_add(task.pk, token, ttl=ttl_s() + QUEUED_GRACE_S + int(countdown))
    jobs.dispatch_task.apply_async((task.pk, token), countdown=max(0, int(countdown)),
                                   priority=celery_priority(task.priority))
    return "continued"
