"""Shard creation when another writer (on another Galera node, where GET_LOCK does not reach)
created the same table first: no error, the registry row is there."""
import pytest
from django.db import connection
from django.utils import timezone

from monitoring.models import SystemLog
from wework.shards import ddl, router
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
    # This writer checked before the other's CREATE reached it.
    monkeypatch.setattr(ddl, "table_exists", lambda name, connection=None: False)
    created = ddl.create_shard(model, {
        "model_label": conf.label, "suffix": period.suffix, "table_name": table, "strategy": conf.by,
        "period_start": period.start, "period_end": period.end, "instance_id": None, "state": "hot",
        "created_by_tool": True, "schema_version": 1})
    assert created is False
    assert ShardTable.objects.filter(table_name=table).count() == 1
