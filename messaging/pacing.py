"""Per-account send pacing, shared by every worker.

Each sending account has, in Redis:
  - `next`: the earliest time (ms, Redis clock) the next message may go out;
  - `win`:  a sorted set of the slots handed out in the last minute (per-minute cap);
  - `day:<YYYYMMDD>`: messages handed out today (daily cap, local time zone);
  - `blocked`: set when the account hit risk control or a ban; nothing is handed out until an
    operator clears it (`unblock`);
  - `conv:<conversation id>`: the earliest time the next message to that conversation may go
    out (one message per CONVERSATION_INTERVAL_S per conversation, across all tasks).

`reserve()` runs one Lua script, so reservations from any number of workers are atomic and
strictly spaced: the script takes the Redis clock (no skew between hosts), computes the first
slot that respects the interval and the per-minute cap, records it and returns how long the
caller must wait. A caller that dies after reserving only wastes its slot. A test passes a
`clock.FakeClock`, whose time the script then takes instead of Redis's.

Without Redis (the embedded development default) the same algorithm runs in process memory,
which paces one process only (the embedded default runs one worker process); production runs
Redis. The `blocked` flag, which the web process sets and clears and the worker reads, lives in
the Django cache there (a file cache shared by the embedded default's processes).
"""
import random
import threading
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django_redis import get_redis_connection

from wework import redis_conn

from . import conf
from .clock import SYSTEM, Clock

KEY_PREFIX = "wework:msg:pace:"

RESERVED, BLOCKED, DAILY_CAP, TOO_FAR, CONVERSATION_BUSY = 0, 1, 2, 3, 4

_LUA = """
local now
if ARGV[7] ~= '' then
  now = tonumber(ARGV[7])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local interval = tonumber(ARGV[1])
local per_minute = tonumber(ARGV[2])
local daily = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local conv_interval = tonumber(ARGV[6])
if redis.call('EXISTS', KEYS[4]) == 1 then return {1, 0} end
if daily > 0 then
  local used = tonumber(redis.call('GET', KEYS[3]) or '0')
  if used >= daily then return {2, 0} end
end
local slot = now
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if nxt > slot then slot = nxt end
if per_minute > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60000)
  local entries = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. (slot - 60000), '+inf', 'WITHSCORES')
  local k = #entries / 2
  if k >= per_minute then
    local edge = tonumber(entries[(k - per_minute) * 2 + 2]) + 60000
    if edge > slot then slot = edge end
  end
end
if conv_interval > 0 then
  local conv_next = tonumber(redis.call('GET', KEYS[5]) or '0')
  if conv_next > slot then return {4, conv_next - now} end
end
local wait = slot - now
if wait > max_wait then return {3, wait} end
if conv_interval > 0 then
  redis.call('SET', KEYS[5], slot + conv_interval, 'PX', wait + conv_interval)
end
redis.call('SET', KEYS[1], slot + interval, 'PX', wait + interval + 60000)
if per_minute > 0 then
  redis.call('ZADD', KEYS[2], slot, ARGV[5])
  redis.call('PEXPIRE', KEYS[2], wait + 61000)
end
if daily > 0 then
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], 172800)
end
return {0, wait}
"""


@dataclass
class Limits:
    min_interval_s: float
    jitter_s: float
    per_minute: int
    daily: int
    conversation_interval_s: float = 0.0

    @classmethod
    def default(cls, send_interval_s=0):
        """Settings, raised to a task's own `send_interval` when that is larger."""
        return cls(
            min_interval_s=max(float(conf.get("MIN_INTERVAL_S")), float(send_interval_s or 0)),
            jitter_s=float(conf.get("JITTER_S")),
            per_minute=int(conf.get("PER_MINUTE")),
            daily=int(conf.get("DAILY")),
            conversation_interval_s=float(conf.get("CONVERSATION_INTERVAL_S")),
        )

    @property
    def any(self):
        """Whether anything paces at all (otherwise sends need no reservation)."""
        return bool(self.min_interval_s or self.jitter_s or self.per_minute or self.daily
                    or self.conversation_interval_s)

    def interval_ms(self):
        jitter = random.uniform(0, self.jitter_s) if self.jitter_s > 0 else 0.0
        return int(round((self.min_interval_s + jitter) * 1000))


@dataclass
class Reservation:
    code: int
    wait_s: float = 0.0

    @property
    def ok(self):
        return self.code == RESERVED


def _keys(account_id, clock=SYSTEM):
    # One hash tag per account: the script touches these and the conversation key together,
    # which a Redis Cluster allows only within one slot.
    base = f"{KEY_PREFIX}{{{account_id}}}:"
    day = timezone.localtime(clock.now()).strftime("%Y%m%d")
    return [base + "next", base + "win", base + "day:" + day, base + "blocked"]


def _conversation_key(account_id, conversation_id):
    return f"{KEY_PREFIX}{{{account_id}}}:conv:{conversation_id}"


def redis_client():
    """The Redis connection of the cache, or None without Redis (embedded development)."""
    if not getattr(settings, "REDIS_URL", ""):
        return None
    return get_redis_connection("default")  # a RedisCluster with redis+cluster:// (wework.redis_conn)


