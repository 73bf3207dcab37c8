"""Shard maintenance: plan and apply rotations, export and drop, sync schemas, instance shards.

Rotation is plan then apply: the plan is built from the registry and from introspection (never
from process memory), printed for `--dry-run`, and applied step by step under the global lock.
Every step re-checks the registry before acting, so a run that stops half-way (MySQL DDL commits
implicitly) is finished by the next one, and running twice changes nothing the second time.
"""
from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from dataclasses import dataclass, field
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.utils import timezone

from wework import audit as audit_port
from wework.db.errors import error_code
from wework.db.layout import alias_for_model, primary_aliases

from . import builder, ddl, exports, fidelity, router
from .conf import (
    all_configs, config_for, instance_suffix, is_installed, parse_suffix, period_of, shard_timezone,
    table_name,
)
from .exceptions import NotToolCreated, ShardError, ShardOutOfRange
from .locks import global_lock
from .models import ShardState, ShardTable

log = logging.getLogger("wework.shards")

INSTANCE_MODEL = "instances.WeworkInstance"


# --- Audit ----------------------------------------------------------------------------------

def audit(operation, table, *, operation_type="UPDATE", new_values=None, result="SUCCESS",
          error=None):
    """Log the step and record it in the audit trail (through the core's audit port)."""
    log.info("%s %s %s%s", operation, table, new_values or "", f" FAILED: {error}" if error else "")
    try:
        audit_port.record(
            f"shards.{operation}", resource_type="shard_table", resource_id=table,
            resource_name=table, operation_type=operation_type, new_values=new_values,
            result=result, error_message=error,
        )
    except Exception:  # an audit failure must not break a half-applied rotation
        log.exception("could not audit %s %s", operation, table)


# --- Shard models from registry rows --------------------------------------------------------

def model_from_row(row):
    """The shard model class of a registry row (built without touching the registry)."""
    conf = config_for(row.model_label)
    base = conf.model
    if conf.is_time:
        parse_suffix(conf.by, row.suffix)  # ShardOutOfRange on a registry row with a bad suffix
        return builder.build(base, row.table_name, row.suffix, time_field=conf.time_field)
    return _instance_model(base, conf, row.instance_id)


def _instance_model(base, conf, instance_id):
    suffix = instance_suffix(instance_id)
    follows = {}
    for fk_name, label in conf.follows.items():
        target = apps.get_model(label)
        follows[fk_name] = _instance_model(target, config_for(label), instance_id)
    return builder.build(base, table_name(base, suffix), suffix, follows=follows)


# --- Export and drop ------------------------------------------------------------------------

def export_shard(row: ShardTable, fmt: str | None = None) -> ShardTable:
    """Export a shard to its gzip file (unless already exported); returns the registry row."""
    if row.state == ShardState.DROPPED:
        raise ShardError(f"{row.table_name} was dropped; nothing to export.")
    model = model_from_row(row)
    path, rows, digest = exports.export_table(model, fmt=fmt)
    host = exports.export_host()
    ShardTable.objects.filter(pk=row.pk).update(
        export_path=path, export_rows=rows, export_sha256=digest, export_host=host,
        exported_at=timezone.now(), updated_at=timezone.now(),
    )
    row.refresh_from_db()
    audit("export", row.table_name,
          new_values={"host": host, "path": path, "rows": rows, "sha256": digest})
    return row


def drop_grace_seconds() -> float:
    """How long a drop waits between announcing it and dropping the table (every process
    re-reads the shared version within SHARDING_VERSION_CHECK_S)."""
    default = 2 * router.version_check_interval() + 1
    return float(getattr(settings, "SHARDING_DROP_GRACE_S", default))


def live_instance(instance_id: int) -> bool:
    """True when the instance exists and is not deleted (its shards are still in use)."""
    try:
        model = apps.get_model(INSTANCE_MODEL)
    except LookupError:
        return False
    qs = model._base_manager.filter(pk=instance_id)
    if any(f.name == "deleted_at" for f in model._meta.get_fields()):
        qs = qs.filter(deleted_at__isnull=True)
    return qs.exists()


def check_instance_droppable(instance_id: int) -> None:
    """Refuse to drop the shards of an instance that still exists."""
    if live_instance(instance_id):
        raise ShardError(
            f"Instance {instance_id} still exists; delete the instance before dropping its shard tables."
        )


def referencing_shards(row: ShardTable) -> list[str]:
    """Present shard tables whose foreign keys point at this one (group_members_N -> groups_N)."""
    names = set()
    if row.instance_id is not None:
        for conf in router.instance_configs():
            if row.model_label in conf.follows.values():
                names.add(table_name(conf.model, instance_suffix(row.instance_id)))
    names.update(ddl.referencing_tables(row.table_name))
    names.discard(row.table_name)
    return sorted(name for name in names if ddl.table_exists(name))


