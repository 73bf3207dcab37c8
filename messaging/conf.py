"""Messaging settings with their defaults.

Override any key in `settings.MESSAGING` (a dict); every key can also be set from the
environment as `MESSAGING_<KEY>` (upper case), which the settings module reads.
"""
from django.conf import settings

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
    # send within a third of CLAIM_TIMEOUT_S).
    "CLAIM_BATCH": 200,
    # A claim (receiver in "sending" without result) older than this is handed back.
    "CLAIM_TIMEOUT_S": 300,
    # Results are committed at least this often (and at the end of every claim).
    "FLUSH_INTERVAL_S": 0.5,
    # One Celery run of a dispatcher works at most this long, then re-enqueues itself.
    "DISPATCH_SLICE_S": 60,
    # A dispatcher's lease (Redis) lives this long without a heartbeat; beat's kick starts a
    # new dispatcher for a running task without a live lease.
    "LEASE_TTL_S": 90,
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


def get(name):
    overrides = getattr(settings, "MESSAGING", None) or {}
    if name in overrides:
        return overrides[name]
    return DEFAULTS[name]
