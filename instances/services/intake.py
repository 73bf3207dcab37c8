"""Webhook intake: signature and secret checks, storing events (the inbox), processing,
sequence gaps and replay, stuck events and pruning."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.translation import gettext as _

from instances import event_failures, hooks, protocol
from instances.exceptions import InstanceError
from wework import shards
from wework.api.parsers import surrogate_message
from wework.db.retry import run_idempotent

from ..models import (
    EventState,
    InstanceConfig,
    InstanceEvent,
    InstanceMonitor,
)
from . import inbox
from .base import WEBHOOK_SECRET_KEY, ServiceError
from .commands import _call, webhook_batch_max
from .configs import _SECRETS, SECRET_CACHE_SECONDS, decrypt_text
from .health import INSTANCE_HANDLERS

logger = logging.getLogger("wework.instances")

# ---------------------------------------------------------------------------------------------
# Webhook intake
# ---------------------------------------------------------------------------------------------


@dataclass
class IntakeResult:
    status: int
    body: dict


def _refuse(status, code, message):
    return IntakeResult(status, {"ok": False, "error": {"code": code, "message": str(message)}})


def _instance_secret(instance_uuid):
    """(instance_id, secret) for a live instance, or (None, None); kept in this process's
    memory (never in Redis) for SECRET_CACHE_SECONDS, so a rotated secret or a deleted instance
    takes effect within seconds."""
    import time

    now = time.monotonic()
    cached = _SECRETS.get(instance_uuid)
    if cached is not None and cached[0] > now:
        return cached[1]
    found = _load_instance_secret(instance_uuid)
    if len(_SECRETS) > 10_000:
        _SECRETS.clear()
    _SECRETS[instance_uuid] = (now + SECRET_CACHE_SECONDS, found)
    return found


def _load_instance_secret(instance_uuid):
    """(instance_id, secret) for a live instance, or (None, None). One query."""
    row = (
        InstanceConfig.objects.filter(
            instance__instance_uuid=instance_uuid,
            instance__deleted_at__isnull=True,
            config_key=WEBHOOK_SECRET_KEY,
        )
        .values_list("instance_id", "config_value", "is_encrypted")
        .first()
    )
    if row is None:
        return None, None
    instance_id, value, encrypted = row
    if value and encrypted:
        value = decrypt_text(value)
    return instance_id, value


def receive_webhook(instance_uuid, body, headers):
    """Check, store and enqueue one webhook delivery: one event, or a batch (`_receive_batch`).
    Never raises for bad input.

    401: unsigned, bad signature, stale timestamp. 400: not JSON or not a protocol event.
    404: unknown instance. 200 with duplicate=true: an event id already received (replay).
    202: accepted; processing happens in Celery.
    """
    instance_id, secret = _instance_secret(str(instance_uuid))
    if instance_id is None:
        return _refuse(404, "unknown_instance", _("No instance with this id accepts events."))
    try:
        protocol.check_signature(
            body,
            secret,
            headers.get(protocol.TIMESTAMP_HEADER),
            headers.get(protocol.SIGNATURE_HEADER),
        )
    except protocol.SignatureError as exc:
        return _refuse(401, exc.reason, _("The delivery is not signed correctly (%(reason)s).")
                       % {"reason": exc.reason})
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
        return _refuse(400, "invalid_json", _("The body is not valid JSON."))
    unpaired = surrogate_message(body, event)  # "\ud800": no character, the row could not be shown
    if unpaired:
        return _refuse(400, "invalid_json", unpaired)
    if not isinstance(event, dict):
        return _refuse(400, "invalid_event", _("The body must be a JSON object."))
    if "events" in event and "event_id" not in event:
        return _receive_batch(instance_id, event, len(body), headers)
    errors = protocol.event_errors(event)
    if errors:
        return IntakeResult(400, {"ok": False, "error": {
            "code": "invalid_event", "message": _("The event does not follow the protocol."),
            "fields": errors[:20]}})
    # The envelope's instance_id is the instance's own name for itself until the platform's
    # id is pushed (events queued before registration carry the old one): the signature, made
    # with this instance's secret, is what authenticates the sender.
    header_id = headers.get(protocol.EVENT_ID_HEADER)
    if header_id and header_id != event["event_id"]:
        return _refuse(400, "event_id_mismatch", _("X-Event-Id differs from the body's event_id."))
    _stored, duplicate = store_event(instance_id, event, enqueue=True, size=len(body))
    if duplicate:
        return IntakeResult(200, {"ok": True, "duplicate": True, "event_id": event["event_id"]})
    return IntakeResult(202, {"ok": True, "event_id": event["event_id"]})


def _receive_batch(instance_id, document, size, headers):
    """A batched delivery (protocol 1.2): {"events": [...]}, consecutive events of one instance
    in seq order. All or nothing: an item that is not a protocol event refuses the whole batch
    (400 naming it, nothing stored); otherwise every event is stored, those received before
    reported as duplicates, before the 2xx."""
    limit = webhook_batch_max()
    events = document["events"]
    if limit <= 1:
        return _refuse(400, "batches_not_accepted", _(
            "This platform takes one event per request; send the events one by one."))
    if not isinstance(events, list) or not events:
        return _refuse(400, "invalid_batch", _("'events' must be a non-empty list of events."))
    if len(events) > limit:
        return IntakeResult(400, {"ok": False, "error": {
            "code": "too_many_events", "max_events": limit,
            "message": _("The batch holds %(count)d events; this platform takes at most "
                         "%(max)d per request.") % {"count": len(events), "max": limit}}})
    seen_ids = set()
    previous_seq = None
    for index, event in enumerate(events):
        refusal = _batch_item_refusal(index, event, previous_seq, seen_ids)
        if refusal is not None:
            return refusal
        previous_seq = event["seq"]
        seen_ids.add(event["event_id"])
    header_id = headers.get(protocol.EVENT_ID_HEADER)
    if header_id and header_id != events[0]["event_id"]:
        return _refuse(400, "event_id_mismatch", _(
            "X-Event-Id differs from the event_id of the batch's first event."))
    stored = store_events(instance_id, events, enqueue=True, size=size)
    duplicates = [event["event_id"] for event, (_row, duplicate) in zip(events, stored)
                  if duplicate]
    accepted = len(events) - len(duplicates)
    return IntakeResult(202 if accepted else 200, {
        "ok": True, "count": len(events), "accepted": accepted, "duplicates": duplicates})


def _batch_item_refusal(index, event, previous_seq, seen_ids):
    """The 400 for item `index` of a batch, or None when it is a protocol event in order."""
    def refuse(code, message, **extra):
        error = {"code": code, "message": str(message), "item": index}
        if isinstance(event, dict) and isinstance(event.get("event_id"), str):
            error["event_id"] = event["event_id"]
        error.update(extra)
        return IntakeResult(400, {"ok": False, "error": error})

    if not isinstance(event, dict):
        return refuse("invalid_event", _("Item %(item)d of the batch is not a JSON object.")
                      % {"item": index})
    errors = protocol.event_errors(event)
    if errors:
        return refuse("invalid_event", _("Item %(item)d of the batch does not follow the "
                                         "protocol.") % {"item": index}, fields=errors[:20])
    if previous_seq is not None and event["seq"] <= previous_seq:
        return refuse("batch_out_of_order", _(
            "Item %(item)d of the batch has seq %(seq)d, not after %(previous)d: a batch holds "
            "events in seq order.") % {"item": index, "seq": event["seq"],
                                       "previous": previous_seq})
    if event["event_id"] in seen_ids:
        return refuse("duplicate_in_batch", _(
            "Item %(item)d of the batch repeats an event_id of the same batch.") % {"item": index})
    return None


def store_events(instance_id, events, *, enqueue=False, size=0):
    """Insert a delivery's events into the inbox together: per event (row, duplicate)."""
    rows = [_inbox_row(instance_id, event, replayed=False) for event in events]
    return inbox.store_many(rows, publish=enqueue, size=size)