def drop_shard(row: ShardTable, fmt: str | None = None) -> ShardTable:
    """Export (when not exported yet) then drop a shard the tool created; returns the row.

    Refuses tables that the tool did not create, tables other shards still reference, and the
    shards of an instance that still exists. The export is verified (its row count against the
    table's) before anything changes. Then the registry row is marked dropped and the change
    announced to every process (router.announce_change), and after a grace period longer than
    their check interval the table is dropped: no running process still routes to it.
    """
    if row.state == ShardState.DROPPED:
        return row
    if not row.created_by_tool:
        raise NotToolCreated(f"{row.table_name} was not created by the shard tool, so it is not dropped.")
    check_drop_dependencies(row)
    model = model_from_row(row)
    if not row.exported_at:
        row = export_shard(row, fmt=fmt)
    present = ddl.table_exists(row.table_name)
    if present:
        actual = model._base_manager.count()
        if actual != row.export_rows:
            # Rows arrived after the export: export again before dropping.
            row = export_shard(row, fmt=fmt)
            if model._base_manager.count() != row.export_rows:
                raise ShardError(f"{row.table_name} is still being written to; it was not dropped.")
    previous = row.state
    ShardTable.objects.filter(pk=row.pk).update(
        state=ShardState.DROPPED, dropped_at=timezone.now(), updated_at=timezone.now(),
        row_estimate=0,
    )
    router.announce_change(row.model_label)
    if present:
        time.sleep(drop_grace_seconds())
        try:
            ddl.drop_table(model)
        except DatabaseError as exc:
            ShardTable.objects.filter(pk=row.pk).update(state=previous, dropped_at=None,
                                                        updated_at=timezone.now())
            router.announce_change(row.model_label)
            raise ShardError(f"{row.table_name} could not be dropped ({exc}); it is kept.") from None
    router.announce_change(row.model_label)
    row.refresh_from_db()
    audit("drop", row.table_name, operation_type="DELETE",
          new_values={"export": row.export_path, "rows": row.export_rows})
    return row


def find_row(table=None, label=None, suffix=None):
    """The registry row of a table (by name, or by model and period suffix); clear errors."""
    if table is None:
        conf = config_for(label)
        if conf.is_time:
            parse_suffix(conf.by, suffix)  # ShardOutOfRange on a malformed period
        else:
            instance_suffix(suffix)
        table = table_name(conf.model, suffix)
    row = ShardTable.objects.filter(table_name=table).first()
    if row is None:
        if ddl.table_exists(table):
            raise NotToolCreated(f"{table} is not in the shard registry (not created by the shard tool).")
        raise ShardError(f"There is no shard table named {table}.")
    return row


def check_droppable(row: ShardTable, now: datetime | None = None) -> None:
    """Refuse to drop the current or a future period (a period out of range for a drop)."""
    now = now or timezone.now()
    if row.period_end is not None and row.period_end > now:
        raise ShardOutOfRange(f"{row.table_name} holds the current or a future period; it cannot be dropped.")
    check_drop_dependencies(row)


def check_drop_dependencies(row: ShardTable) -> None:
    """Refuse the shards of a live instance and tables other shards still reference."""
    if row.instance_id is not None:
        check_instance_droppable(row.instance_id)
    dependents = referencing_shards(row)
    if dependents:
        hint = (f" drop the instance's shards together with `shards drop --instance {row.instance_id}`"
                if row.instance_id is not None else " drop those first")
        raise ShardError(f"{row.table_name} is referenced by {', '.join(dependents)};{hint}.")


# --- Rotation -------------------------------------------------------------------------------

@dataclass
class Step:
    action: str  # create, adopt, demote, export, drop, keep
    label: str
    table: str
    suffix: str
    reason: str
    period: object = field(default=None, repr=False)

    def __str__(self):
        return f"{self.action:<7} {self.table:<40} {self.reason}"


def _local(moment):
    return f"{moment.astimezone(shard_timezone()):%Y-%m-%d}"


def _shard_pattern(conf):
    suffix = {"day": r"\d{8}", "week": r"\d{4}w\d{2}", "month": r"\d{6}", "instance": r"\d+"}[conf.by]
    return re.compile(rf"^{re.escape(conf.model._meta.db_table)}_({suffix})$")


