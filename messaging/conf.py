"""Messaging settings with their defaults.

A key's value is, in this order: `settings.MESSAGING[KEY]` (the JSON of the environment
variable `MESSAGING_SETTINGS`, or what a settings module or a test sets), else the environment
variable `MESSAGING_<KEY>` (e.g. `MESSAGING_PER_MINUTE=20`, `MESSAGING_CHECK_MEDIA_URLS=0`),
read as the type of the default, else the default below. A variable that does not read as its
type stops the process with a sentence naming it (and `manage.py check` reports it).
"""
import os
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ENV_PREFIX = "MESSAGING_"
#: Variables with the prefix that are not keys of DEFAULTS.
ENV_NOT_KEYS = frozenset({"MESSAGING_SETTINGS"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

DEFAULTS = {
    # Pacing per sending account, shared by every worker through Redis (see pacing.py). The
    # defaults follow docs/instance-protocol.md: a random 3-5 s pause between recipients, at
    # most 30 messages a minute, and a daily cap.
    "MIN_INTERVAL_S": 3.0,
    "JITTER_S": 2.0,
    "PER_MINUTE": 30,
    "DAILY": 5000,
    # One message per this many seconds to the same conversation (contact or group) of an
    # account, across all its tasks: a second message to a busy conversation waits, others go.
    "CONVERSATION_INTERVAL_S": 3.0,
    # A worker never sleeps longer than this for a pacing slot: it hands its claimed
    # receivers back and the task is picked up again later.
    "MAX_PACING_WAIT_S": 30.0,
    # Receivers per claim (upper bound; with pacing the claim shrinks to what the worker can
    # send in about 100 s).
    "CLAIM_BATCH": 200,
    # Claim leases (dispatch/heartbeat.py): a running dispatcher renews its claims (receivers in
    # "sending") in the database every CLAIM_HEARTBEAT_S (at most a third of the lease); a claim
    # not renewed for CLAIM_LEASE_S (its worker died) is handed back and re-sent with the same
    # uuid. Beat's kick runs every 5 s: a dead worker's claims are taken over within about
    # CLAIM_LEASE_S + 5 s.
    "CLAIM_LEASE_S": 25,
    "CLAIM_HEARTBEAT_S": 5.0,
    # A dispatcher whose loop has not moved for this long (hung) stops renewing its claims.
    "CLAIM_TIMEOUT_S": 300,
    # Results are committed at least this often (and at the end of every claim).
    "FLUSH_INTERVAL_S": 0.5,
    # A claim's outcomes are written by a thread of the dispatcher while it claims and sends the
    # next (dispatch/background.py); off: written before the next claim.
    "RECORD_IN_BACKGROUND": True,
    # Without pacing, the next claim is made by a thread of the dispatcher while it sends the
    # current one (dispatch/background.py, same conditions); off: claimed after the sends.
    "CLAIM_AHEAD": True,
    # One Celery run of a dispatcher works at most this long, then re-enqueues itself.
    "DISPATCH_SLICE_S": 60,
    # A dispatcher's lease (Redis) lives this long without a heartbeat (renewed with its claims);
    # beat's kick starts a new dispatcher for a running task without a live lease. A dispatcher
    # enqueued but not started yet holds its lease 20 s longer (a busy queue).
    "LEASE_TTL_S": 25,
    # Parallel dispatchers started for one task (useful only with no pacing interval).
    "DISPATCHERS_PER_TASK": 1,
    # Sends in flight at once per dispatcher when the account has no pacing at all (no interval,
    # jitter, per-minute or daily cap): one keep-alive connection each to the instance. With any
    # pacing, a dispatcher sends one message at a time.
    "SEND_CONCURRENCY": 4,
    # Without any pacing, messages go to an instance that offers batch sends (protocol 1.1,
    # `batch_send_max` in its capabilities) up to this many per request (0 or 1: never batched).
    "BATCH_SEND_SIZE": 100,
    # Limits checked before anything is created.
    "MAX_RECEIVERS_PER_TASK": 100_000,
    "TEXT_MAX_LENGTH": 2000,
    "MATERIALIZE_CHUNK": 2000,
    # Media URLs (image, video, file) are checked with a HEAD request when a send is created.
    "CHECK_MEDIA_URLS": True,
    "MEDIA_CHECK_TIMEOUT_S": 5.0,
    # The check requests what an operator typed from the platform's server: private, loopback
    # and link-local addresses are not requested (no probing of the internal network) unless on.
    "MEDIA_CHECK_PRIVATE_HOSTS": False,
    # Back-off for transient errors: base * 2**retry_count seconds, capped.
    "RETRY_BASE_S": 5.0,
    "RETRY_MAX_S": 600.0,
    # Inbound dedupe: fallback key window (seconds) and how long keys are remembered.
    "DEDUPE_WINDOW_S": 5,
    "DEDUPE_TTL_S": 24 * 3600,
    # Acknowledgements: a handed-over message not confirmed by a webhook after this long is
    # polled (GET status); at the end of a task a dispatcher waits at most ACK_WAIT_S for them.
    "ACK_POLL_AFTER_S": 2.0,
    # Read acknowledgements from the instance's event feed (one request per 500), polling only
    # the messages the feed has not confirmed ACK_FEED_GRACE_S after they were handed over.
    "ACK_FROM_EVENTS": True,
    "ACK_FEED_GRACE_S": 5.0,
    "ACK_WAIT_S": 30.0,
    # Instance HTTP timeout for a send.
    "SEND_TIMEOUT_S": 10.0,
}


def get(name: str):
    overrides = getattr(settings, "MESSAGING", None) or {}
    if name in overrides:
        return overrides[name]
    raw = os.environ.get(ENV_PREFIX + name)
    if raw is not None and raw.strip() != "":
        return from_env(name, raw)
    return DEFAULTS[name]


@lru_cache(maxsize=256)
def from_env(name: str, raw: str):
    """The value of `MESSAGING_<name>` as the type of its default; ImproperlyConfigured if not."""
    default = DEFAULTS[name]
    text = raw.strip()
    variable = ENV_PREFIX + name
    if isinstance(default, bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ImproperlyConfigured(f"{variable} must be 1 or 0 (true/false), not {raw!r}.")
    try:
        value = int(text) if isinstance(default, int) else float(text)
    except ValueError:
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise ImproperlyConfigured(f"{variable} must be {kind}, not {raw!r}.") from None
    if value < 0:
        raise ImproperlyConfigured(f"{variable} must not be negative, not {raw!r}.")
    return value


def environment_problems(environ=None) -> list[str]:
    """Sentences about `MESSAGING_*` variables that are unknown or do not read as their type."""
    environ = os.environ if environ is None else environ
    problems = []
    for variable, raw in sorted(environ.items()):
        if not variable.startswith(ENV_PREFIX) or variable in ENV_NOT_KEYS:
            continue
        name = variable[len(ENV_PREFIX):]
        if name not in DEFAULTS:
            problems.append(f"{variable} is not a messaging setting (see docs/deployment.md).")
            continue
        if raw.strip() == "":
            continue
        try:
            from_env(name, raw)
        except ImproperlyConfigured as exc:
            problems.append(str(exc))
    return problems
