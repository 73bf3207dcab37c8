"""The inbox write of the webhook intake: group commit.

A web process serving deliveries on several threads (gunicorn `gthread`) would otherwise pay
one INSERT, one commit (an fsync) and one Celery publish per event. Here the deliveries that
arrive while an inbox write is under way wait for it to finish and are then written together by
one of them (the leader) on its own connection: one multi-row INSERT, which in autocommit is
one statement and one commit, then one publish for the batch. Nobody answers before the
statement that stored its event has committed: an acknowledged event is a stored event.

A delivery may itself hold several events (protocol 1.2, batched webhook deliveries): its rows
go into the same statement and it is answered once all of them are stored.

Duplicates keep their meaning: the unique key (instance, event_id) refuses an event seen
before; a batch holding one is looked up (one SELECT) and the others written again by one
statement, so that exactly the duplicates are reported (`duplicate` in the answer) and the
others stored.

The publish happens in a thread of the process (`Publisher`), one Celery message for all the
events stored since the last one; should it fail, or the process die first, the events are
stored and PENDING, and `retry_stuck_events` (beat, events older than two minutes) enqueues
them: late, never lost.

Inside a transaction (tests, a caller's `atomic()`) nothing is shared: the event is written
on the caller's connection alone, in a savepoint, and published on commit.
"""
from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
import dataclasses
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q

from wework.db import literals
from wework.db.layout import connection_for

from ..models import InstanceEvent

# Raw SQL on this app's own tables: its database (per-module databases, wework.db.layout).
connection = connection_for("instances")

logger = logging.getLogger("wework.instances")

#: At most this many events (a delivery's batch is never split), and about this many bytes of
#: payload, in one INSERT (well below MariaDB's max_allowed_packet).
MAX_BATCH = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
#: Events published to one Celery task (a worker processes them one after the other).
PUBLISH_CHUNK = 50
#: The publisher waits this long after the first event of a burst (processing starts that much
#: later; a web process of sync workers gathers a few events per message).
PUBLISH_LINGER_S = 0.02

_COLUMNS = ("instance", "event_id", "seq", "event_type", "account_wxid", "payload", "ts_ms",
            "replayed", "received_at")


@dataclass(eq=False)
class Pending:
    """One delivery waiting for the inbox write: one event, or a batch of them (protocol 1.2)
    that is stored and answered together."""

    rows: list[InstanceEvent]
    publish: bool
    size: int
    done: bool = False
    #: per row, whether the unique key refused it (received before, or twice in one write)
    duplicates: list[bool] = dataclasses.field(default_factory=list)
    error: BaseException | None = None

    @property
    def row(self) -> InstanceEvent:
        return self.rows[0]

    @property
    def duplicate(self) -> bool:
        return bool(self.duplicates) and all(self.duplicates)

    @property
    def stored(self) -> bool:
        """Every row of the delivery is in the inbox (written now, or received before)."""
        return self.error is None and all(
            row.pk is not None or duplicate
            for row, duplicate in zip(self.rows, self.duplicates or [False] * len(self.rows)))


class GroupCommit:
    """Deliveries of one process that arrive together share one INSERT and one commit."""

    def __init__(self):
        self._cond = threading.Condition()
        self._queue: list[Pending] = []
        self._leader = False

    def submit(self, item: Pending) -> Pending:
        """Wait until `item` is written (by another thread, or by this one as the leader)."""
        with self._cond:
            self._queue.append(item)
        while True:
            with self._cond:
                while not item.done and self._leader:
                    self._cond.wait(1.0)
                if item.done:
                    return item
                self._leader = True
                batch = self._take()
            try:
                write_batch(batch)
            except Exception as exc:  # noqa: BLE001 - every delivery not wholly stored gets it
                for other in batch:
                    if not other.stored:
                        other.error = exc
            finally:
                with self._cond:
                    for other in batch:
                        if not other.done and not other.stored:
                            other.error = other.error or RuntimeError(
                                "the inbox write was interrupted")
                        other.done = True
                    self._leader = False
                    self._cond.notify_all()
            publish_batch(batch)

    def _take(self) -> list[Pending]:
        batch: list[Pending] = []
        size = rows = 0
        while self._queue:
            head = self._queue[0]
            if batch and (rows + len(head.rows) > MAX_BATCH
                          or size + head.size > MAX_BATCH_BYTES):
                break
            batch.append(self._queue.pop(0))
            size += head.size
            rows += len(head.rows)
        return batch