def _physical_tables(using=DEFAULT_DB_ALIAS):
    connection = connections[using]
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def selected_configs(labels=None, kinds=("day", "week", "month", "instance")):
    configs = [c for c in all_configs().values() if c.enabled and is_installed(c) and c.by in kinds]
    if labels:
        wanted = {config_for(label).label for label in labels}  # UnknownShardModel if unknown
        configs = [c for c in configs if c.label in wanted]
    return configs


def plan(now: datetime | None = None, labels: Iterable[str] | None = None,
         ahead: int | None = None, drops: bool = True) -> list[Step]:
    """The steps a rotation would take at `now` (a list of Step), without changing anything."""
    now = now or timezone.now()
    physical_by_alias = {}
    steps = []
    for conf in selected_configs(labels):
        # Each model's shards are on its module's database (wework.db.layout).
        alias = alias_for_model(conf.model)
        if alias not in physical_by_alias:
            physical_by_alias[alias] = _physical_tables(alias)
        physical = physical_by_alias[alias]
        rows = {r.table_name: r for r in ShardTable.objects.filter(model_label=conf.label)}
        pattern = _shard_pattern(conf)
        for table in sorted(physical):
            match = pattern.match(table)
            if match and table not in rows:
                steps.append(Step("adopt", conf.label, table, match.group(1),
                                  "found in the database, not in the registry (will never be dropped by the tool)"))
        if not conf.is_time:
            continue
        count = conf.create_ahead if ahead is None else ahead
        period = period_of(conf.by, now)
        for _ in range(count + 1):
            table = table_name(conf.model, period.suffix)
            row = rows.get(table)
            if (row is None or row.state == ShardState.DROPPED) and table not in physical:
                steps.append(Step("create", conf.label, table, period.suffix,
                                  f"period {period.start:%Y-%m-%d} .. {period.end:%Y-%m-%d}", period))
            period = period.next()
        hot_limit = now - timedelta(days=conf.hot_days)
        cold_limit = now - timedelta(days=conf.cold_days)
        for row in sorted(rows.values(), key=lambda r: r.period_start or now):
            if row.state == ShardState.DROPPED or row.period_end is None:
                continue
            if row.period_end <= cold_limit:
                if row.keep_until is not None and row.keep_until > now:
                    steps.append(Step("keep", conf.label, row.table_name, row.suffix,
                                      f"restored, kept until {_local(row.keep_until)}"))
                    continue
                if not row.created_by_tool:
                    steps.append(Step("keep", conf.label, row.table_name, row.suffix,
                                      "past the cold window but not created by the tool"))
                    continue
                if not row.exported_at:
                    steps.append(Step("export", conf.label, row.table_name, row.suffix,
                                      f"ended {_local(row.period_end)}, past the {conf.cold_days}-day cold window"))
                if drops:
                    steps.append(Step("drop", conf.label, row.table_name, row.suffix,
                                      f"ended {_local(row.period_end)}, past the {conf.cold_days}-day cold window"))
                elif row.state != ShardState.ARCHIVED:
                    steps.append(Step("archive", conf.label, row.table_name, row.suffix,
                                      "exported; drops are disabled for this run"))
            elif row.period_end <= hot_limit and row.state == ShardState.HOT:
                steps.append(Step("demote", conf.label, row.table_name, row.suffix,
                                  f"ended {_local(row.period_end)}, past the {conf.hot_days}-day hot window"))
    return steps


def apply_step(step, now=None):
    """Carry out one step, re-checking the registry first (idempotent)."""
    conf = config_for(step.label)
    if step.action == "create":
        router.ensure_time_shard(conf.model, step.period, check_range=False)
        audit("create", step.table, operation_type="CREATE", new_values={"period": step.suffix})
        return
    if step.action == "adopt":
        model = model_from_row(ShardTable(model_label=conf.label, table_name=step.table,
                                          suffix=step.suffix,
                                          instance_id=None if conf.is_time else int(step.suffix)))
        values = {"model_label": conf.label, "suffix": step.suffix, "strategy": conf.by,
                  "state": ShardState.HOT, "created_by_tool": False,
                  "schema_hash": builder.schema_fingerprint(model, connections[alias_for_model(model)])}
        if conf.is_time:
            period = parse_suffix(conf.by, step.suffix)
            values.update(period_start=period.start, period_end=period.end)
        else:
            values["instance_id"] = int(step.suffix)
        ShardTable.objects.get_or_create(table_name=step.table, defaults=values)
        audit("adopt", step.table, operation_type="CREATE", new_values={"created_by_tool": False})
        return
    row = ShardTable.objects.get(table_name=step.table)
    if step.action == "demote":
        if row.state == ShardState.HOT:
            # The cold tier: the same table (still queryable by the admin and the API) rebuilt
            # in the cold row format; a failure leaves it hot for the next rotation.
            row_format = ddl.to_cold_format(step.table)
            if ShardTable.objects.filter(pk=row.pk, state=ShardState.HOT).update(
                state=ShardState.COLD, updated_at=timezone.now()
            ):
                audit("demote", step.table, new_values={"state": ShardState.COLD, "row_format": row_format})
    elif step.action == "export":
        if not row.exported_at and row.state != ShardState.DROPPED:
            export_shard(row)
    elif step.action == "archive":
        if not row.exported_at:
            row = export_shard(row)
        if ShardTable.objects.filter(pk=row.pk).exclude(state__in=[ShardState.ARCHIVED, ShardState.DROPPED]).update(
            state=ShardState.ARCHIVED, updated_at=timezone.now()
        ):
            audit("archive", step.table, new_values={"state": ShardState.ARCHIVED})
    elif step.action == "drop":
        check_droppable(row, now)
        drop_shard(row)


