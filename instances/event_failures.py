"""What processing an inbox event does when it fails (instances.services.process_event).

- A conflict or a lost connection (wework.db.errors) is retried at once by `run_idempotent`:
  every event handler is idempotent as written (conditional UPDATEs, upserts, unique-key
  inserts; messaging's dedupe marks are set on commit or owned by the event).
- A failure that time cures: the database still away after those attempts, Redis away, or an
  event that arrived before the state it needs (`EventNotReady`) puts the event back to PENDING
  with its error and schedules it again after a back-off; after MAX_ATTEMPTS it is FAILED
  (the admin's *Process again* or the API replays it).
- Anything else is FAILED at once with its error: never left PROCESSING, never marked DONE.
"""
from __future__ import annotations

import logging

from django.db import DatabaseError, transaction
from django.utils import timezone

from wework.db.errors import classify
from wework.errors import UnavailableError

from .exceptions import EventNotReady
from .models import EventState, InstanceEvent

logger = logging.getLogger("instances.events")

#: Claims of one event before a transient failure is recorded as FAILED.
MAX_ATTEMPTS = 8
#: Back-off of the n-th attempt: 5 s, 10 s, 20 s, ... at most 5 minutes (about 15 minutes in all).
BASE_DELAY_S = 5
MAX_DELAY_S = 300


def is_transient(exc: BaseException) -> bool:
    """True for failures that a later attempt can cure."""
    if isinstance(exc, (EventNotReady, UnavailableError)):
        return True
    if isinstance(exc, DatabaseError) and classify(exc) is not None:
        return True
    # Redis (cache, pacing, locks) away: its client's connection errors.
    return type(exc).__module__.startswith("redis") and type(exc).__name__ in REDIS_TRANSIENT


REDIS_TRANSIENT = frozenset({"ConnectionError", "TimeoutError", "BusyLoadingError"})


def retry_delay_s(attempts: int) -> int:
    return min(MAX_DELAY_S, BASE_DELAY_S * 2 ** max(0, attempts - 1))


def record_failure(row, exc: BaseException, *, transient: bool) -> str:
    """Record the failure on the row; schedule the next attempt of a transient one. Returns the
    new state's name. A database that cannot take this write leaves the row PROCESSING for the
    stuck-event sweep (instances.services.retry_stuck_events)."""
    error = f"{type(exc).__name__}: {exc}"[:2000] if not isinstance(exc, EventNotReady) else str(exc)[:2000]
    attempts = InstanceEvent.objects.filter(pk=row.pk).values_list("attempts", flat=True).first() or 0
    retry = transient and attempts < MAX_ATTEMPTS
    state = EventState.PENDING if retry else EventState.FAILED
    InstanceEvent.objects.filter(pk=row.pk, state=EventState.PROCESSING).update(
        state=state, error=error, processed_at=None if retry else timezone.now())
    if retry:
        delay = retry_delay_s(attempts)
        logger.info("event %s (%s) not applied yet (%s); attempt %d in %d s", row.event_id, row.event_type,
                    error, attempts + 1, delay)
        from .tasks import process_event  # tasks import services, which import this module

        transaction.on_commit(lambda: process_event.apply_async((row.pk,), countdown=delay))
        return "pending"
    logger.warning("event %s (%s) failed after %d attempts: %s", row.event_id, row.event_type, attempts, error)
    return "failed"
