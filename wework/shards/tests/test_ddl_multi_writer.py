"""Shard creation when another writer (on another Galera node, where GET_LOCK does not reach)
created the same table first: no error, the registry row is there; and the check that the
caller's own connection sees a table made on a dedicated one (tests/topology/test_galera.py
drills the Galera case, where it waits for the caller's node)."""
import pytest
from django.db import connection
from django.utils import timezone

from monitoring.models import SystemLog
from wework.db import galera
from wework.shards import ShardMissing, ddl, router
from wework.shards.conf import config_for, period_of
from wework.shards.models import ShardTable

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]


def test_create_shard_after_another_writer_created_the_table(monkeypatch):
    if connection.vendor != "mysql":
        pytest.skip("SQLite has one writer at a time: no other writer can come first")
    conf = config_for(SystemLog)
    period = period_of(conf.by, timezone.now())
    model, table = router._time_model(SystemLog, conf, period)
    router.ensure_time_shard(SystemLog, period)  # the other writer
    ShardTable.objects.filter(table_name=table).delete()
    ddl.forget(table)
    # This writer checked before the other's CREATE reached it (later checks see the table).
    real_table_exists = ddl.table_exists
    checks = []

    def stale_first(name, connection=None):
        checks.append(name)
        return False if len(checks) == 1 else real_table_exists(name, connection)

    monkeypatch.setattr(ddl, "table_exists", stale_first)
    created = ddl.create_shard(model, {
        "model_label": conf.label, "suffix": period.suffix, "table_name": table, "strategy": conf.by,
        "period_start": period.start, "period_end": period.end, "instance_id": None, "state": "hot",
        "created_by_tool": True, "schema_version": 1})
    assert created is False
    assert ShardTable.objects.filter(table_name=table).count() == 1


def test_a_table_the_callers_connection_does_not_see_is_a_clear_error_off_galera(monkeypatch):
    # One server (or SQLite): a table the dedicated connection made is visible to every
    # connection at once, so a miss is an error to report, not a lag to wait out. (CI also runs
    # this suite on Galera, where the miss is waited for: tests/topology drills that.)
    monkeypatch.setattr(galera, "is_galera", lambda connection: False)
    with pytest.raises(ShardMissing, match="was created but this connection does not see it"):
        ddl.visible_to_caller("system_logs_19700101", connection.alias)


def test_causal_reads_leave_a_server_without_galera_untouched():
    with galera.causal_reads(connection):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone()[0] == 1
    if connection.vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@SESSION.wsrep_sync_wait")
            assert cursor.fetchone()[0] == 0