_group = GroupCommit()


def store(row: InstanceEvent, *, publish: bool, size: int = 0) -> tuple[InstanceEvent | None, bool]:
    """Write one inbox row; (row, duplicate). With `publish`, a stored row is enqueued for
    processing (once its commit is done)."""
    return store_many([row], publish=publish, size=size)[0]


def store_many(rows: list[InstanceEvent], *, publish: bool,
               size: int = 0) -> list[tuple[InstanceEvent | None, bool]]:
    """Write the events of one delivery; per row (row, False), or (None, True) for a duplicate.

    Returns once every row is stored (or known as a duplicate); raises, having acknowledged
    nothing, when the write failed. A batch is written by one statement when nothing in it was
    received before, so a failed statement stores none of it; otherwise the duplicates are
    looked up and the rest written by one statement again (see `write_batch`).
    """
    if connection.in_atomic_block:
        return _store_in_transaction(rows, publish)
    item = _group.submit(Pending(list(rows), publish, size))
    if item.error is not None:
        raise item.error
    duplicates = item.duplicates or [False] * len(item.rows)
    return [(None, True) if duplicate else (row, False)
            for row, duplicate in zip(item.rows, duplicates)]


def _store_in_transaction(rows, publish):
    """Inside the caller's transaction: all rows or none (a savepoint), one savepoint per row
    so that a duplicate is refused alone."""
    result = []
    with transaction.atomic(using=connection.alias):
        for row in rows:
            try:
                with transaction.atomic(using=connection.alias):
                    _insert_one(row)
            except IntegrityError:
                result.append((None, True))
            else:
                result.append((row, False))
    if publish:
        pks = [row.pk for row, _duplicate in result if row is not None]
        if pks:
            transaction.on_commit(lambda: publisher.add(pks), using=connection.alias)
    return result


# --- SQL ---------------------------------------------------------------------------------------
@functools.cache
def _fields():
    meta = InstanceEvent._meta
    return [meta.get_field(name) for name in _COLUMNS]


class _Statement:
    """An INSERT of inbox rows with their values written into the statement where the driver
    would only escape them (integers, NULLs, timestamps; strings and JSON by the driver's C
    escaping on MySQL/MariaDB), the rest as parameters: the per-value `literal()` and
    `get_db_prep_save` calls were a third of an intake request's own time. Per statement, with
    the connection open."""

    def __init__(self, fields):
        self.fields = fields
        self.preparers = literals.field_preparers(fields, connection)
        self.inline = literals.value_writer(connection)
        self.params: list = []
        self.rows: list[str] = []

    def add(self, row) -> None:
        parts = []
        for field, prepare in zip(self.fields, self.preparers):
            value = getattr(row, field.attname)
            if value is not None and prepare is not None:
                value = prepare(value)
            text = self.inline(value)
            if text is None:
                self.params.append(value)
                text = "%s"
            parts.append(text)
        self.rows.append("(" + ", ".join(parts) + ")")

    def sql(self, returning: bool) -> str:
        qn = connection.ops.quote_name
        sql = (f"INSERT INTO {qn(InstanceEvent._meta.db_table)} "
               f"({', '.join(qn(f.column) for f in self.fields)}) VALUES " + ", ".join(self.rows))
        if returning:
            sql += f" RETURNING {qn('id')}, {qn('instance_id')}, {qn('event_id')}"
        return sql


def _insert_one(row):
    with connection.cursor() as cursor:
        statement = _Statement(_fields())
        statement.add(row)
        # always a list, an empty one too: the driver's %-formatting undoes the quoted %%
        cursor.execute(statement.sql(False), statement.params)
        row.pk = cursor.lastrowid
    if row.pk is None:  # pragma: no cover - every supported backend sets lastrowid
        row.pk = InstanceEvent.objects.filter(
            instance_id=row.instance_id, event_id=row.event_id).values_list("pk", flat=True).get()


def write_batch(batch: list[Pending]) -> None:
    """Store the rows of a batch of deliveries in autocommit, setting each one's duplicates."""
    rows = [row for item in batch for row in item.rows]
    duplicates = write_rows(rows)
    for item in batch:
        item.duplicates = [id(row) in duplicates for row in item.rows]


