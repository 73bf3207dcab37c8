"""Ids unique across shards, processes and hosts, ordered by time, and time-ordered uuids.

Snowflake layout of a 63-bit id (fits BIGINT signed and unsigned):

    | 41 bits: ms since 2020-01-01 UTC | 10 bits: worker id | 12 bits: sequence |

The time part locates the shard of a time-sharded row (`id_time`), references between tables
(message_receivers.message_id, messages.parent_message_id) stay meaningful, and keyset pagination
on `id` walks from one shard into the next older one.

The sequence's top bit separates the two kinds of ids, so that they never meet:
- live ids (`new_id()`): bit 0, 2,048 per ms per worker id, after the last ms the worker id's
  previous holder used (its high-water mark is kept with the lease);
- ids for a given time (`new_id(when)`, an event's own time, backfills): bit 1, then the 11
  low bits of the lease's epoch (a counter of the worker id's holders, incremented by each new
  holder); the time part is the given second plus a per-second counter (0-999), and a holder
  that made 1,000 ids for one second takes the next epoch. Two ids for a given time can only
  meet if two holders of one worker id are 2,048 epochs apart (or Redis lost the epoch
  counters) and make ids for the same second.

The worker id (0-1023) is, in order: `WEWORK_WORKER_ID` from the environment; a lease in Redis
(`SET NX` with a short TTL, `WEWORK_ID_LEASE_TTL_S`, renewed by a thread while the process
lives and deleted at exit) when `REDIS_URL` is set (a Redis Cluster too); else an exclusive file
lock under `DATA_DIR/ids/` (held by the process, released by the kernel when it dies). Forked
children lease their own worker id. A process whose lease was lost (Redis flushed, a pause
longer than the TTL) takes a new worker id before its next id.

Redis losing its data (FLUSHALL, a restart without persistence) deletes every lease while their
holders keep making ids. Holders check their lease every `WEWORK_ID_LEASE_CHECK_S` (1 s): a
lease found missing is taken back, one found taken by another process is given up. A process
that leases while Redis's data is younger than 2.5 checks (`DATA_SINCE_KEY`) waits that long
before its first id, so that it never makes ids beside an earlier holder of the same worker id
that has not checked yet, and starts at a random epoch (the counters were lost too).
"""
import atexit
import logging
import os
import random
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
EXPLICIT_FLAG = 1 << (SEQUENCE_BITS - 1)  # ids for a given time
MAX_LIVE_SEQUENCE = EXPLICIT_FLAG - 1
EXPLICIT_EPOCH_BITS = SEQUENCE_BITS - 1
MAX_EPOCH = (1 << EXPLICIT_EPOCH_BITS) - 1
LAST_MS_TTL = 24 * 3600
# The range of a signed BIGINT, every id column's type: a number outside it names no row (and
# SQLite cannot even bind it: OverflowError), so input naming one is refused as an invalid choice.
BIGINT_MIN = -(1 << 63)
BIGINT_MAX = (1 << 63) - 1


def fits_bigint(value: int) -> bool:
    """Whether the integer `value` can be a row's id (a signed BIGINT)."""
    return BIGINT_MIN <= value <= BIGINT_MAX


def lease_ttl() -> int:
    return max(3, int(os.environ.get("WEWORK_ID_LEASE_TTL_S", "30")))


def lease_check_s() -> float:
    """How often a holder checks (and renews) its lease: it bounds how long a holder can go on
    with a worker id that Redis forgot and a newcomer took (a flush, a restart without data)."""
    return min(lease_ttl() / 3, max(0.05, float(os.environ.get("WEWORK_ID_LEASE_CHECK_S", "1"))))


def fresh_data_fence_s() -> float:
    """After Redis lost its data, a newcomer waits this long before its first id: by then every
    earlier holder has checked its lease once, found it gone or taken, and stopped using it."""
    return 2.5 * lease_check_s()


class IdError(RuntimeError):
    pass


def _ms(when):
    if when is None:
        return int(time.time() * 1000)
    if when.tzinfo is None:
        raise IdError("new_id(when=...) needs an aware datetime.")
    return int(when.timestamp() * 1000)


