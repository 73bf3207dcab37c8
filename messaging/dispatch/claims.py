"""Claims: moving due PENDING receivers to SENDING, so that no two workers send one receiver,
and handing back the claims of workers that died.

A claim selects rows with `SELECT ... FOR UPDATE SKIP LOCKED` on MariaDB 10.6+/MySQL 8
(concurrent claimers skip each other's rows instead of waiting) and under SQLite's IMMEDIATE
transactions (one writer at a time) elsewhere. Every claim is one idempotent transaction
(wework.db.retry): a deadlock or a Galera certification failure rolled all of it back, and it is
run again. The design has no claim-token column:
`send_status = SENDING` plus `updated_at` is the claim and its age.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from wework import shards
from wework.db.layout import connection_for
from wework.db import literals
from wework.db.literals import inline_literal
from wework.db.retry import run_idempotent

from ..models import Message, MessageReceiver, ReceiverSendStatus as RS, TaskStatus
from .heartbeat import lease_s as heartbeat_lease_s

# Raw SQL on this app's own tables: its database (per-module databases, wework.db.layout).
connection = connection_for("messaging")

log = logging.getLogger("messaging.dispatch")

CLAIM_FIELDS = ("id", "receiver_type", "receiver_wxid", "receiver_name", "message_id", "retry_count", "variables")
#: Rows changed per statement when claims are marked or handed back (short locks).
MARK_CHUNK = 1000
RECLAIM_SLICE = 5000
INSERT_CHUNK = 500


def claimable(task_id: int, now: datetime) -> QuerySet:
    """The task's PENDING receivers that are due."""
    return MessageReceiver.objects.filter(task_id=task_id, send_status=RS.PENDING).filter(
        Q(send_time__isnull=True) | Q(send_time__lte=now)
    )


def lock_claimable(task_id: int, limit: int, after_id: int, now: datetime) -> list[dict]:
    """Rows of up to `limit` due PENDING receivers with id > after_id, locked for the caller's
    transaction; concurrent claimers skip each other's rows (SKIP LOCKED)."""
    qs = claimable(task_id, now).filter(pk__gt=after_id).order_by("pk")
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True)
    return list(qs.values(*CLAIM_FIELDS)[:limit])


def mark_claimed(receiver_ids: list[int], links: dict[int, int] | None = None, now: datetime | None = None,
                 chunk: int = MARK_CHUNK) -> None:
    """Move receivers to SENDING and, for those in `links` ({receiver_id: message_id}), link
    their new message row: one UPDATE per chunk."""
    now = now or timezone.now()
    links = links or {}
    table = connection.ops.quote_name(MessageReceiver._meta.db_table)
    stamp = MessageReceiver._meta.get_field("updated_at").get_db_prep_save(now, connection)
    for start in range(0, len(receiver_ids), chunk):
        part = receiver_ids[start : start + chunk]
        linked = [(rid, links[rid]) for rid in part if rid in links]
        sql = f"UPDATE {table} SET send_status = {int(RS.SENDING)}, updated_at = %s"
        if linked:  # ids are integers: written into the statement (600 escapes a claim before)
            sql += f", message_id = CASE id {' '.join(f'WHEN {int(r)} THEN {int(m)}' for r, m in linked)} ELSE message_id END"
        sql += f" WHERE id IN ({', '.join(str(int(r)) for r in part)})"
        with connection.cursor() as cur:
            cur.execute(sql, [stamp])


def claim(task_id: int, limit: int, after_id: int = 0, now: datetime | None = None) -> list[dict]:
    """Claim up to `limit` due PENDING receivers with id > after_id; returns their rows (dicts),
    SENDING from now on. Committed before the caller sends anything. (The dispatcher claims
    with `Dispatcher.claim`, which also creates the message rows in the same transaction.)"""
    now = now or timezone.now()

    def claim_once() -> list[dict]:
        rows = lock_claimable(task_id, limit, after_id, now)
        if rows:
            mark_claimed([r["id"] for r in rows], now=now)
        return rows

    # SKIP LOCKED only skips the locks of the node it runs on. Claimers whose connections reach
    # two Galera nodes (the proxy moved the write node while older connections stayed, or a
    # client connects to nodes directly) can lock the same PENDING rows; the cluster lets one
    # transaction commit and fails the other at COMMIT (certification, error 1213), so nothing
    # of the loser happened. It is run again: its locking read sees the winner's rows SENDING
    # and takes others. A lost connection at COMMIT is retried the same way (rows it may have
    # claimed come back through the reclaim after the lease), as Dispatcher.claim does.
    return run_idempotent(claim_once, name="claims.claim")


def insert_messages(rows: list[dict], chunk: int = INSERT_CHUNK) -> list[int]:
    """Insert message rows (dicts of Message fields, all with the same keys) into their monthly
    shards with multi-row INSERTs; returns their ids, in order. Like `shards.bulk_create`
    (ids from the Snowflake clock, `created_at` the id's time), without building a model
    instance and an expression per value: a claim's rows are written in one statement."""
    if not rows:
        return []
    ids = [shards.new_id() for _row in rows]
    for mid in (ids[0], ids[-1]):  # creates a missing shard (new ids: this month, maybe the next)
        shards.model_for(Message, when=shards.id_time(mid))
    groups = shards.group_ids_by_shard(Message, ids)
    if sum(len(g) for g in groups.values()) != len(ids):
        raise shards.ShardMissing("A shard of new message ids does not exist.")
    for model, group in groups.items():
        members = set(group)
        _insert_into(model, [(mid, row) for mid, row in zip(ids, rows) if mid in members], chunk)
    return ids