def _inbox_row(instance_id, event, *, replayed):
    return InstanceEvent(
        instance_id=instance_id,
        event_id=event["event_id"],
        seq=event["seq"],
        event_type=event["type"],
        account_wxid=event.get("account_id"),
        payload=event,
        ts_ms=event["ts_ms"],
        replayed=replayed,
    )


def store_event(instance_id, event, *, replayed=False, enqueue=False, size=0):
    """Insert the event into the inbox; (row, duplicate). The unique key decides duplicates.

    With `enqueue`, a stored event is handed to Celery for processing once committed.
    Concurrent callers of one process share one INSERT and one commit (`inbox`); inside a
    transaction the row is written alone, in a savepoint. No model signals: the inbox is
    bookkeeping, not an audited change (the audit log records what the events change).
    """
    return inbox.store(_inbox_row(instance_id, event, replayed=replayed), publish=enqueue,
                       size=size)


def enqueue_event(event_pk):
    from ..tasks import process_event

    transaction.on_commit(lambda: process_event.delay(event_pk))


def process_event(event_pk):
    """Apply one stored event (claimed once; failures recorded on the row, not lost)."""
    now = timezone.now()
    claimed = InstanceEvent.objects.filter(
        pk=event_pk, state__in=(EventState.PENDING, EventState.FAILED)
    ).update(state=EventState.PROCESSING, attempts=F("attempts") + 1, claimed_at=now)
    if not claimed:
        return None
    row = InstanceEvent.objects.select_related("instance").get(pk=event_pk)
    try:
        ensure_shards_for(row.instance, row.event_type)
        if hooks.has_before_observers(row.event_type):
            # committed before the handler runs: what they record survives its failure
            run_idempotent(lambda: hooks.observe_before(row.instance, row.payload),
                           name=f"event {row.event_type} (before)")
        # Every handler is idempotent: a deadlock or a lost connection is retried at once.
        run_idempotent(lambda: dispatch_event(row.instance, row.payload), name=f"event {row.event_type}")
    except (ServiceError, ValidationError, InstanceError, LookupError) as exc:
        InstanceEvent.objects.filter(pk=row.pk).update(
            state=EventState.FAILED, error=str(exc)[:2000], processed_at=timezone.now()
        )
        logger.warning("event %s (%s) failed: %s", row.event_id, row.event_type, exc)
    except Exception as exc:  # recorded on the row: never left PROCESSING
        transient = event_failures.is_transient(exc)
        if not transient:
            logger.exception("event %s (%s) failed", row.event_id, row.event_type)
        try:
            event_failures.record_failure(row, exc, transient=transient)
        except Exception:  # noqa: BLE001 - the database is away: the stuck-event sweep retries
            logger.warning("event %s left processing: its failure could not be recorded", row.event_id)
            return None
    else:
        InstanceEvent.objects.filter(pk=row.pk).update(
            state=EventState.DONE, error=None, processed_at=timezone.now()
        )
    if not row.replayed:
        check_sequence(row)
    return row.pk