STEP_ABORT_RETRIES = 3


def _apply_step_retrying_aborts(step: Step, now: datetime | None) -> None:
    """Steps are idempotent (each checks the registry's state first), so one the database
    aborted as a deadlock runs again. On a Galera cluster a DDL (replicated in total order)
    brute-force aborts the transactions on its table and on the tables its foreign keys point
    at: new shards are created without any such DDL (ddl.create_shard), but a demote (ALTER
    ... ROW_FORMAT) or a drop of a table in use cannot avoid it, and the step's own registry
    writes may meet another connection's DDL (docs/shards.md, "Topologies: Galera")."""
    for attempt in range(STEP_ABORT_RETRIES):
        try:
            apply_step(step, now=now)
            return
        except DatabaseError as exc:
            if (error_code(exc) != 1213 or attempt == STEP_ABORT_RETRIES - 1
                    or any(connections[alias].in_atomic_block for alias in primary_aliases())):
                raise
            log.warning("shard step %s %s aborted (deadlock); running it again", step.action, step.table)
            time.sleep(0.2 * (attempt + 1))


def rotate(now: datetime | None = None, labels: Iterable[str] | None = None,
           ahead: int | None = None, drops: bool = True, dry_run: bool = False,
           on_step: Callable[[Step], Any] | None = None) -> list[Step]:
    """Plan and (unless dry_run) apply a rotation under the global lock; returns the steps."""
    if dry_run:
        return plan(now=now, labels=labels, ahead=ahead, drops=drops)
    with global_lock():
        steps = plan(now=now, labels=labels, ahead=ahead, drops=drops)
        audit("rotate", "*", new_values={"steps": len(steps), "now": str(now or timezone.now())})
        for step in steps:
            if step.action == "keep":
                continue
            try:
                _apply_step_retrying_aborts(step, now)
            except Exception as exc:
                audit(step.action, step.table, result="FAILURE", error=str(exc))
                raise
            if on_step:
                on_step(step)
        refresh_estimates(labels)
    return steps


def refresh_estimates(labels=None):
    now = timezone.now()
    for conf in selected_configs(labels):
        for row in ShardTable.objects.filter(model_label=conf.label).exclude(state=ShardState.DROPPED):
            if ddl.table_exists(row.table_name):
                ShardTable.objects.filter(pk=row.pk).update(
                    row_estimate=ddl.row_estimate(row.table_name), rows_estimated_at=now
                )


# --- Schema sync ----------------------------------------------------------------------------

def sync_schema(labels: Iterable[str] | None = None, dry_run: bool = False) -> list[str]:
    """Bring every present shard to its base model's schema; returns the changes."""
    changes: list[str] = []
    for conf in selected_configs(labels):
        for row in ShardTable.objects.filter(model_label=conf.label).exclude(state=ShardState.DROPPED):
            if not ddl.table_exists(row.table_name):
                continue
            model = model_from_row(row)
            connection = connections[alias_for_model(model)]
            if not row.created_by_tool:
                # Tables the tool did not create are reported, never altered.
                found = ddl.sync_schema(model, apply=False) + fidelity.align(model, connection, apply=False)
                changes.extend(f"{c} [not created by the tool: left alone]" for c in found)
                continue
            found = ddl.sync_schema(model, apply=not dry_run)
            # Then the same definitions, comment and keys as the base table (MySQL/MariaDB).
            found += fidelity.align(model, connection, apply=not dry_run)
            changes.extend(found)
            if found and not dry_run:
                digest = builder.schema_fingerprint(model, connection)
                ShardTable.objects.filter(pk=row.pk).update(
                    schema_hash=digest, schema_version=row.schema_version + 1, updated_at=timezone.now()
                )
                audit("sync-schema", row.table_name, new_values={"changes": found})
    return changes


