"""Ids unique across shards, processes and hosts, ordered by time, and time-ordered uuids.

Snowflake layout of a 63-bit id (fits BIGINT signed and unsigned):

    | 41 bits: ms since 2020-01-01 UTC | 10 bits: worker id | 12 bits: sequence |

The time part locates the shard of a time-sharded row (`id_time`), references between tables
(message_receivers.message_id, messages.parent_message_id) stay meaningful, and keyset pagination
on `id` walks from one shard into the next older one.

The worker id (0-1023) is, in order: `WEWORK_WORKER_ID` from the environment (multi-host
deployments without Redis set it per process); a lease in Redis (`SET NX` with a TTL, refreshed
while used) when `REDIS_URL` is set; else an exclusive file lock under `DATA_DIR/ids/` (safe
between the processes of one host, the embedded SQLite deployment). Forked children lease their
own worker id.
"""
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone

import uuid6

log = logging.getLogger("wework.ids")

EPOCH_MS = 1577836800000  # 2020-01-01T00:00:00Z
TIME_BITS = 41
WORKER_BITS = 10
SEQUENCE_BITS = 12
MAX_WORKER = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
TIME_SHIFT = WORKER_BITS + SEQUENCE_BITS
LEASE_TTL = 24 * 3600
LEASE_REFRESH = 600


class IdError(RuntimeError):
    pass


def _ms(when):
    if when is None:
        return int(time.time() * 1000)
    if when.tzinfo is None:
        raise IdError("new_id(when=...) needs an aware datetime.")
    return int(when.timestamp() * 1000)


def id_time(id_value):
    """The aware UTC datetime (ms precision) encoded in a Snowflake id."""
    ms = (int(id_value) >> TIME_SHIFT) + EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def id_bounds(since=None, until=None):
    """(low, high) ids such that `low <= id < high` selects rows made in `[since, until)`."""
    low = 0 if since is None else max(0, (_ms(since) - EPOCH_MS)) << TIME_SHIFT
    high = (1 << 63) - 1 if until is None else max(0, (_ms(until) - EPOCH_MS)) << TIME_SHIFT
    return low, high


class _WorkerLease:
    """The process's worker id, leased once per process (re-leased after fork)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pid = None
        self._worker = None
        self._source = None
        self._file = None
        self._redis = None
        self._redis_key = None
        self._token = None
        self._refreshed = 0.0

    def get(self):
        with self._lock:
            if self._pid != os.getpid():
                self._acquire()
            elif self._source == "redis" and time.monotonic() - self._refreshed > LEASE_REFRESH:
                self._refresh_redis()
            return self._worker

    def describe(self):
        self.get()
        return {"worker": self._worker, "source": self._source}

    def _acquire(self):
        self._pid = os.getpid()
        self._file = None
        env = os.environ.get("WEWORK_WORKER_ID", "").strip()
        if env:
            value = int(env)
            if not 0 <= value <= MAX_WORKER:
                raise IdError(f"WEWORK_WORKER_ID must be between 0 and {MAX_WORKER}.")
            self._worker, self._source = value, "env"
            return
        redis_url = _setting("REDIS_URL", os.environ.get("REDIS_URL", ""))
        if redis_url:
            self._lease_redis(redis_url)
            return
        self._lease_file()

    def _lease_redis(self, url):
        import redis

        self._url = url
        self._redis = redis.Redis.from_url(url)
        self._token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        start = (os.getpid() * 7919) % (MAX_WORKER + 1)
        for step in range(MAX_WORKER + 1):
            candidate = (start + step) % (MAX_WORKER + 1)
            key = f"wework:ids:worker:{candidate}"
            if self._redis.set(key, self._token, nx=True, ex=LEASE_TTL):
                self._worker, self._source, self._redis_key = candidate, "redis", key
                self._refreshed = time.monotonic()
                log.debug("leased worker id %s from Redis", candidate)
                return
        raise IdError("All 1024 worker ids are leased in Redis; set WEWORK_WORKER_ID.")

    def _refresh_redis(self):
        # Extend our lease; if it expired and someone else took the id, lease a new one.
        script = (
            "if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('expire', KEYS[1], ARGV[2]) "
            "elseif redis.call('set', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 "
            "else return 0 end"
        )
        ok = self._redis.eval(script, 1, self._redis_key, self._token, LEASE_TTL)
        if ok:
            self._refreshed = time.monotonic()
        else:
            log.warning("worker id lease %s was lost; leasing a new one", self._redis_key)
            self._lease_redis(self._url)

    def _lease_file(self):
        import fcntl

        folder = os.path.join(str(_setting("DATA_DIR", "/tmp/wework")), "ids")
        os.makedirs(folder, exist_ok=True)
        start = os.getpid() % (MAX_WORKER + 1)
        for step in range(MAX_WORKER + 1):
            candidate = (start + step) % (MAX_WORKER + 1)
            handle = open(os.path.join(folder, f"worker-{candidate}.lock"), "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self._file = handle  # held (and the lock with it) for the life of the process
            self._worker, self._source = candidate, "file"
            return
        raise IdError("All 1024 worker id lock files are held; set WEWORK_WORKER_ID.")


def _setting(name, default):
    try:
        from django.conf import settings

        return getattr(settings, name, default)
    except Exception:  # settings not configured (scripts)
        return default


class SnowflakeGenerator:
    def __init__(self, lease=None):
        self._lease = lease or _WorkerLease()
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0
        self._backfill = {}

    def next_id(self, when=None):
        worker = self._lease.get()
        with self._lock:
            if when is not None:
                return self._backfill_id(_ms(when), worker)
            now = _ms(None)
            if now < self._last_ms:
                now = self._last_ms  # clock stepped back: stay on the last ms
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & MAX_SEQUENCE
                if self._sequence == 0:
                    while now <= self._last_ms:  # 4096 ids in this ms: wait for the next
                        time.sleep(0.0001)
                        now = max(_ms(None), now)
            else:
                self._sequence = 0
            self._last_ms = now
            return self._compose(now, worker, self._sequence)

    def _backfill_id(self, ms, worker):
        # Ids for a past (or given) time: a sequence per ms; after 4096 ids in one ms, spill into
        # the next ms of the same second (datetimes in the design have second precision).
        while True:
            seq = self._backfill.get(ms, -1) + 1
            if seq <= MAX_SEQUENCE:
                break
            if (ms + 1) // 1000 != ms // 1000:
                raise IdError("More than 4,096,000 backfill ids in one second on one worker.")
            ms += 1
        self._backfill[ms] = seq
        if len(self._backfill) > 10000:
            self._backfill.clear()
            self._backfill[ms] = seq
        return self._compose(ms, worker, seq)

    @staticmethod
    def _compose(ms, worker, seq):
        delta = ms - EPOCH_MS
        if not 0 <= delta < (1 << TIME_BITS):
            raise IdError("The time is outside the id range (2020-2089).")
        return (delta << TIME_SHIFT) | (worker << SEQUENCE_BITS) | seq


_generator = SnowflakeGenerator()


def new_id(when=None):
    """A new Snowflake id for now, or for the aware datetime `when` (backfills)."""
    return _generator.next_id(when)


def new_uuid(when=None):
    """A time-ordered UUIDv7 as a 36-character string (for *_uuid columns)."""
    if when is None:
        return str(uuid6.uuid7())
    # UUIDv7 for a given time: 48-bit ms timestamp, then random bits (RFC 9562).
    ms = _ms(when)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def worker_info():
    """Which worker id this process uses and where it came from (for diagnostics)."""
    return _generator._lease.describe()
