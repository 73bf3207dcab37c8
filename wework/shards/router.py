"""Routing: the public functions of the shard layer (see docs/shards.md).

Time-sharded rows carry a Snowflake id that encodes the row's time; the shard of a row is the
period of that time, so `get(id)` reads one table and keyset pages walk the shards newest first.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.db import DatabaseError, connections, models, router as db_router, transaction
from django.db.models import Q
from django.utils import timezone

from wework.db.errors import error_code
from wework.db.layout import cross_filter
from wework.db.rows import plain_rows
from wework.ids import id_bounds, id_time, new_id, new_uuid

from . import builder, ddl, visibility
from .conf import (
    all_configs, config_for, instance_suffix, period_of, table_name,
)
from .exceptions import ShardError, ShardMissing, ShardOutOfRange, UnknownShardModel
from .models import ShardState, ShardTable

log = logging.getLogger("wework.shards")
ER_LOCK_DEADLOCK = 1213

# Seen by other modules as router.<name> (services, the admin): the visibility of drops.
announce_change = visibility.announce_change
version_check_interval = visibility.version_check_interval



@dataclass
class Page:
    """One keyset page: `items` newest first, `next_after` the cursor of the next page or None."""

    items: list
    next_after: int | None


def _base(model):
    return getattr(model, "_shard_base", None) or model


def is_sharded(base_model: type[models.Model]) -> bool:
    """True when the model is configured in SHARDING and enabled."""
    try:
        return config_for(_base(base_model)).enabled
    except UnknownShardModel:
        return False


# --- Shard classes --------------------------------------------------------------------------

def _time_model(base, conf, period):
    table = table_name(base, period.suffix)
    return builder.build(base, table, period.suffix, time_field=conf.time_field), table


def _instance_model(base, conf, instance_id, create):
    suffix = instance_suffix(instance_id)
    follows = {}
    for fk_name, label in conf.follows.items():
        target = apps.get_model(label)
        follows[fk_name] = model_for(target, instance_id=instance_id, create=create)
    table = table_name(base, suffix)
    return builder.build(base, table, suffix, follows=follows), table


def _registered(table):
    """True when the registry lists the table as present (cached positively for a while)."""
    visibility.check_version()
    if ddl.is_known(table):
        return True
    present = ShardTable.objects.filter(table_name=table).exclude(state=ShardState.DROPPED).exists()
    if present:
        connection = connections[ShardTable.objects.db]
        if connection.in_atomic_block and connection.features.can_rollback_ddl:
            # SQLite: the table may have been created in this very transaction, which can
            # still roll back (and the table with it); remember it once that is settled.
            transaction.on_commit(lambda: ddl.remember(table), using=connection.alias)
        else:
            ddl.remember(table)
    return present


def check_writable(conf, period, now=None):
    """Raise ShardOutOfRange unless a write may create the shard of `period`."""
    now = now or timezone.now()
    oldest = now - timedelta(days=conf.cold_days)
    newest = period_of(conf.by, now)
    for _ in range(conf.create_ahead):
        newest = newest.next()
    if period.end <= oldest:
        raise ShardOutOfRange(
            f"{table_name(conf.model, period.suffix)} is older than the {conf.cold_days}-day retention; "
            "it is not created for a write."
        )
    if period.start >= newest.end:
        raise ShardOutOfRange(
            f"{table_name(conf.model, period.suffix)} lies more than {conf.create_ahead} periods ahead; "
            "it is not created for a write."
        )


def ensure_time_shard(base, period, now=None, check_range=True):
    """The shard model of `period`, its table created (with its registry row) if missing."""
    conf = config_for(base)
    model, table = _time_model(base, conf, period)
    if _registered(table):
        return model
    if check_range:
        check_writable(conf, period, now)
    ddl.create_shard(
        model,
        {
            "model_label": conf.label, "suffix": period.suffix, "table_name": table,
            "strategy": conf.by, "period_start": period.start, "period_end": period.end,
            "instance_id": None, "state": ShardState.HOT, "created_by_tool": True,
            "schema_version": 1,
        },
        using=db_router.db_for_write(base),
    )
    visibility.invalidate_listing(conf.label)
    return model


def model_for(base_model: type[models.Model], when: datetime | None = None, instance_id: int | None = None,
              create: bool = True) -> type[models.Model]:
    """The concrete model class of the shard for `when` (time) or `instance_id` (instance).

    Sharding disabled for the model: the base model. Shard missing: created when `create` (see
    docs/shards.md, "Missing shards"), else ShardMissing.
    """
    base = _base(base_model)
    conf = config_for(base)
    if not conf.enabled:
        return base
    if conf.is_time:
        period = period_of(conf.by, when or timezone.now())
        model, table = _time_model(base, conf, period)
        if _registered(table):
            return model
        if not create:
            raise ShardMissing(f"The shard {table} does not exist.")
        return ensure_time_shard(base, period)
    if instance_id is None:
        raise ShardError(f"{conf.label} is sharded by instance: pass instance_id.")
    model, table = _instance_model(base, conf, instance_id, create)
    if _registered(table):
        return model
    if not create:
        raise ShardMissing(f"The shard {table} does not exist.")
    ddl.create_shard(
        model,
        {
            "model_label": conf.label, "suffix": instance_suffix(instance_id), "table_name": table,
            "strategy": conf.by, "period_start": None, "period_end": None,
            "instance_id": int(instance_id), "state": ShardState.HOT, "created_by_tool": True,
            "schema_version": 1,
        },
        using=db_router.db_for_write(base),
    )
    visibility.invalidate_listing(conf.label)
    return model


def model_for_id(base_model: type[models.Model], id: int,  # noqa: A002 - `id` is the shard API's keyword
                 instance_id: int | None = None) -> type[models.Model]:
    """The shard model holding the row with this id (never creates a table)."""
    base = _base(base_model)
    conf = config_for(base)
    if not conf.enabled:
        return base
    if conf.is_time:
        return model_for(base, when=id_time(id), create=False)
    return model_for(base, instance_id=instance_id, create=False)


def group_ids_by_shard(base_model: type[models.Model], ids: Iterable[int]) -> dict[type[models.Model], list[int]]:
    """{shard model: [ids]} for ids of a time-sharded model, skipping ids whose shard does not
    exist. Ids are time-ordered and periods contiguous, so a sorted run whose first and last id
    share a shard lies wholly in it: a few lookups per call instead of one per id."""
    ordered = sorted(int(i) for i in ids)
    groups: dict[type[models.Model], list[int]] = {}

    def lookup(i):
        try:
            return model_for_id(base_model, i)
        except ShardError:
            return None

    def split(lo, hi, first, last):  # ordered[lo..hi], first/last: their shard models
        if first is last:
            if first is not None:
                groups.setdefault(first, []).extend(ordered[lo : hi + 1])
            return
        if hi - lo <= 1:
            for k, model in ((lo, first), (hi, last)):
                if model is not None:
                    groups.setdefault(model, []).append(ordered[k])
            return
        mid = (lo + hi) // 2
        middle = lookup(ordered[mid])
        split(lo, mid, first, middle)
        if mid + 1 <= hi:
            split(mid + 1, hi, lookup(ordered[mid + 1]), last)

    if ordered:
        split(0, len(ordered) - 1, lookup(ordered[0]), lookup(ordered[-1]))
    return groups


# --- Writes ---------------------------------------------------------------------------------

def _row_dict(base, row):
    if isinstance(row, dict):
        return dict(row)
    values = {}
    for field in base._meta.local_fields:
        value = getattr(row, field.attname)
        if field.primary_key and value is None:
            continue
        values[field.attname] = value
    return values


def _prepare(base, conf, fields, now):
    """Give a row its time, id and uuid (consistent with one another); return its shard time."""
    when = None
    if conf.enabled and conf.is_time or conf.time_field in fields:
        when = fields.get(conf.time_field)
    if fields.get("id") is not None:
        when = when or id_time(fields["id"])
    else:
        fields["id"] = new_id(when) if when is not None else new_id()
    if conf.is_time:
        when = id_time(fields["id"]) if when is None else when
        fields.setdefault(conf.time_field, when if when is not None else now)
        if conf.enabled and period_of(conf.by, when) != period_of(conf.by, id_time(fields["id"])):
            raise ShardError(f"The id {fields['id']} does not belong to the period of {when:%Y-%m-%d %H:%M:%S}.")
    if conf.uuid_field and not fields.get(conf.uuid_field):
        fields[conf.uuid_field] = new_uuid(when)
    return when or now


ABORT_RETRIES = 3


def _retry_aborted(base, write):
    """Run `write()` again when the database aborted it as a deadlock (1213). On a Galera
    cluster a DDL (replicated in total order) brute-force aborts the statements touching its
    table or the tables its foreign keys point at: a new shard no longer runs any such DDL (one
    CREATE TABLE, see create_table.py), but a rotation's demote or drop and `sync-schema` still
    do, and writes through two nodes fail certification. Only outside the caller's
    transaction: an aborted statement in autocommit wrote nothing, and the row's id is fixed
    before the first try, so the retry writes the same row. Inside a transaction the caller's
    own retry (run_idempotent) decides."""
    if connections[db_router.db_for_write(base)].in_atomic_block:
        return write()
    for attempt in range(ABORT_RETRIES):
        try:
            return write()
        except DatabaseError as exc:
            if error_code(exc) != ER_LOCK_DEADLOCK or attempt == ABORT_RETRIES - 1:
                raise
            log.warning("write to a shard of %s aborted (deadlock or certification); retrying",
                        base._meta.label)
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def create(base_model: type[models.Model], instance_id: int | None = None, **fields: Any) -> models.Model:
    """Insert one row into its shard, assigning id (and uuid) from its time field."""
    base = _base(base_model)
    conf = config_for(base)
    if conf.is_time and instance_id is not None:
        fields["instance_id"] = instance_id  # a column of time-sharded rows (instance_monitors)
    _prepare(base, conf, fields, timezone.now())

    def write():
        if conf.is_time:
            # The id encodes the row's time: its period is the row's shard.
            model = model_for(base, when=id_time(fields["id"]) if conf.enabled else None)
        else:
            model = model_for(base, instance_id=instance_id)
        return model._default_manager.create(**fields)

    return _retry_aborted(base, write)


def bulk_create(base_model: type[models.Model], rows: Sequence[Mapping[str, Any]], instance_id: int | None = None,
                batch_size: int = 1000, ignore_conflicts: bool = False) -> list[int]:
    """Insert many rows (dicts or unsaved instances) grouped per shard; returns their ids.

    `ignore_conflicts`: rows whose unique key is taken are skipped (INSERT IGNORE / ON CONFLICT
    DO NOTHING), for repeating a batch that may have been stored already."""
    base = _base(base_model)
    conf = config_for(base)
    now = timezone.now()
    # rows per shard: {period suffix (time) or None (the instance's one shard): (a time in it, rows)}
    groups: dict[str | None, tuple[datetime | None, list[dict]]] = {}
    ids: list[int] = []
    for row in rows:
        fields = _row_dict(base, row)
        _prepare(base, conf, fields, now)
        when = id_time(fields["id"]) if conf.is_time and conf.enabled else None
        key = period_of(conf.by, when).suffix if when is not None else None
        groups.setdefault(key, (when, []))[1].append(fields)
        ids.append(fields["id"])

    def write(when, group):
        if conf.is_time:
            model = model_for(base, when=when) if conf.enabled else base
        else:
            model = model_for(base, instance_id=instance_id)
        model._default_manager.bulk_create([model(**fields) for fields in group], batch_size=batch_size,
                                           ignore_conflicts=ignore_conflicts)

    for when, group in groups.values():
        _retry_aborted(base, lambda when=when, group=group: write(when, group))
    return ids


def bulk_upsert(base_model: type[models.Model], instance_id: int, rows: Sequence[Mapping[str, Any]],
                unique_fields: Sequence[str], update_fields: Sequence[str],
                batch_size: int = 500) -> int:
    """Insert or update rows of one instance's shard on its unique key; returns rows sent.

    MySQL/MariaDB: `INSERT ... ON DUPLICATE KEY UPDATE` (fires on any unique key, so the
    shard's only unique key besides the id must be `unique_fields`); SQLite: `ON CONFLICT
    (unique_fields) DO UPDATE`. Existing rows keep their id.
    """
    base = _base(base_model)
    model = model_for(base, instance_id=instance_id)
    objects = []
    for row in rows:
        fields = _row_dict(base, row)
        fields.setdefault("id", new_id())
        objects.append(model(**fields))
    connection = connections[db_router.db_for_write(model)]
    kwargs: dict[str, Any] = {"update_conflicts": True, "update_fields": list(update_fields),
                              "batch_size": batch_size}
    if connection.features.supports_update_conflicts_with_target:
        kwargs["unique_fields"] = list(unique_fields)
    model._default_manager.bulk_create(objects, **kwargs)
    return len(objects)


def update(base_model: type[models.Model], id: int, instance_id: int | None = None,  # noqa: A002
           **fields: Any) -> int:
    """UPDATE the row with this id in its shard; returns the number of rows changed."""
    try:
        model = model_for_id(base_model, id, instance_id=instance_id)
    except ShardMissing:
        return 0
    try:
        return model._base_manager.filter(pk=id).update(**fields)
    except DatabaseError as exc:
        if visibility.missing_table(exc, model):
            return 0
        raise


# --- Reads ----------------------------------------------------------------------------------

def get(base_model: type[models.Model], id: int, instance_id: int | None = None) -> models.Model:  # noqa: A002
    """The row with this id, from one table; raises base_model.DoesNotExist."""
    base: Any = _base(base_model)
    missing = base.DoesNotExist(f"No {base._meta.object_name} with id {id}.")
    try:
        model: Any = model_for_id(base, int(id), instance_id=instance_id)
    except (ShardMissing, ShardOutOfRange, ValueError, OverflowError, TypeError):
        raise missing from None
    try:
        return model._default_manager.get(pk=id)
    except model.DoesNotExist:
        raise missing from None
    except DatabaseError as exc:
        if visibility.missing_table(exc, model):
            raise missing from None
        raise


def get_or_none(base_model: type[models.Model], id: int,  # noqa: A002
                instance_id: int | None = None) -> models.Model | None:
    base = _base(base_model)
    try:
        return get(base, id, instance_id=instance_id)
    except base.DoesNotExist:
        return None


def for_instance(base_model: type[models.Model], instance_id: int | None,
                 create: bool = True) -> models.QuerySet:
    """A queryset over the instance's shard of an instance-sharded model."""
    base = _base(base_model)
    conf = config_for(base)
    if not conf.enabled:
        # One plain table for every instance: filter by the model's path to its instance.
        path = getattr(base, "INSTANCE_PATH", "instance")
        if not path:
            return base._default_manager.filter(pk=instance_id)
        # No join into another module's database (wework.db.layout).
        return base._default_manager.filter(**cross_filter(base, f"{path}_id", instance_id))
    if conf.is_time:
        raise ShardError(f"{conf.label} is sharded by time; use paginate() with a filter on the instance.")
    return model_for(base, instance_id=instance_id, create=create)._default_manager.all()


def _present_rows(label):
    visibility.check_version()
    with visibility.listing_lock:
        cached = visibility.listing.get(label)
    if cached and time.monotonic() - cached[0] < visibility.LISTING_TTL:
        return cached[1]
    rows = list(
        ShardTable.objects.filter(model_label=label)
        .exclude(state=ShardState.DROPPED)
        .order_by("-period_start", "-table_name")
        .values("table_name", "suffix", "period_start", "period_end", "instance_id")
    )
    with visibility.listing_lock:
        visibility.listing[label] = (time.monotonic(), rows)
    return rows


def shard_models(base_model: type[models.Model], since: datetime | None = None,
                 until: datetime | None = None) -> list[type[models.Model]]:
    """Existing (not dropped) shard models overlapping [since, until), newest first."""
    base = _base(base_model)
    conf = config_for(base)
    if not conf.enabled:
        return [base]
    result = []
    for row in _present_rows(conf.label):
        if conf.is_time:
            if since is not None and row["period_end"] <= since:
                continue
            if until is not None and row["period_start"] >= until:
                continue
            model, _table = _time_model(base, conf, period_of(conf.by, row["period_start"]))
        else:
            model, _table = _instance_model(base, conf, row["instance_id"], create=False)
        result.append(model)
    return result


def _filtered(qs, filters):
    if filters is None:
        return qs
    if callable(filters):  # e.g. a FilterSet's filter_queryset, applied to each shard's rows
        return filters(qs)
    if isinstance(filters, Q):
        return qs.filter(filters)
    return qs.filter(**filters)


def paginate(base_model: type[models.Model], since: datetime | None = None, until: datetime | None = None,
             filters: Any = None, after: int | None = None, limit: int = 50,
             instance_id: int | None = None, values: Sequence[str] | None = None) -> Page:
    """A keyset page, newest first, walking the shards from newest to oldest.

    `filters`: a Q, a dict of lookups, or a callable taking and returning a shard's queryset.
    Each shard is asked for `id < after` (and the id bounds of [since, until) for time shards),
    `ORDER BY id DESC LIMIT n`; the walk stops as soon as the page (plus one look-ahead row) is
    full. No COUNT, no OFFSET.
    """
    base = _base(base_model)
    conf = config_for(base)
    limit = max(1, min(int(limit), 1000))
    after = int(after) if after not in (None, "") else None
    sharded_by_time = conf.enabled and conf.is_time
    if sharded_by_time:
        models = shard_models(base, since, until)
        if after is not None:
            # Shards newer than the cursor's period cannot hold ids below the cursor.
            cursor_start = period_of(conf.by, id_time(after)).start
            models = [m for m in models if _period_start(m, conf) <= cursor_start]
        sources = [m._default_manager.all() for m in models]
    elif not conf.is_time:
        try:
            sources = [for_instance(base, instance_id, create=False)]
        except ShardMissing:
            sources = []  # the instance has no shard (yet): nothing to read
    else:
        sources = [base._default_manager.all()]
    low, high = id_bounds(since, until)
    items: list[Any] = []
    for qs in sources:
        qs = _filtered(qs, filters)
        if after is not None:
            qs = qs.filter(pk__lt=after)
        if sharded_by_time and (since is not None or until is not None):
            # Ids encode their time: the range is a primary key range (no time index needed).
            qs = qs.filter(pk__gte=low, pk__lt=high)
        elif since is not None or until is not None:
            time_q = {}
            if since is not None:
                time_q[f"{conf.time_field}__gte"] = since
            if until is not None:
                time_q[f"{conf.time_field}__lt"] = until
            qs = qs.filter(**time_q)
        qs = qs.order_by("-pk")
        qs = qs.values(*values) if values else plain_rows(qs)
        try:
            items.extend(qs[: limit + 1 - len(items)])
        except DatabaseError as exc:
            if not visibility.missing_table(exc, qs.model):
                raise
            continue  # dropped meanwhile: it holds nothing any more
        if len(items) > limit:
            break
    next_after = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_after = last["id"] if isinstance(last, dict) else last.pk
    return Page(items, next_after)


def _period_start(model, conf):
    from .conf import parse_suffix

    return parse_suffix(conf.by, model._shard_suffix).start


def iterate(base_model: type[models.Model], since: datetime | None = None, until: datetime | None = None,
            filters: Any = None, instance_id: int | None = None,
            chunk: int = 1000) -> Iterator[models.Model]:
    """Every matching row, newest first, chunk by chunk."""
    after = None
    while True:
        page = paginate(base_model, since=since, until=until, filters=filters, after=after,
                        limit=chunk, instance_id=instance_id)
        yield from page.items
        if page.next_after is None:
            return
        after = page.next_after


# --- Instance lifecycle ----------------------------------------------------------------------

def instance_configs():
    """Enabled instance-sharded configs, ordered so that followed models come first."""
    configs = [c for c in all_configs().values() if c.enabled and c.by == "instance"]
    ordered, labels = [], {c.label for c in configs}
    pending = list(configs)
    while pending:
        for conf in list(pending):
            deps = set(conf.follows.values()) & labels
            if deps <= {c.label for c in ordered}:
                ordered.append(conf)
                pending.remove(conf)
                break
        else:
            ordered.extend(pending)
            break
    from .conf import is_installed

    return [c for c in ordered if is_installed(c)]


def create_instance_shards(instance_id: int) -> list[type[models.Model]]:
    """Create the contacts/groups/group_members shards of an instance (idempotent)."""
    created = []
    for conf in instance_configs():
        created.append(model_for(conf.model, instance_id=instance_id, create=True))
    return created


def archive_instance_shards(instance_id: int, user: Any = None) -> list[str]:
    """Export the instance's shards and mark them archived (tables kept)."""
    from . import services

    return services.archive_instance(instance_id, user=user)


def drop_instance_shards(instance_id: int, confirm: bool = False, user: Any = None) -> list[str]:
    """Export (if not yet) then drop the instance's shards; needs confirm=True."""
    from . import services

    return services.drop_instance(instance_id, confirm=confirm, user=user)
