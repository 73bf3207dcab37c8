import re

import pytest
from django.db import connection

from wework.shards import builder, conf, ddl, router
from wework.shards.tests.models import PROBE_SHARDING

SHARD_TABLE = re.compile(
    r"^(probe_events|probe_daily|messages|system_logs|instance_monitors|contacts|groups|group_members)"
    r"_(\d+|\d{4}w\d{2})$"
)


def drop_shard_tables():
    """Transactional tests flush only the tables of installed models: shard tables are dropped here."""
    with connection.cursor() as cursor:
        tables = [t for t in connection.introspection.table_names(cursor) if SHARD_TABLE.match(t)]
        tables.sort(key=lambda t: not t.startswith("group_members"))
        if connection.vendor == "mysql":
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        for table in tables:
            cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(table)}")
        if connection.vendor == "mysql":
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")


def _reset():
    conf.reset()
    builder.forget()
    ddl.forget()
    router._invalidate_listing()


@pytest.fixture
def probe_sharding(settings, tmp_path):
    """SHARDING with the probe models added; exports into a temporary folder."""
    settings.SHARDING = {**getattr(settings, "SHARDING", {}), **PROBE_SHARDING}
    settings.SHARDING_EXPORT_DIR = str(tmp_path / "exports")
    _reset()
    yield settings
    _reset()


@pytest.fixture(autouse=True)
def _clean_shards(request):
    uses_db = "django_db" in {m.name for m in request.node.iter_markers()}
    if uses_db:
        request.getfixturevalue("django_db_setup")
        request.getfixturevalue("django_db_blocker").unblock()
        drop_shard_tables()
    _reset()
    yield
    if uses_db:
        drop_shard_tables()
    _reset()