class _RedisPacer:
    def __init__(self, client):
        self.client = client
        self.script = client.register_script(_LUA)

    def reserve(self, account_id, limits, max_wait_s, conversation_id=None, clock=SYSTEM):
        conversation_ms = int(round(limits.conversation_interval_s * 1000)) if conversation_id else 0
        code, wait = self.script(
            keys=_keys(account_id, clock) + [_conversation_key(account_id, conversation_id or "")],
            args=[
                limits.interval_ms(),
                limits.per_minute,
                limits.daily,
                int(max_wait_s * 1000),
                uuid.uuid4().hex,
                conversation_ms,
                int(clock.time() * 1000) if clock.is_fake else "",
            ],
        )
        return Reservation(int(code), int(wait) / 1000.0)

    def block(self, account_id, reason):
        self.client.set(_keys(account_id)[3], str(reason)[:200])

    def defer(self, account_id, seconds):
        self.client.eval(
            "local t = redis.call('TIME'); local v = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"
            " + tonumber(ARGV[1]); local cur = tonumber(redis.call('GET', KEYS[1]) or '0');"
            " if v > cur then redis.call('SET', KEYS[1], v, 'PX', tonumber(ARGV[1]) + 60000) end; return 1",
            1, _keys(account_id)[0], int(seconds * 1000),
        )

    def unblock(self, account_id):
        self.client.delete(_keys(account_id)[3])

    def blocked_reason(self, account_id):
        value = self.client.get(_keys(account_id)[3])
        return value.decode() if isinstance(value, bytes) else value

    def reset(self, account_id):
        self.client.delete(*_keys(account_id))
        for node in redis_conn.primaries(self.client):
            for key in node.scan_iter(match=_conversation_key(account_id, "*"), count=500):
                node.delete(key)


def _blocked_cache_key(account_id):
    return f"{KEY_PREFIX}{account_id}:blocked"


class _LocalPacer:
    """Same algorithm in process memory (no Redis configured); the stop flag in the Django
    cache, so that a stop or its clearing made by one process is seen by the others."""

    def __init__(self):
        self.lock = threading.Lock()
        self.state = {}

    @staticmethod
    def _blocked(account_id):
        return cache.get(_blocked_cache_key(account_id))

    def _st(self, account_id):
        return self.state.setdefault(
            account_id, {"next": 0, "win": [], "day": {}, "conv": {}}
        )

    def reserve(self, account_id, limits, max_wait_s, conversation_id=None, clock=SYSTEM):
        with self.lock:
            st = self._st(account_id)
            now = int(clock.time() * 1000)
            if self._blocked(account_id) is not None:
                return Reservation(BLOCKED)
            day = timezone.localtime(clock.now()).strftime("%Y%m%d")
            if limits.daily > 0 and st["day"].get(day, 0) >= limits.daily:
                return Reservation(DAILY_CAP)
            slot = max(now, st["next"])
            if limits.per_minute > 0:
                st["win"] = [s for s in st["win"] if s > now - 60000]
                inside = [s for s in st["win"] if s > slot - 60000]
                if len(inside) >= limits.per_minute:
                    slot = max(slot, inside[len(inside) - limits.per_minute] + 60000)
            conversation_ms = int(round(limits.conversation_interval_s * 1000)) if conversation_id else 0
            if conversation_ms:
                conv = st["conv"]
                if len(conv) > 1000:  # drop expired entries now and then: keeps the map small
                    for key in [k for k, v in conv.items() if v <= now]:
                        del conv[key]
                if conv.get(conversation_id, 0) > slot:
                    return Reservation(CONVERSATION_BUSY, (conv[conversation_id] - now) / 1000.0)
            wait = slot - now
            if wait > max_wait_s * 1000:
                return Reservation(TOO_FAR, wait / 1000.0)
            if conversation_ms:
                st["conv"][conversation_id] = slot + conversation_ms
            st["next"] = slot + limits.interval_ms()
            if limits.per_minute > 0:
                st["win"].append(slot)
            st["day"][day] = st["day"].get(day, 0) + 1
            return Reservation(RESERVED, wait / 1000.0)

    def block(self, account_id, reason):
        cache.set(_blocked_cache_key(account_id), str(reason)[:200], timeout=None)

    def defer(self, account_id, seconds):
        with self.lock:
            st = self._st(account_id)
            st["next"] = max(st["next"], int(SYSTEM.time() * 1000 + seconds * 1000))

    def unblock(self, account_id):
        cache.delete(_blocked_cache_key(account_id))

    def blocked_reason(self, account_id):
        return self._blocked(account_id)

    def reset(self, account_id):
        with self.lock:
            self.state.pop(account_id, None)
        self.unblock(account_id)


_local = _LocalPacer()
_pacers: dict[int, _RedisPacer] = {}


def pacer():
    client = redis_client()
    if client is None:
        return _local
    key = id(client)
    p = _pacers.get(key)
    if p is None:
        p = _pacers[key] = _RedisPacer(client)
    return p


def reserve(account_id: int, limits: Limits | None = None, max_wait_s: float | None = None,
            conversation_id: str | None = None, clock: Clock = SYSTEM) -> Reservation:
    """A slot for the account's next message (to `conversation_id`, when given: also one
    message per `limits.conversation_interval_s` to that conversation). CONVERSATION_BUSY, with
    the wait, when the conversation is not free by the account's slot: nothing is reserved,
    and the caller sends to another conversation meanwhile."""
    limits = limits or Limits.default()
    if max_wait_s is None:
        max_wait_s = float(conf.get("MAX_PACING_WAIT_S"))
    return pacer().reserve(account_id, limits, max_wait_s, conversation_id, clock=clock)


def block(account_id: int, reason: str) -> None:
    pacer().block(account_id, reason)


def defer(account_id: int, seconds: float) -> None:
    """Push the account's next slot at least `seconds` ahead (the instance said rate_limited)."""
    pacer().defer(account_id, seconds)


def unblock(account_id: int) -> None:
    pacer().unblock(account_id)


def blocked_reason(account_id: int) -> str | None:
    return pacer().blocked_reason(account_id)