def process_events(event_pks):
    """Process events one after the other (a batch the intake published in one message).

    Each event is claimed on its own, as with `process_event`; an error that escapes one
    (the database away) leaves it to the stuck-event sweep and goes on with the next.
    """
    done = 0
    for pk in event_pks:
        try:
            if process_event(pk) is not None:
                done += 1
        except Exception:  # PENDING or PROCESSING: the sweep takes it again
            logger.warning("event %s could not be processed; the sweep retries it", pk,
                           exc_info=True)
    return done


def ensure_shards_for(instance, event_type):
    """Create the shards an event writes to before its transaction opens.

    On MySQL/MariaDB the shard layer creates tables on a separate connection; a foreign key
    to a table that the open transaction has read or written would wait for that transaction's
    metadata lock, which is held until it ends: create first, then open the transaction. The
    apps that own the tables register what to create (instances.hooks).
    """
    if event_type == protocol.EventType.INSTANCE_HEARTBEAT:
        shards.model_for(InstanceMonitor)
    hooks.prepare_shards(event_type, instance.pk)


def dispatch_event(instance, event):
    """Route an event to its handler: the instance's own, else the one an app registered."""
    kind = event["type"]
    handler = INSTANCE_HANDLERS.get(kind) or hooks.event_handler(kind)
    if handler is None:
        logger.info("no handler for instance event %s", kind)
        result = None
    else:
        result = handler(instance, event)
    hooks.observe_after(instance, event, result)
    return result


def check_sequence(row):
    """Schedule a replay when the events before this one have a hole."""
    previous = (
        InstanceEvent.objects.filter(instance_id=row.instance_id, seq__lt=row.seq)
        .aggregate(m=Max("seq"))["m"]
    )
    if previous is None or previous >= row.seq - 1:
        return False
    if not cache.add(f"instances:replay:{row.instance_id}", previous, timeout=15):
        return False
    from ..tasks import replay_events

    transaction.on_commit(lambda: replay_events.delay(row.instance_id, previous))
    return True


def replay_events(instance, after_seq, *, max_pages=20):
    """Fetch events after `after_seq` from the instance and process the missing ones."""
    fetched = 0
    for _page in range(max_pages):
        data = _call(instance, "events_after", after_seq)
        for event in data.get("events", []):
            if protocol.event_errors(event):
                logger.warning("replayed event refused: %s", event.get("event_id"))
                continue
            row, duplicate = store_event(instance.pk, event, replayed=True)
            if not duplicate:
                process_event(row.pk)
                fetched += 1
        after_seq = data.get("last_seq", after_seq)
        if not data.get("has_more"):
            break
    return fetched


#: How long an event may stay PROCESSING before the sweep hands it back (handlers take seconds).
PROCESSING_TIMEOUT = timedelta(minutes=3)


def retry_stuck_events(*, older_than=timedelta(minutes=2), limit=500):
    """Re-enqueue events left pending (lost task) or processing (killed worker)."""
    cutoff = timezone.now() - older_than
    pending = list(
        InstanceEvent.objects.filter(state=EventState.PENDING, received_at__lt=cutoff)
        .values_list("pk", flat=True)[:limit]
    )
    # A claim this old belongs to a worker that died (its failures are recorded otherwise).
    stuck = InstanceEvent.objects.filter(
        state=EventState.PROCESSING, claimed_at__lt=timezone.now() - PROCESSING_TIMEOUT
    ).update(state=EventState.PENDING)
    from ..tasks import process_event as task

    for pk in pending:
        task.delay(pk)
    return len(pending) + stuck


def prune_events(*, keep_days=7):
    cutoff = timezone.now() - timedelta(days=keep_days)
    deleted, _detail = InstanceEvent.objects.filter(
        state=EventState.DONE, received_at__lt=cutoff
    ).delete()
    return deleted