def _insert_into(model, items: list[tuple[int, dict]], chunk: int) -> None:
    qn = connection.ops.quote_name
    keys = list(items[0][1])
    by_name = {f.attname: f for f in model._meta.local_concrete_fields}
    fields = [by_name["id"], by_name["created_at"]] + [by_name[k] for k in keys]
    # Values the rows share (account, task, type, ...) are converted once.
    first = items[0][1]
    shared = {k for k in keys if all(row[k] == first[k] for _mid, row in items[1:])}
    constant = {k: by_name[k].get_db_prep_save(first[k], connection) for k in shared}
    columns = ", ".join(qn(f.column) for f in fields)
    created_at = literals.datetime_preparer(by_name["created_at"], connection)
    rest = fields[2:]
    # Plain text columns need no field conversion of a str (get_db_prep_save cost about 2 us a
    # value through Django's machinery); other fields (UUID, JSON, ...) still go through theirs.
    plain = {f.attname for f in rest if _plain_text(f)}
    prepare = {f.attname: literals.json_preparer(f, connection) if isinstance(f, models.JSONField)
               else literals.datetime_preparer(f, connection) if isinstance(f, models.DateTimeField)
               else (lambda value, f=f: f.get_db_prep_save(value, connection)) for f in rest}
    with connection.cursor() as cur:
        # Values are written into the statement (a claim of 200 rows had about 5,800 values
        # escaped one by one by the driver): integers, NULLs and timestamps as they are, strings
        # quoted by the driver's C function on MySQL/MariaDB; what remains is a parameter.
        write = literals.value_writer(connection)
        slots = [write(constant[f.attname]) if f.attname in constant else None for f in rest]
        varying = [f for f, slot in zip(rest, slots) if slot is None]
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            params: list = []
            marks = []
            for mid, row in part:
                stamp = created_at(shards.id_time(mid))
                stamp_sql = inline_literal(stamp)
                if stamp_sql is None:  # pragma: no cover - every backend adapts a datetime to a plain string
                    stamp_sql = "%s"
                    params.append(stamp)
                values = []
                for f in varying:
                    name = f.attname
                    if name in constant:
                        value = constant[name]
                    else:
                        value = row[name]
                        if not (name in plain and type(value) is str):
                            value = prepare[name](value)
                    text = write(value)
                    if text is None:
                        text = "%s"
                        params.append(value)
                    values.append(text)
                it = iter(values)
                row_tail = ", ".join([slot if slot is not None else next(it) for slot in slots])
                marks.append(f"({int(mid)}, {stamp_sql}, {row_tail})")
            # always a list, an empty one too: the driver's %-formatting undoes the quoted %%
            cur.execute(f"INSERT INTO {qn(model._meta.db_table)} ({columns}) VALUES {', '.join(marks)}", params)


def _plain_text(field) -> bool:
    """A CharField or TextField (or a subclass) that keeps the value conversions of its base:
    a str is its own database value."""
    for base in (models.CharField, models.TextField):
        if isinstance(field, base):
            cls = type(field)
            return all(getattr(cls, name) is getattr(base, name)
                       for name in ("get_prep_value", "get_db_prep_value", "get_db_prep_save", "pre_save"))
    return False


def expired(now: datetime, lease_s: float | None = None) -> QuerySet:
    """Claims not renewed for the claim lease (heartbeat.lease_s()): their worker died, hung, or
    lost its database for longer than the lease."""
    lease_s = float(lease_s if lease_s is not None else heartbeat_lease_s())
    return MessageReceiver.objects.filter(send_status=RS.SENDING, updated_at__lt=now - timedelta(seconds=lease_s))


def reclaim_stale(task_id: int | None = None, now: datetime | None = None, lease_s: float | None = None) -> int:
    """Hand back expired claims (PENDING; the next claim re-sends them with the same uuid)."""
    now = now or timezone.now()
    stale = expired(now, lease_s)
    # Cancelled tasks: a stale claim without a message was certainly never sent: skip it. One with
    # a message may have been handed over: its acknowledgement still decides.
    never_sent = stale.filter(task__status=TaskStatus.CANCELLED, message_id__isnull=True)
    skip_ids = list(never_sent.values_list("pk", flat=True)[:RECLAIM_SLICE])
    if skip_ids:
        # Conditional on the stale claim still being there: retried after a conflict.
        run_idempotent(lambda: MessageReceiver.objects.filter(
            pk__in=skip_ids, send_status=RS.SENDING, message_id__isnull=True).update(
            send_status=RS.SKIPPED, error_code="cancelled", error_message=_("Task cancelled."), updated_at=now
        ), name="reclaim_stale.skip_cancelled")
    qs = stale.exclude(task__status=TaskStatus.CANCELLED)
    if task_id is not None:
        qs = qs.filter(task_id=task_id)
    n = 0
    # In slices, so that a huge reclaim never holds long locks.
    while True:
        ids = list(qs.values_list("pk", flat=True)[:RECLAIM_SLICE])
        if not ids:
            break
        # Conditional on SENDING: a deadlock or lost connection is retried at once.
        n += run_idempotent(lambda ids=ids: MessageReceiver.objects.filter(pk__in=ids, send_status=RS.SENDING).update(
            send_status=RS.PENDING, updated_at=now), name="reclaim_stale")
        if len(ids) < RECLAIM_SLICE:
            break
    if n:
        log.info("reclaimed %d stale receiver claims", n)
    return n
