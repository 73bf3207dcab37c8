"""Retention: hot -> cold (compressed, still queryable) -> exported and dropped -> restored with
identical rows (checksums); refusals as sentences."""
import gzip
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from wework import ids, shards
from wework.shards import ddl, exports, services
from wework.shards.conf import shard_timezone
from wework.shards.models import ShardState, ShardTable
from wework.shards.tests.models import ProbeEvent

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "shards.ProbeEvent"
TABLE = "probe_events_202501"


def local(*args):
    return datetime(*args, tzinfo=shard_timezone())


def run(*args):
    out = StringIO()
    call_command("shards", *args, stdout=out, stderr=out)
    return out.getvalue()


def fill(count=25):
    run("rotate", "--model", MODEL, "--now", "2025-01-10", "--yes")
    model = shards.model_for(ProbeEvent, when=local(2025, 1, 10), create=False)
    for i in range(count):
        when = local(2025, 1, 10, 12) + timedelta(seconds=i, microseconds=123457 * (i % 7))
        model.objects.create(id=ids.new_id(when), event_uuid=ids.new_uuid(when), created_at=when,
                             kind="text" if i % 2 else "image", body=None if i % 5 == 0 else f"行 {i} \"q\"")
    return model


def test_a_shard_goes_hot_cold_exported_dropped_and_restored_identical(probe_sharding, settings):
    settings.SHARDING_EXPORT_HOST = "storage-host-1"
    model = fill()
    before = exports.rows_digest(model)
    assert ShardTable.objects.get(table_name=TABLE).state == ShardState.HOT
    # Past the hot window: cold, in the compressed row format on MariaDB, still queryable.
    run("rotate", "--model", MODEL, "--now", "2025-03-15", "--yes")
    assert ShardTable.objects.get(table_name=TABLE).state == ShardState.COLD
    if connection.vendor == "mysql":
        assert ddl.row_format(TABLE) == "Compressed"
    page = shards.paginate(ProbeEvent, since=local(2025, 1, 1), until=local(2025, 2, 1), limit=10)
    assert len(page.items) == 10 and page.next_after
    assert exports.rows_digest(model) == before
    # Past the cold window: exported (with its host and checksum) then dropped.
    run("rotate", "--model", MODEL, "--now", "2026-02-15", "--yes")
    row = ShardTable.objects.get(table_name=TABLE)
    assert row.state == ShardState.DROPPED and not ddl.table_exists(TABLE)
    assert row.export_host == "storage-host-1" and row.export_rows == 25
    assert exports.file_sha256(row.export_path) == row.export_sha256
    assert f"storage-host-1:{row.export_path}" in run("list", "--model", MODEL, "--all")
    # Restored: the same rows (checksum over every column), archived, kept from the next drops.
    output = run("restore", "--table", TABLE, "--keep-days", "10")
    assert f"Restored {TABLE}: 25 rows" in output
    assert exports.rows_digest(model) == before
    row.refresh_from_db()
    assert row.state == ShardState.ARCHIVED and row.restored_at and row.dropped_at is None
    if connection.vendor == "mysql":
        assert ddl.row_format(TABLE) == "Compressed"
    assert shards.get(ProbeEvent, page.items[0].id).body == page.items[0].body
    plan = run("plan", "--model", MODEL, "--now", "2026-02-16")
    assert f"keep    {TABLE}" in plan and "restored, kept until" in plan
    assert "drop    " + TABLE not in plan
    # Once the keep window has passed, the rotation drops it again (its export is kept).
    # The date is taken in the shards' zone, as --now reads it: a UTC date runs a day behind
    # from 16:00 UTC, when its local midnight falls before keep_until.
    later = (row.keep_until.astimezone(shard_timezone()) + timedelta(days=1)).date().isoformat()
    run("rotate", "--model", MODEL, "--now", later, "--yes")
    assert not ddl.table_exists(TABLE)


def test_restore_refusals_are_sentences(probe_sharding, settings):
    fill(3)
    with pytest.raises(CommandError, match=f"{TABLE} is not dropped \\(it is hot\\); there is nothing to restore"):
        run("restore", "--table", TABLE)
    run("rotate", "--model", MODEL, "--now", "2026-02-15", "--yes")
    row = ShardTable.objects.get(table_name=TABLE)
    with gzip.open(row.export_path, "at") as handle:  # the file changed since its export
        handle.write('{"id": 1}\n')
    with pytest.raises(CommandError, match="does not match its recorded SHA-256"):
        run("restore", "--table", TABLE)
    assert not ddl.table_exists(TABLE)
    ShardTable.objects.filter(pk=row.pk).update(export_path="/nowhere/x.jsonl.gz", export_host="other-host")
    with pytest.raises(CommandError, match="is not at /nowhere/x.jsonl.gz here; it was written on host other-host"):
        run("restore", "--table", TABLE)
    with pytest.raises(CommandError, match="There is no shard table named probe_events_209901"):
        run("restore", "--table", "probe_events_209901")


def test_csv_exports_restore_too(probe_sharding, settings):
    settings.SHARDING_EXPORT_FORMAT = "csv"
    model = fill(6)
    before = exports.rows_digest(model)
    run("rotate", "--model", MODEL, "--now", "2026-02-15", "--yes")
    run("restore", "--table", TABLE)
    assert exports.rows_digest(model) == before


def test_demote_without_a_cold_format_keeps_the_table_as_it_is(probe_sharding, settings):
    settings.SHARDING_COLD_ROW_FORMAT = ""
    fill(2)
    run("rotate", "--model", MODEL, "--now", "2025-03-15", "--yes")
    assert ShardTable.objects.get(table_name=TABLE).state == ShardState.COLD
    if connection.vendor == "mysql":
        assert ddl.row_format(TABLE) != "Compressed"
    assert services.ddl.to_cold_format(TABLE) is None


def test_a_rotation_step_aborted_as_a_deadlock_runs_again(probe_sharding, monkeypatch):
    """Galera's DDL brute-force aborts other connections' transactions on the same tables
    (1213); rotation steps are idempotent, so an aborted one runs again."""
    from django.db import OperationalError

    from wework.shards import services

    real, calls = services.apply_step, []

    def aborted_once(step, now=None):
        calls.append(step.action)
        if len(calls) == 1:
            raise OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
        return real(step, now=now)

    monkeypatch.setattr(services, "apply_step", aborted_once)
    monkeypatch.setattr(services.time, "sleep", lambda s: None)
    steps = services.rotate(labels=[MODEL])
    applied = [s for s in steps if s.action != "keep"]
    assert applied and len(calls) == len(applied) + 1
