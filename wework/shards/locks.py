"""The global shard lock: two rotations (or drops) never overlap.

Redis (`SET NX PX` with a token, released by a compare-and-delete script) when `REDIS_URL` is
set; else a row in `shard_locks` (insert wins; an expired row is taken over by a conditional
UPDATE), which works on SQLite and MySQL/MariaDB alike.
"""
import logging
import os
import socket
import uuid
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .exceptions import RotationLocked

log = logging.getLogger("wework.shards")

GLOBAL = "rotation"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def _owner():
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:100]


@contextmanager
def global_lock(name=GLOBAL, ttl=3600):
    """Hold the named lock for the block; raise RotationLocked when someone else holds it."""
    owner = _owner()
    redis_url = getattr(settings, "REDIS_URL", "")
    if redis_url:
        from wework import redis_conn

        client = redis_conn.client(redis_url)
        key = f"wework:shards:lock:{name}"
        if not client.set(key, owner, nx=True, px=int(ttl * 1000)):
            raise RotationLocked(f"Another shard rotation is running (lock {name!r} is held by {client.get(key)!r}).")
        log.info("shard lock %s acquired in Redis by %s", name, owner)
        try:
            yield owner
        finally:
            client.eval(_RELEASE, 1, key, owner)
            log.info("shard lock %s released", name)
        return
    _acquire_row(name, owner, ttl)
    log.info("shard lock %s acquired in the database by %s", name, owner)
    try:
        yield owner
    finally:
        from .models import ShardLock

        ShardLock.objects.filter(name=name, owner=owner).delete()
        log.info("shard lock %s released", name)


def _acquire_row(name, owner, ttl):
    from .models import ShardLock

    now = timezone.now()
    expires = now + timedelta(seconds=ttl)
    try:
        with transaction.atomic():
            ShardLock.objects.create(name=name, owner=owner, expires_at=expires)
        return
    except IntegrityError:
        pass
    # Take over an expired lock; the conditional UPDATE lets exactly one contender win.
    taken = ShardLock.objects.filter(name=name, expires_at__lt=now).update(owner=owner, expires_at=expires)
    if taken != 1:
        holder = ShardLock.objects.filter(name=name).values_list("owner", flat=True).first()
        raise RotationLocked(f"Another shard rotation is running (lock {name!r} is held by {holder!r}).")