def id_time(id_value: int) -> datetime:
    """The aware UTC datetime (ms precision) encoded in a Snowflake id; ValueError for a number
    that is no id (below 0 or above a BIGINT: a URL's id can be any digits)."""
    if not 0 <= int(id_value) < 2 ** 63:
        raise ValueError(f"{id_value} is not a Snowflake id.")
    ms = (int(id_value) >> TIME_SHIFT) + EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def id_bounds(since: datetime | None = None, until: datetime | None = None) -> tuple[int, int]:
    """(low, high) ids such that `low <= id < high` selects rows made in `[since, until)`."""
    low = 0 if since is None else max(0, (_ms(since) - EPOCH_MS)) << TIME_SHIFT
    high = (1 << 63) - 1 if until is None else max(0, (_ms(until) - EPOCH_MS)) << TIME_SHIFT
    return low, high


def _worker_key(worker: int) -> str:
    return f"wework:ids:worker:{worker}"


def _last_key(worker: int) -> str:
    return f"wework:ids:last:{worker}"


def _epoch_key(worker: int) -> str:
    return f"wework:ids:epoch:{worker}"


# Set (NX, no expiry) by the first lease after Redis started empty; its value is Redis's clock
# then. Missing or young means the leases of earlier holders may have been lost with the data.
DATA_SINCE_KEY = "wework:ids:data-since"