# --- Restore --------------------------------------------------------------------------------

RESTORE_KEEP_DAYS = 7


def restore_shard(row: ShardTable, keep_days: int = RESTORE_KEEP_DAYS) -> ShardTable:
    """Bring a dropped shard back from its export, rows identical; returns the registry row.

    The file must be where the registry says (this host, or a shared mount with the same path)
    and match its recorded SHA-256. The table is created as the shard layer creates it, the
    rows inserted, their count checked against the export; the row is then `archived`
    (exported, table kept), in the cold format, kept from rotation drops for `keep_days`.
    """
    table = row.table_name
    if row.state != ShardState.DROPPED:
        raise ShardError(f"{table} is not dropped (it is {row.state}); there is nothing to restore.")
    if not row.export_path:
        raise ShardError(f"{table} has no export to restore from.")
    path = row.export_path
    if not os.path.exists(path):
        here = exports.export_host()
        where = f" on host {row.export_host}" if row.export_host and row.export_host != here else ""
        raise ShardError(f"The export of {table} is not at {path} here; it was written{where or ' there'}: "
                         "copy it to that path (or restore on that host).")
    if row.export_sha256 and exports.file_sha256(path) != row.export_sha256:
        raise ShardError(f"The export {path} does not match its recorded SHA-256; {table} was not restored.")
    if ddl.table_exists(table):
        raise ShardError(f"A table named {table} exists already; it was not restored.")
    model = model_from_row(row)
    values = {
        "model_label": row.model_label, "suffix": row.suffix, "table_name": table,
        "strategy": row.strategy, "period_start": row.period_start, "period_end": row.period_end,
        "instance_id": row.instance_id, "state": ShardState.HOT, "created_by_tool": True,
        "schema_version": row.schema_version,
    }
    # Cold (it holds a past period) from the start: no ALTER TABLE rebuilds it afterwards (on
    # Galera that ALTER would abort the transactions writing the tables it references).
    ddl.create_shard(model, values, cold=row.period_end is not None)
    count = exports.restore_rows(model, path)
    if row.export_rows is not None and count != row.export_rows:
        ddl.drop_table(model)
        ShardTable.objects.filter(pk=row.pk).update(state=ShardState.DROPPED, dropped_at=timezone.now())
        router.announce_change(row.model_label)
        raise ShardError(f"The export of {table} holds {count} rows, the registry {row.export_rows}; "
                         "it was not restored.")
    if row.period_end is not None:
        ddl.to_cold_format(table)
    now = timezone.now()
    ShardTable.objects.filter(pk=row.pk).update(
        state=ShardState.ARCHIVED, dropped_at=None, restored_at=now,
        keep_until=now + timedelta(days=keep_days), row_estimate=count, rows_estimated_at=now,
        updated_at=now,
    )
    router.announce_change(row.model_label)
    row.refresh_from_db()
    audit("restore", table, operation_type="CREATE",
          new_values={"from": f"{row.export_host}:{path}", "rows": count, "keep_days": keep_days})
    return row


# --- Instance shards ------------------------------------------------------------------------

def _instance_rows(instance_id):
    order = [c.label for c in router.instance_configs()]
    rows = list(ShardTable.objects.filter(instance_id=instance_id, strategy="instance"))
    rows.sort(key=lambda r: order.index(r.model_label) if r.model_label in order else -1)
    return rows


def archive_instance(instance_id: int, user: Any = None) -> list[str]:
    """Export every shard of the instance and mark it archived (tables kept)."""
    done = []
    for row in _instance_rows(instance_id):
        if row.state == ShardState.DROPPED:
            continue
        row = export_shard(row)
        ShardTable.objects.filter(pk=row.pk).update(state=ShardState.ARCHIVED, updated_at=timezone.now())
        audit("archive", row.table_name, new_values={"instance": instance_id})
        done.append(row.table_name)
    return done


def drop_instance(instance_id: int, confirm: bool = False, user: Any = None) -> list[str]:
    """Export (if needed) then drop every shard of the instance; needs confirm=True."""
    if not confirm:
        raise ShardError(f"Dropping the shards of instance {instance_id} needs confirmation.")
    check_instance_droppable(instance_id)
    done = []
    with global_lock(name=f"instance:{instance_id}"):
        for row in reversed(_instance_rows(instance_id)):  # members before their groups
            drop_shard(row)
            done.append(row.table_name)
    return done