#: Times the duplicates of a batch are looked up and the rest written again before going row
#: by row (each retry means a concurrent write stored one of its events meanwhile).
_DUPLICATE_ROUNDS = 3


def write_rows(rows: list[InstanceEvent]) -> set[int]:
    """Insert `rows` (each gets its pk); the `id()`s of the rows refused as duplicates.

    One multi-row statement when the backend returns the ids; when the unique key refuses it
    (nothing stored: one statement), one SELECT finds the events received before, the first of
    any event id repeated in `rows` is kept, and the rest is written by one statement again.
    """
    duplicates: set[int] = set()
    pending = rows
    if len(rows) > 1 and connection.features.can_return_rows_from_bulk_insert:
        for _round in range(_DUPLICATE_ROUNDS):
            try:
                _insert_returning(pending)
                return duplicates
            except IntegrityError:
                pass
            stored = _stored_keys(pending)
            kept: dict[tuple, InstanceEvent] = {}
            for row in pending:
                key = (row.instance_id, row.event_id)
                if key in stored or key in kept:
                    duplicates.add(id(row))
                else:
                    kept[key] = row
            pending = list(kept.values())
            if len(pending) <= 1:
                break
    for row in pending:
        try:
            _insert_one(row)
        except IntegrityError:
            duplicates.add(id(row))
    return duplicates


def _insert_returning(rows: list[InstanceEvent]) -> None:
    with connection.cursor() as cursor:
        statement = _Statement(_fields())
        for row in rows:
            statement.add(row)
        cursor.execute(statement.sql(True), statement.params)
        returned = cursor.fetchall()
    ids = {(instance_id, event_id): pk for pk, instance_id, event_id in returned}
    for row in rows:
        row.pk = ids[(row.instance_id, row.event_id)]


def _stored_keys(rows: list[InstanceEvent]) -> set[tuple]:
    """(instance_id, event_id) of the rows' events already in the inbox: one query."""
    by_instance: dict[int, list[str]] = {}
    for row in rows:
        by_instance.setdefault(row.instance_id, []).append(row.event_id)
    condition = Q()
    for instance_id, event_ids in by_instance.items():
        condition |= Q(instance_id=instance_id, event_id__in=event_ids)
    return set(InstanceEvent.objects.filter(condition).values_list("instance_id", "event_id"))


def publish_batch(batch: list[Pending]) -> None:
    pks = [row.pk for item in batch if item.publish and item.error is None
           for row, duplicate in zip(item.rows, item.duplicates) if not duplicate]
    if pks:
        publisher.add(pks)


class Publisher:
    """Hands stored events to Celery from a thread of the process, not the request's.

    What arrives while a publish is under way goes out in the next one: one message per burst
    (in `PUBLISH_CHUNK`s), whatever the worker model. With eager Celery (tests, commands) the
    events are processed at once, in the caller's thread. A process that dies with events not
    yet published leaves them PENDING for `retry_stuck_events`; one that exits normally
    publishes them first (atexit).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pks: list[int] = []
        self._pid = None
        self._thread = None

    def add(self, pks):
        from django.conf import settings

        if settings.CELERY_TASK_ALWAYS_EAGER:
            _publish_logged(pks)
            return
        with self._lock:
            self._pks.extend(pks)
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._pid = os.getpid()  # a forked child has the list, not the thread
                self._thread = threading.Thread(target=self._run, name="inbox-publisher",
                                                daemon=True)
                self._thread.start()
                atexit.register(self.flush)
        self._wake.set()

    def _run(self):
        while True:
            self._wake.wait()
            time.sleep(PUBLISH_LINGER_S)  # let the events of the next few requests join
            self._wake.clear()
            self.flush()

    def flush(self):
        with self._lock:
            pks, self._pks = self._pks, []
        if pks:
            _publish_logged(pks)


publisher = Publisher()


def _publish_logged(pks):
    try:
        _publish(pks)
    except Exception:  # stored and PENDING: retry_stuck_events enqueues them
        logger.warning("could not enqueue %d stored events; the stuck-event sweep will",
                       len(pks), exc_info=True)


def _publish(pks):
    from ..tasks import process_event, process_events

    for start in range(0, len(pks), PUBLISH_CHUNK):
        chunk = pks[start:start + PUBLISH_CHUNK]
        if len(chunk) == 1:
            process_event.delay(chunk[0])
        else:
            process_events.delay(chunk)
