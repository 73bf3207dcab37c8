"""Shard lifecycle: shards identical to their base tables, sync-schema repairs differences,
drops seen by every process, refusals as sentences."""
import multiprocessing
import time
from datetime import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction

from accounts.models import User
from contacts.models import Contact, Group
from instances.models import WeworkInstance
from wework import ids, shards
from wework.db.layout import connection_for
from wework.shards import ddl, fidelity, router
from wework.shards.conf import shard_timezone
from wework.shards.models import ShardState, ShardTable
from wework.shards.tests.models import ProbeEvent

pytestmark = pytest.mark.django_db(transaction=True)

# The instance shards' tables are on the contacts module's database (per-module layout).
CONTACTS_DB = connection_for("contacts")
mysql_only = pytest.mark.skipif("connection.vendor != 'mysql'")


def local(*args):
    return datetime(*args, tzinfo=shard_timezone())


def run(*args):
    out = StringIO()
    call_command("shards", *args, stdout=out, stderr=out)
    return out.getvalue()


@pytest.fixture
def instance(settings, tmp_path):
    settings.SHARDING_EXPORT_DIR = str(tmp_path / "exports")
    user = User.objects.create(username="owner")
    with transaction.atomic():
        inst = WeworkInstance.objects.create(instance_uuid=ids.new_uuid(), name="one", created_by=user)
    return inst


@pytest.fixture
def account(instance):
    from contacts.models import WeworkAccount

    return WeworkAccount.objects.create(instance=instance, wxid="acc-1")


def _definitions(table):
    with CONTACTS_DB.cursor() as cursor:
        return fidelity.column_definitions(cursor, CONTACTS_DB, table)


@mysql_only
def test_instance_shards_are_identical_to_their_base_tables(instance):
    for base in ("contacts", "groups", "group_members"):
        table = f"{base}_{instance.pk}"
        assert _definitions(table) == _definitions(base), table
        assert "ON UPDATE current_timestamp()" in _definitions(table)["updated_at"]
        with CONTACTS_DB.cursor() as cursor:
            assert fidelity.table_comment(cursor, table) == fidelity.table_comment(cursor, base)
            base_keys = set(fidelity.keys(cursor, base))
            assert base_keys <= set(fidelity.keys(cursor, table)), table
    model = shards.model_for(Group, instance_id=instance.pk, create=False)
    assert fidelity.differences(model, CONTACTS_DB) == []


@mysql_only
def test_a_status_change_stamps_updated_at_in_the_shard(instance, account):
    shards.bulk_upsert(Group, instance.pk, [{"account_id": account.pk, "group_wxid": "g1"}],
                       ["account", "group_wxid"], ["group_name"])
    group = shards.for_instance(Group, instance.pk).get()
    with CONTACTS_DB.cursor() as cursor:
        cursor.execute(f"UPDATE groups_{instance.pk} SET updated_at = '2021-01-01 00:00:00'")
    assert shards.update(Group, group.pk, instance_id=instance.pk, group_name="renamed") == 1
    group = shards.get(Group, group.pk, instance_id=instance.pk)
    assert group.updated_at.year >= 2026  # ON UPDATE CURRENT_TIMESTAMP, as in the base table


@mysql_only
def test_sync_schema_detects_and_repairs_differences_with_the_base(instance):
    table = f"contacts_{instance.pk}"
    expected = _definitions(table)
    with CONTACTS_DB.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} MODIFY updated_at datetime(6) NOT NULL COMMENT 'x'")
        cursor.execute(f"ALTER TABLE {table} COMMENT = 'changed'")
        keys = fidelity.keys(cursor, table)
        victim = next(name for (unique, cols), name in sorted(keys.items(), key=lambda kv: kv[1])
                      if not unique and not any(c.endswith("_id") for c in cols))
        cursor.execute(f"ALTER TABLE {table} DROP INDEX {victim}")
    dry = run("sync-schema", "--model", "contacts.Contact", "--dry-run")
    assert f"would {table}: column updated_at is" in dry
    assert f"would {table}: table comment is 'changed'" in dry
    assert f"would {table}: missing the base's key" in dry
    assert _definitions(table)["updated_at"].startswith("datetime(6)")  # dry run: unchanged
    output = run("sync-schema", "--model", "contacts.Contact")
    assert f"{table}: column updated_at" in output
    assert _definitions(table) == expected
    model = shards.model_for(Contact, instance_id=instance.pk, create=False)
    assert fidelity.differences(model, CONTACTS_DB) == []
    assert "Every shard matches" in run("sync-schema", "--model", "contacts.Contact")