# Renew our lease; when Redis lost it (restarted empty, FLUSHALL) and nobody took the id since,
# take it again rather than leave it to the next process while we still make ids with it.
_RENEW = (
    "local v = redis.call('get', KEYS[1]) "
    "if v == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) "
    "elseif not v then redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 2 "
    "else return 0 end"
)
# The next epoch of a worker id, never at or below the caller's own (the counter may have been
# lost with Redis's data while the caller kept making ids).
_NEXT_EPOCH = (
    "local v = redis.call('incr', KEYS[1]) "
    "if v <= tonumber(ARGV[1]) then v = tonumber(ARGV[1]) + 1 redis.call('set', KEYS[1], v) end "
    "return v"
)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class _WorkerLease:
    """The process's worker id: leased once per process (again after a fork or a lost lease),
    renewed by a daemon thread, given back at exit."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pid = None
        self.worker = None
        self.epoch = 0
        self.floor_ms = -1  # the last ms the previous holder used
        self.generation = 0  # bumped on every new lease (the generator resets its state)
        self._source = None
        self._file = None
        self._redis = None
        self._token = None
        self._lost = False
        self._stop = threading.Event()

    def get(self):
        with self._lock:
            if self._pid != os.getpid() or self._lost:
                self._acquire()
            return self.worker

    def _acquire(self):
        forked = self._pid is not None and self._pid != os.getpid()
        self._pid = os.getpid()
        self._lost = False
        self.generation += 1
        if forked:  # the parent's lock file and renewal thread are not ours
            self._file = None
            self._stop = threading.Event()
        env = os.environ.get("WEWORK_WORKER_ID", "").strip()
        if env:
            value = int(env)
            if not 0 <= value <= MAX_WORKER:
                raise IdError(f"WEWORK_WORKER_ID must be between 0 and {MAX_WORKER}.")
            self.worker, self._source, self.epoch = value, "env", random.getrandbits(EXPLICIT_EPOCH_BITS)
            return
        redis_url = _setting("REDIS_URL", os.environ.get("REDIS_URL", ""))
        if redis_url:
            self._lease_redis(redis_url)
        else:
            self._lease_file()

    def next_epoch(self):
        """A new epoch for this worker id (a fresh space of explicit-time ids)."""
        if self._source == "redis":
            self.epoch = int(self._redis.eval(_NEXT_EPOCH, 1, _epoch_key(self.worker), self.epoch))
        elif self._source == "file":
            self.epoch += 1
            self._write_file(self._file, self.epoch, self.floor_ms)
        else:
            self.epoch += 1

    # --- Redis ---------------------------------------------------------------------------------
    def _lease_redis(self, url):
        from wework import redis_conn

        self._redis = redis_conn.client(url)
        self._token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        ttl = lease_ttl()
        start = random.randrange(MAX_WORKER + 1)
        for step in range(MAX_WORKER + 1):
            candidate = (start + step) % (MAX_WORKER + 1)
            if self._redis.set(_worker_key(candidate), self._token, nx=True, ex=ttl):
                last = self._redis.get(_last_key(candidate))
                self.worker, self._source = candidate, "redis"
                self.floor_ms = int(last) if last else -1
                wait_s = self._fresh_data_wait()
                if wait_s is not None:
                    # Redis lost the epoch counters too: start at a random one rather than at
                    # the one an earlier holder of this worker id may still be using.
                    self.epoch = max(self.epoch, random.getrandbits(EXPLICIT_EPOCH_BITS))
                # never at or below our previous epoch: we may take back the same worker id
                # after Redis lost its counter, with ids of that epoch already made
                self.epoch = int(self._redis.eval(_NEXT_EPOCH, 1, _epoch_key(candidate), self.epoch))
                self._start_renewal(ttl)
                if wait_s:
                    log.warning("Redis lost its data %.1f s ago: worker id %s waits %.1f s before its "
                                "first id, until earlier holders have seen their leases gone",
                                fresh_data_fence_s() - wait_s, candidate, wait_s)
                    time.sleep(wait_s)
                self._register_release()
                log.debug("leased worker id %s from Redis (epoch %s)", candidate, self.epoch)
                return
        raise IdError("All 1024 worker ids are leased in Redis; set WEWORK_WORKER_ID.")

    def _fresh_data_wait(self):
        """None when Redis has kept its data for longer than the fence; else the seconds still
        to wait (0 or more). Another process may still believe it holds our worker id: its
        lease vanished with the data and we took it; it sees that at its next check."""
        seconds, micros = self._redis.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        if not self._redis.set(DATA_SINCE_KEY, now_ms, nx=True):
            since = self._redis.get(DATA_SINCE_KEY)
            age_ms = now_ms - int(since) if since else 0
            if age_ms >= fresh_data_fence_s() * 1000:
                return None
            return fresh_data_fence_s() - age_ms / 1000
        return fresh_data_fence_s()

    def _start_renewal(self, ttl):
        self._stop.set()  # a previous lease's thread ends
        stop = self._stop = threading.Event()
        token, worker, client = self._token, self.worker, self._redis

        def renew():
            while not stop.wait(lease_check_s()):
                try:
                    ok = client.eval(_RENEW, 1, _worker_key(worker), token, ttl)
                except Exception:  # Redis away: try again; the TTL decides
                    log.warning("worker id lease %s: renewal failed", worker, exc_info=True)
                    continue
                if not ok:
                    log.warning("worker id lease %s was lost; the next id takes a new one", worker)
                    self._lost = True
                    return

        threading.Thread(target=renew, name=f"wework-id-lease-{worker}", daemon=True).start()

    def _register_release(self):
        atexit.register(self.release)
        try:  # multiprocessing children leave by os._exit(), after running these finalizers
            from multiprocessing import util

            util.Finalize(self, _WorkerLease.release, args=(self,), exitpriority=0)
        except Exception:  # noqa: BLE001 - never block id generation on this
            pass

    def release(self, last_ms: int | None = None):
        """Give the worker id back (at exit); keeps its last ms for the next holder."""
        if self._source != "redis" or self._pid != os.getpid() or self._lost:
            return
        self._stop.set()
        last = last_ms if last_ms is not None else _generator.last_ms_for(self)
        try:
            if last >= 0:
                self._redis.set(_last_key(self.worker), last, ex=LAST_MS_TTL)
            self._redis.eval(_RELEASE, 1, _worker_key(self.worker), self._token)
        except Exception:  # at exit: the TTL frees it instead
            log.debug("worker id %s not released", self.worker, exc_info=True)
        self._lost = True  # a later id (after release) leases again

    # --- file locks (one host, no Redis) --------------------------------------------------------
    def _lease_file(self):
        import fcntl

        folder = os.path.join(str(_setting("DATA_DIR", "/tmp/wework")), "ids")
        os.makedirs(folder, exist_ok=True)
        start = os.getpid() % (MAX_WORKER + 1)
        for step in range(MAX_WORKER + 1):
            candidate = (start + step) % (MAX_WORKER + 1)
            handle = open(os.path.join(folder, f"worker-{candidate}.lock"), "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            # The lock file keeps "epoch last_ms" for the next holder of this worker id.
            handle.seek(0)
            epoch, _, last = handle.read().strip().partition(" ")
            self.epoch = int(epoch or 0) + 1
            self.floor_ms = int(last or -1)
            self._write_file(handle, self.epoch, self.floor_ms)
            self._file = handle  # held (and the lock with it) for the life of the process
            self.worker, self._source = candidate, "file"
            atexit.register(self._file_exit)
            return
        raise IdError("All 1024 worker id lock files are held; set WEWORK_WORKER_ID.")

    @staticmethod
    def _write_file(handle, epoch, last):
        handle.seek(0)
        handle.truncate()
        handle.write(f"{epoch} {last}")
        handle.flush()

    def _file_exit(self):
        if self._source == "file" and self._file is not None and self._pid == os.getpid():
            try:
                self._write_file(self._file, self.epoch, max(self.floor_ms, _generator.last_ms_for(self)))
            except (OSError, ValueError):
                pass


def _setting(name, default):
    try:
        from django.conf import settings

        return getattr(settings, name, default)
    except Exception:  # noqa: BLE001 - settings not configured (scripts)
        return default


class SnowflakeGenerator:
    BACKFILL_MEMORY = 10000  # ms remembered for ids of a given time; then a new epoch

    def __init__(self, lease=None):
        self._lease = lease or _WorkerLease()
        self._lock = threading.Lock()
        self._generation = None
        self._last_ms = -1
        self._sequence = 0
        self._backfill = {}

    def last_ms_for(self, lease) -> int:
        return self._last_ms if lease is self._lease and self._generation == lease.generation else -1

    def next_id(self, when=None):
        worker = self._lease.get()
        with self._lock:
            if self._generation != self._lease.generation:
                # A new worker id (or the same one leased again): start after the last ms its
                # previous holder used, with a fresh memory of explicit-time counters.
                # Never below our own last ms either: the new lease may be the same worker id,
                # taken back after Redis lost its data (and the previous holder's last ms).
                self._generation = self._lease.generation
                self._last_ms = max(self._last_ms, self._lease.floor_ms)
                self._sequence = MAX_LIVE_SEQUENCE
                self._backfill = {}
            if when is not None:
                return self._explicit_id(_ms(when), worker)
            now = _ms(None)
            if now < self._last_ms:
                now = self._last_ms  # clock stepped back: stay on the last ms
            if now == self._last_ms:
                self._sequence += 1
                if self._sequence > MAX_LIVE_SEQUENCE:
                    while now <= self._last_ms:  # 2048 ids in this ms: wait for the next
                        time.sleep(0.0001)
                        now = max(_ms(None), now)
                    self._sequence = 0
            else:
                self._sequence = 0
            self._last_ms = now
            return self._compose(now, worker, self._sequence)

    def _explicit_id(self, ms, worker):
        # Ids for a given time: their own half of the sequence (never a live id's), holding the
        # lease's epoch (a counter of this worker id's holders); the ms of the time's second
        # count the ids made for that second (datetimes in the design have second precision).
        # 1,000 ids for one second, or forgetting the counters, move on to a new epoch: a fresh
        # space, where repeating a counter cannot meet an earlier id.
        second = ms - ms % 1000
        counter = self._backfill.get(second, -1) + 1
        if counter >= 1000 or (len(self._backfill) >= self.BACKFILL_MEMORY and second not in self._backfill):
            self._lease.next_epoch()
            self._backfill = {}
            counter = 0
        self._backfill[second] = counter
        return self._compose(second + counter, worker, EXPLICIT_FLAG | (self._lease.epoch & MAX_EPOCH))

    @staticmethod
    def _compose(ms, worker, seq):
        delta = ms - EPOCH_MS
        if not 0 <= delta < (1 << TIME_BITS):
            raise IdError("The time is outside the id range (2020-2089).")
        return (delta << TIME_SHIFT) | (worker << SEQUENCE_BITS) | seq


_generator = SnowflakeGenerator()


def new_id(when: datetime | None = None) -> int:
    """A new Snowflake id for now, or for the aware datetime `when` (backfills)."""
    return _generator.next_id(when)


def new_uuid(when: datetime | None = None) -> str:
    """A time-ordered UUIDv7 as a 36-character string (for *_uuid columns)."""
    if when is None:
        return str(uuid6.uuid7())
    return _uuid7_text(_ms(when), os.urandom(10))


def new_uuids(count: int) -> list[str]:
    """`count` UUIDv7 strings of this millisecond, from one read of the system's random source
    (a dispatcher's claim makes 200: a read and a UUID object each cost three times as much)."""
    ms = time.time_ns() // 1_000_000
    rand = os.urandom(10 * count)
    return [_uuid7_text(ms, rand[i : i + 10]) for i in range(0, 10 * count, 10)]


def _uuid7_text(ms: int, rand: bytes) -> str:
    """UUIDv7 (RFC 9562): a 48-bit ms timestamp, the version, 12 random bits, the variant, 62
    random bits; 8-4-4-4-12 hexadecimal digits."""
    bits = int.from_bytes(rand, "big")
    value = ((ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (((bits >> 62) & 0xFFF) << 64) | (0b10 << 62)
    h = f"{value | (bits & ((1 << 62) - 1)):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
