import gzip
import json
import threading
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, models

from wework import ids, shards
from wework.shards import builder, ddl, exports, services
from wework.shards.conf import period_of, shard_timezone
from wework.shards.exceptions import RotationLocked
from wework.shards.models import ShardState, ShardTable
from wework.shards.tests.models import ProbeDaily, ProbeEvent

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "shards.ProbeEvent"


def local(*args):
    return datetime(*args, tzinfo=shard_timezone())


def run(*args):
    out = StringIO()
    call_command("shards", *args, stdout=out, stderr=out)
    return out.getvalue()


def states():
    return dict(ShardTable.objects.filter(model_label=MODEL).values_list("suffix", "state"))


def write_rows(when, count):
    model = shards.model_for(ProbeEvent, when=when, create=False)  # rotate made it
    for i in range(count):
        model.objects.create(id=ids.new_id(when + timedelta(seconds=i)), event_uuid=ids.new_uuid(when),
                             body=f"row {i}", created_at=when + timedelta(seconds=i))


def test_rotating_across_14_months_of_simulated_time(probe_sharding):
    for month in range(14):
        now = local(2025 + (month // 12), month % 12 + 1, 15, 10)
        output = run("rotate", "--model", MODEL, "--now", now.isoformat(), "--yes")
        assert "Rotation finished" in output
        # Idempotent: the same rotation again plans nothing.
        assert run("plan", "--model", MODEL, "--now", now.isoformat()).strip() == "Nothing to do."
        current = period_of("month", now)
        ahead = [current, current.next(), current.next().next()]
        for period in ahead:
            assert ddl.table_exists(f"probe_events_{period.suffix}")
            assert states()[period.suffix] in (ShardState.HOT,)
        write_rows(now, 3)
    final = states()
    # At 2026-02-15: periods ending before 2025-02-15 are dropped, those ending before
    # 2026-01-16 are cold, the rest hot.
    assert final["202501"] == ShardState.DROPPED
    assert final["202502"] == ShardState.COLD  # ended 2025-03-01, inside the cold window
    assert final["202503"] == ShardState.COLD
    assert final["202512"] == ShardState.COLD
    assert final["202601"] == ShardState.HOT
    assert final["202604"] == ShardState.HOT
    assert not ddl.table_exists("probe_events_202501")
    dropped = ShardTable.objects.get(table_name="probe_events_202501")
    assert dropped.export_rows == 3 and dropped.dropped_at
    with gzip.open(dropped.export_path, "rt") as handle:
        lines = [json.loads(line) for line in handle]
    assert [line["body"] for line in lines] == ["row 0", "row 1", "row 2"]
    assert all(period_of("month", ids.id_time(line["id"])).suffix == "202501" for line in lines)
    # Reading across the surviving shards: newest first, all rows of the kept months.
    every = list(shards.iterate(ProbeEvent, chunk=5))
    assert [r.id for r in every] == sorted((r.id for r in every), reverse=True)
    assert len(every) == 3 * 13  # one month of rows was exported and dropped


def test_drops_are_skipped_when_disabled(probe_sharding):
    run("rotate", "--model", MODEL, "--now", "2025-01-10", "--yes")
    write_rows(local(2025, 1, 10), 2)
    output = run("rotate", "--model", MODEL, "--now", "2026-03-01", "--no-drop")
    assert "drop " not in output
    row = ShardTable.objects.get(table_name="probe_events_202501")
    assert row.state == ShardState.ARCHIVED and row.export_rows == 2
    assert ddl.table_exists("probe_events_202501")


def test_export_then_drop_one_table(probe_sharding):
    run("rotate", "--model", MODEL, "--now", "2025-06-01", "--yes")
    write_rows(local(2025, 6, 3), 4)
    output = run("drop", "--model", MODEL, "--period", "202506", "--yes", "--now", "2025-09-01")
    assert "Dropped probe_events_202506" in output
    row = ShardTable.objects.get(table_name="probe_events_202506")
    assert row.state == ShardState.DROPPED and row.export_rows == 4
    assert Path(row.export_path).exists() and len(exports.read_export(row.export_path)) == 4
    assert not ddl.table_exists("probe_events_202506")
    assert "already dropped" in run("drop", "--table", "probe_events_202506", "--yes")


def test_csv_export(probe_sharding, settings):
    settings.SHARDING_EXPORT_FORMAT = "csv"
    run("rotate", "--model", MODEL, "--now", "2025-06-01", "--yes")
    write_rows(local(2025, 6, 3), 2)
    run("drop", "--table", "probe_events_202506", "--yes", "--now", "2025-09-01")
    row = ShardTable.objects.get(table_name="probe_events_202506")
    assert row.export_path.endswith(".csv.gz")
    assert [r["body"] for r in exports.read_export(row.export_path)] == ["row 0", "row 1"]


def test_tables_not_created_by_the_tool_are_never_dropped(probe_sharding):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE probe_events_202401 (id bigint PRIMARY KEY)")
    output = run("rotate", "--model", MODEL, "--now", "2025-06-01", "--yes")
    assert "adopt" in output
    row = ShardTable.objects.get(table_name="probe_events_202401")
    assert not row.created_by_tool
    assert "keep" in run("plan", "--model", MODEL, "--now", "2025-06-01")
    with pytest.raises(CommandError, match="not created by the shard tool"):
        run("drop", "--table", "probe_events_202401", "--yes")
    assert ddl.table_exists("probe_events_202401")
    # A table with a shard name that the registry does not know is refused as well.
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE probe_events_202301 (id bigint PRIMARY KEY)")
    with pytest.raises(CommandError, match="not in the shard registry"):
        run("drop", "--table", "probe_events_202301", "--yes")


@pytest.mark.parametrize("args, message", [
    (("plan", "--model", "nope.Model"), "is not a sharded model"),
    (("plan", "--now", "yesterday"), "is not an ISO date"),
    (("plan", "--now", "1999-01-01"), "outside the supported years"),
    (("drop", "--model", MODEL, "--period", "202613", "--yes"), "is not a valid month period"),
    (("drop", "--model", MODEL, "--period", "2025-01", "--yes"), "is not a month period suffix"),
    (("drop", "--table", "no_such_table", "--yes"), "There is no shard table"),
    (("drop", "--yes"), "Name the shard"),
    (("rotate", "--ahead", "-1"), "--ahead must be"),
])
def test_bad_input_is_one_clear_sentence(probe_sharding, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_the_current_period_cannot_be_dropped(probe_sharding):
    shards.create(ProbeEvent, body="now")
    suffix = period_of("month", datetime.now(shard_timezone())).suffix
    with pytest.raises(CommandError, match="current or a future period"):
        run("drop", "--model", MODEL, "--period", suffix, "--yes")


def test_drop_without_yes_is_refused_when_not_interactive(probe_sharding):
    run("rotate", "--model", MODEL, "--now", "2025-01-10", "--yes")
    with pytest.raises(CommandError, match="--yes"):
        run("rotate", "--model", MODEL, "--now", "2026-06-01")
    assert ddl.table_exists("probe_events_202501")


def test_dry_run_changes_nothing(probe_sharding):
    output = run("rotate", "--model", MODEL, "--now", "2025-01-10", "--dry-run")
    assert "create" in output and "Dry run" in output
    assert not ShardTable.objects.exists()


def test_list_shows_the_registry(probe_sharding):
    run("rotate", "--model", MODEL, "--now", "2025-01-10", "--yes")
    output = run("list", "--model", MODEL)
    assert "probe_events_202501" in output and "probe_events_202503" in output


def _racing(probe_sharding):
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(("file:memorydb", ":memory:")):
        pytest.skip("threads need a file database on SQLite (set TEST_SQLITE_NAME)")
    started, second_done, results = threading.Event(), threading.Event(), {}

    def slow(step):
        # hold the lock (inside the first step) until the second rotation has given up
        started.set()
        second_done.wait(30)

    def first():
        try:
            results["first"] = services.rotate(now=local(2025, 1, 10), labels=[MODEL], on_step=slow)
        except Exception as exc:  # noqa: BLE001
            results["first"] = exc
        finally:
            connections.close_all()  # every alias (per-module layout), not only default

    def second():
        started.wait(10)
        try:
            results["second"] = services.rotate(now=local(2025, 1, 10), labels=[MODEL])
        except Exception as exc:  # noqa: BLE001
            results["second"] = exc
        finally:
            second_done.set()
            connections.close_all()  # every alias (per-module layout), not only default

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(results["second"], RotationLocked), results
    assert [s.action for s in results["first"]] == ["create", "create", "create"]
    assert ShardTable.objects.filter(model_label=MODEL).count() == 3
    # The lock is released: the next rotation runs and has nothing to do.
    assert services.rotate(now=local(2025, 1, 10), labels=[MODEL]) == []


def test_two_rotations_racing(probe_sharding):
    _racing(probe_sharding)


def test_two_rotations_racing_with_the_database_lock(probe_sharding, settings):
    settings.REDIS_URL = ""
    _racing(probe_sharding)


def test_sync_schema_adds_new_columns_and_indexes(probe_sharding):
    for day in (1, 2):
        model = services.router.ensure_time_shard(ProbeDaily, period_of("day", local(2025, 3, day, 12)),
                                                  check_range=False)
        model.objects.create(id=ids.new_id(local(2025, 3, day, 12)), level="WARN",
                             created_at=local(2025, 3, day, 12))
    assert "Every shard matches" in run("sync-schema", "--model", "shards.ProbeDaily")
    # A migration adds a field and an index to the base model.
    from wework.db.models import TableIndex

    ProbeDaily.add_to_class("source", models.CharField(max_length=20, null=True, blank=True))
    ProbeDaily._meta.indexes.append(TableIndex(fields=["source"], name="idx_source"))
    builder.forget()
    try:
        dry = run("sync-schema", "--model", "shards.ProbeDaily", "--dry-run")
        assert "would probe_daily_20250301: add column source" in dry
        output = run("sync-schema", "--model", "shards.ProbeDaily")
        assert "probe_daily_20250301: add column source" in output
        assert "probe_daily_20250302: add index idx_source" in output
        for table in ("probe_daily_20250301", "probe_daily_20250302"):
            # ddl.read_schema: on Galera another worker's DDL may abort an introspection read.
            cols = ddl.read_schema(connection, lambda cursor, table=table: {
                c.name for c in connection.introspection.get_table_description(cursor, table)})
            assert "source" in cols
            names = ddl.read_schema(connection, lambda cursor, table=table: connection.introspection.get_constraints(
                cursor, table))
            assert any("idx_source" in n for n in names)
        row = ShardTable.objects.get(table_name="probe_daily_20250301")
        assert row.schema_version == 2
        assert "Every shard matches" in run("sync-schema", "--model", "shards.ProbeDaily")
        shard = shards.model_for(ProbeDaily, when=local(2025, 3, 1, 12), create=False)
        assert shard.objects.get().source is None
    finally:
        ProbeDaily._meta.indexes.pop()
        field = ProbeDaily._meta.get_field("source")
        ProbeDaily._meta.local_fields.remove(field)
        ProbeDaily._meta._expire_cache()
        del ProbeDaily.source
        builder.forget()


def _rotate_in_child(queue, now_iso, refused):
    from django.db import connections

    connections.close_all()  # the child opens its own connection
    try:
        from wework.shards.tests.models import PROBE_SHARDING  # noqa: F401

        # The lock holder waits (at its first step) until the other child was refused.
        steps = services.rotate(now=datetime.fromisoformat(now_iso), labels=[MODEL],
                                on_step=lambda s: refused.wait(30))
        queue.put(("ok", [s.action for s in steps]))
    except RotationLocked:
        refused.set()
        queue.put(("locked", []))
    except Exception as exc:  # noqa: BLE001
        queue.put(("error", repr(exc)))
    finally:
        connections.close_all()


def test_two_rotations_racing_in_processes(probe_sharding):
    import multiprocessing

    if connection.vendor != "mysql":
        pytest.skip("processes share the test database only on MySQL/MariaDB")
    connections.close_all()  # every alias (per-module layout), not only default
    ctx = multiprocessing.get_context("fork")
    queue, refused = ctx.Queue(), ctx.Event()
    now = local(2025, 1, 10).isoformat()
    procs = [ctx.Process(target=_rotate_in_child, args=(queue, now, refused)) for _ in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=60) for _ in procs)
    for p in procs:
        p.join()
    assert not [r for r in results if r[0] == "error"], results
    creates = sum(r[1].count("create") for r in results)
    assert creates == 3, results  # each period created by exactly one of them
    assert ShardTable.objects.filter(model_label=MODEL).count() == 3