def test_dropping_a_live_instances_shards_is_refused_with_a_sentence(instance):
    for args in (["--instance", str(instance.pk)], ["--table", f"contacts_{instance.pk}"],
                 ["--model", "contacts.Contact", "--period", str(instance.pk)]):
        with pytest.raises(CommandError, match=f"Instance {instance.pk} still exists; delete the instance"):
            run("drop", *args, "--yes")
    with pytest.raises(shards.ShardError, match="still exists"):
        shards.drop_instance_shards(instance.pk, confirm=True)
    assert ddl.table_exists(f"contacts_{instance.pk}")


def test_dropping_a_referenced_groups_shard_is_a_sentence(instance):
    instance.delete()  # soft delete: the shards may go now
    with pytest.raises(CommandError, match=(
            rf"groups_{instance.pk} is referenced by group_members_{instance.pk}; drop the instance's "
            rf"shards together with `shards drop --instance {instance.pk}`")):
        run("drop", "--table", f"groups_{instance.pk}", "--yes")
    assert ddl.table_exists(f"groups_{instance.pk}")
    assert ShardTable.objects.get(table_name=f"groups_{instance.pk}").state == ShardState.HOT
    output = run("drop", "--instance", str(instance.pk), "--yes")
    assert f"dropped groups_{instance.pk}" in output
    assert not ddl.table_exists(f"groups_{instance.pk}")


def _two_months(probe_sharding):
    rows = {}
    for month in (1, 2):
        when = local(2025, month, 10, 12)
        model = router.ensure_time_shard(ProbeEvent, shards_period(when), check_range=False)
        row = model.objects.create(id=ids.new_id(when), event_uuid=ids.new_uuid(when), created_at=when,
                                   body=f"month {month}")
        rows[month] = row.id
    return rows


def shards_period(when):
    from wework.shards.conf import period_of

    return period_of("month", when)


def test_a_table_dropped_behind_the_caches_answers_without_an_error(probe_sharding):
    """The process did not hear of the drop (no shared cache): the first query that meets the
    missing table forgets it, and the request answers as if the shard were empty."""
    rows = _two_months(probe_sharding)
    since, until = local(2025, 1, 1), local(2025, 3, 1)
    assert len(shards.paginate(ProbeEvent, since=since, until=until).items) == 2  # caches warm
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE probe_events_202501")  # behind the shard layer's back
    page = shards.paginate(ProbeEvent, since=since, until=until)
    assert [r.id for r in page.items] == [rows[2]]
    with pytest.raises(ProbeEvent.DoesNotExist):
        shards.get(ProbeEvent, rows[1])
    assert shards.update(ProbeEvent, rows[1], body="x") == 0
    assert not ddl.is_known("probe_events_202501")


def _serve_in_child(ready, stop, result_queue, since_iso, until_iso, row_id):
    """Another process: serves pages and gets of the shard until told to stop."""
    from django.db import connections

    connections.close_all()
    errors, served, last = [], 0, None
    try:
        since, until = datetime.fromisoformat(since_iso), datetime.fromisoformat(until_iso)
        while not stop.is_set():
            try:
                page = shards.paginate(ProbeEvent, since=since, until=until)
                last = len(page.items)
                try:
                    shards.get(ProbeEvent, row_id)
                except ProbeEvent.DoesNotExist:
                    pass
                served += 1
            except Exception as exc:  # noqa: BLE001 - every error is what the test looks for
                errors.append(repr(exc))
            ready.set()
            time.sleep(0.01)
    finally:
        result_queue.put((errors, served, last))
        connections.close_all()


@mysql_only
def test_a_drop_is_seen_by_another_process_serving_the_shard(probe_sharding, settings):
    settings.SHARDING_VERSION_CHECK_S = 0.2
    settings.SHARDING_DROP_GRACE_S = 0.6
    rows = _two_months(probe_sharding)
    since, until = local(2025, 1, 1), local(2025, 3, 1)
    assert len(shards.paginate(ProbeEvent, since=since, until=until).items) == 2
    connections.close_all()  # every alias (per-module layout), not only default
    ctx = multiprocessing.get_context("fork")
    ready, stop, queue = ctx.Event(), ctx.Event(), ctx.Queue()
    child = ctx.Process(target=_serve_in_child,
                        args=(ready, stop, queue, since.isoformat(), until.isoformat(), rows[1]))
    child.start()
    try:
        assert ready.wait(30)
        output = run("drop", "--table", "probe_events_202501", "--yes")
        assert "Dropped probe_events_202501" in output
        time.sleep(0.5)  # the child keeps serving after the drop
    finally:
        stop.set()
        errors, served, last = queue.get(timeout=30)
        child.join(30)
    assert errors == []
    assert served > 10
    assert last == 1  # the child sees the drop: only February is left
    assert not ddl.table_exists("probe_events_202501")

