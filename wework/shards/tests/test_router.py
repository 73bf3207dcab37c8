import threading
from datetime import datetime, timedelta

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from accounts.models import User
from messaging.models import Message
from wework import ids, shards
from wework.shards import ddl, fidelity, router
from wework.shards.conf import period_of, shard_timezone
from wework.shards.models import ShardState, ShardTable
from wework.shards.tests.models import ProbeEvent
from wework.testing.concurrency import run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


def local(*args):
    return datetime(*args, tzinfo=shard_timezone())


def test_write_creates_the_shard_and_registers_it(probe_sharding):
    now = timezone.now()
    row = shards.create(ProbeEvent, kind="text", body="hi")
    suffix = period_of("month", now).suffix
    assert row._meta.db_table == f"probe_events_{suffix}"
    assert ddl.table_exists(f"probe_events_{suffix}")
    reg = ShardTable.objects.get(table_name=f"probe_events_{suffix}")
    assert reg.state == ShardState.HOT and reg.created_by_tool and reg.schema_hash
    assert len(row.event_uuid) == 36
    assert ids.id_time(row.id) <= timezone.now()
    fetched = shards.get(ProbeEvent, row.id)
    assert fetched.body == "hi" and fetched.shout() == "HI"  # the base's methods come along
    assert not ddl.table_exists("probe_events")  # the base table is never used when sharded


def test_rows_land_in_the_shard_of_their_time_and_ids_locate_it(probe_sharding):
    now = timezone.now()
    last_month = period_of("month", now).previous().start + timedelta(days=3)
    old = shards.create(ProbeEvent, body="old", created_at=last_month)
    new = shards.create(ProbeEvent, body="new")
    assert old._meta.db_table != new._meta.db_table
    assert shards.model_for_id(ProbeEvent, old.id)._meta.db_table == old._meta.db_table
    assert shards.get(ProbeEvent, old.id).body == "old"
    assert old.id < new.id
    assert shards.update(ProbeEvent, old.id, body="older") == 1
    assert shards.get(ProbeEvent, old.id).body == "older"
    with pytest.raises(ProbeEvent.DoesNotExist):
        shards.get(ProbeEvent, ids.new_id(now - timedelta(days=200)))  # shard does not exist
    with pytest.raises(ProbeEvent.DoesNotExist):
        shards.get(ProbeEvent, old.id + 1)


def test_get_by_id_queries_one_table(probe_sharding, django_assert_max_num_queries):
    row = shards.create(ProbeEvent, body="x")
    with django_assert_max_num_queries(1):
        shards.get(ProbeEvent, row.id)


def test_keyset_pages_walk_shards_newest_first(probe_sharding):
    now = timezone.now()
    current = period_of("month", now)
    times = []
    for months_back in (0, 1, 2):
        period = current
        for _ in range(months_back):
            period = period.previous()
        for i in range(7):
            times.append(period.start + timedelta(hours=i + 1))
    times = [t for t in times if t <= now]
    ids_made = [shards.create(ProbeEvent, body=str(i), kind="a" if i % 2 else "b", created_at=t).id
                for i, t in enumerate(times)]
    walked, after = [], None
    while True:
        page = shards.paginate(ProbeEvent, after=after, limit=4)
        walked.extend(r.id for r in page.items)
        if page.next_after is None:
            break
        after = page.next_after
    assert walked == sorted(ids_made, reverse=True)
    only_a = [r.id for r in shards.iterate(ProbeEvent, filters={"kind": "a"}, chunk=3)]
    assert only_a == sorted([i for i, t in zip(ids_made, range(len(ids_made))) if t % 2], reverse=True)
    since = current.previous().start
    page = shards.paginate(ProbeEvent, since=since, until=current.start, limit=100, values=["id", "body"])
    expected = [i for i, t in zip(ids_made, times) if since <= t < current.start]
    assert [r["id"] for r in page.items] == sorted(expected, reverse=True)
    assert page.next_after is None


def test_out_of_range_write_fails_loudly(probe_sharding):
    with pytest.raises(shards.ShardOutOfRange):
        shards.create(ProbeEvent, body="future", created_at=timezone.now() + timedelta(days=400))
    with pytest.raises(shards.ShardOutOfRange):
        shards.create(ProbeEvent, body="ancient", created_at=timezone.now() - timedelta(days=800))
    with pytest.raises(shards.ShardMissing):
        shards.model_for(ProbeEvent, when=timezone.now() - timedelta(days=100), create=False)


def test_unknown_model_is_refused():
    with pytest.raises(shards.UnknownShardModel):
        shards.model_for(User)


def test_disabled_sharding_uses_the_plain_table(settings):
    settings.SHARDING = {**getattr(settings, "SHARDING", {}), "messaging.Message": {"enabled": False}}

    assert shards.model_for(Message) is Message
    assert not shards.is_sharded(Message)


def test_disabled_flag_from_environment(monkeypatch):
    from wework.shards import conf

    monkeypatch.setenv("SHARDING_MESSAGING_MESSAGE", "0")
    conf.reset()  # flags are read when the configuration is built (start-up)
    assert shards.model_for(Message) is Message
    monkeypatch.setenv("SHARDING_MESSAGING_MESSAGE", "1")
    conf.reset()
    assert shards.is_sharded(Message)


def test_a_shard_created_inside_a_transaction_is_complete(probe_sharding):
    """The caller's open transaction has just written the table the shard's foreign key points
    at: the shard is still created with that foreign key and aligned with its base (one CREATE
    TABLE on a connection of its own, ddl.create_shard), and the caller's transaction commits."""
    user = User.objects.create(username="fk-owner")
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(last_login=timezone.now())
        event = shards.create(ProbeEvent, body="x", user_id=user.pk, created_at=timezone.now())
    model = type(event)
    assert model.objects.get(pk=event.pk).user_id == user.pk
    assert ddl.missing_foreign_keys(model, connection) == []
    assert fidelity.align(model, connection, apply=False) == []
    with connection.cursor() as cursor:
        leftovers = [t for t in connection.introspection.table_names(cursor) if "__new_" in t]
    assert leftovers == []  # the scratch table of the build is gone


def test_concurrent_writers_create_a_missing_shard_once(probe_sharding):
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(("file:memorydb", ":memory:")):
        pytest.skip("threads need a file database on SQLite (set TEST_SQLITE_NAME)")
    when = timezone.now() - timedelta(days=40)
    made = []

    def writer(n):
        for i in range(5):
            made.append(shards.create(ProbeEvent, body=f"{n}-{i}", created_at=when).id)

    assert run_at_once(writer, 6) == []
    suffix = period_of("month", when).suffix
    assert ShardTable.objects.filter(table_name=f"probe_events_{suffix}").count() == 1
    model = shards.model_for(ProbeEvent, when=when, create=False)
    assert model.objects.count() == 30 == len(set(made))


def test_a_write_aborted_as_a_deadlock_is_run_again_outside_a_transaction(probe_sharding, monkeypatch):
    """Galera brute-force aborts writes to a table whose DDL another node is running (a new
    shard's alignment) and fails one of two nodes' registry upserts: 1213, which an autocommit
    shard write runs again; inside the caller's transaction it is the caller's to retry."""
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(("file:memorydb", ":memory:")):
        pytest.skip("threads need a file database on SQLite (set TEST_SQLITE_NAME)")
    real, calls = router.model_for, []

    def aborted_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
        return real(*args, **kwargs)

    monkeypatch.setattr(router, "model_for", aborted_once)
    monkeypatch.setattr(router.time, "sleep", lambda s: None)
    when = timezone.now() - timedelta(days=45)
    result = {}

    def autocommit_writer():
        try:
            result["id"] = shards.create(ProbeEvent, body="retried", created_at=when).id
            result["ids"] = shards.bulk_create(ProbeEvent, [{"body": "bulk", "created_at": when}])
        except Exception as exc:  # noqa: BLE001
            result["error"] = exc
        finally:
            connections.close_all()  # every alias (per-module layout), not only default

    thread = threading.Thread(target=autocommit_writer)
    thread.start()
    thread.join()
    assert "error" not in result, result
    assert len(calls) == 3  # the aborted try, the retry, the bulk write
    calls.clear()
    with pytest.raises(OperationalError), transaction.atomic():  # the caller's transaction
        shards.create(ProbeEvent, body="in a transaction", created_at=when)


def test_shard_creation_inside_a_transaction_keeps_the_callers_work(probe_sharding):
    with transaction.atomic():
        user = User.objects.create(username="writer")
        row = shards.create(ProbeEvent, body="in tx", user=user,
                            created_at=timezone.now() - timedelta(days=35))
    assert User.objects.filter(username="writer").exists()
    assert shards.get(ProbeEvent, row.id).user_id == user.id
    assert shards.get(ProbeEvent, row.id).user == user  # the FK works from the shard


def test_rollback_after_shard_creation(probe_sharding):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            row = shards.create(ProbeEvent, body="rolled back")
            raise RuntimeError("boom")
    assert shards.get_or_none(ProbeEvent, row.id) is None


def test_bulk_create_groups_rows_per_shard(probe_sharding):
    now = timezone.now()
    prev = period_of("month", now).previous().start + timedelta(hours=5)
    new_ids = shards.bulk_create(ProbeEvent, [{"body": "a", "created_at": prev}, {"body": "b"},
                                              ProbeEvent(body="c", created_at=prev)])
    assert len(new_ids) == 3
    assert [shards.get(ProbeEvent, i).body for i in new_ids] == ["a", "b", "c"]
    assert shards.model_for_id(ProbeEvent, new_ids[0]) is shards.model_for_id(ProbeEvent, new_ids[2])


def test_index_names_are_unique_per_table(probe_sharding):
    now = timezone.now()
    shards.create(ProbeEvent, body="a")
    shards.create(ProbeEvent, body="b", created_at=period_of("month", now).previous().start + timedelta(hours=1))
    tables = ShardTable.objects.filter(model_label="shards.ProbeEvent").values_list("table_name", flat=True)
    names = [set(ddl.read_schema(connection, lambda cursor, table=table: connection.introspection.get_constraints(
        cursor, table))) for table in tables]
    assert all(any("idx_kind" in n for n in s) for s in names)
    if connection.vendor == "sqlite":
        assert not (names[0] & names[1]) - {"__primary__", "fk_0"}  # pseudo names of introspection


def test_group_ids_by_shard_with_few_lookups(probe_sharding, monkeypatch):
    from wework.shards import router

    now = timezone.now()
    this = period_of("month", now)
    shards.create(ProbeEvent, body="this month")
    shards.create(ProbeEvent, body="last month", created_at=this.previous().start + timedelta(hours=1))
    last_ids = [ids.new_id(this.previous().start + timedelta(hours=h)) for h in range(1, 200)]
    this_ids = [ids.new_id(this.start + timedelta(hours=h)) for h in range(1, 200)]
    missing = [ids.new_id(this.previous().previous().start + timedelta(hours=2))]  # no such shard
    lookups = []
    real = router.model_for_id
    monkeypatch.setattr(router, "model_for_id", lambda *a, **k: lookups.append(a) or real(*a, **k))
    groups = shards.group_ids_by_shard(ProbeEvent, this_ids + missing + last_ids)
    by_table = {m._meta.db_table: sorted(g) for m, g in groups.items()}
    assert by_table == {
        f"probe_events_{this.suffix}": sorted(this_ids),
        f"probe_events_{this.previous().suffix}": sorted(last_ids),
    }
    assert len(lookups) < 40  # a bisection, not one lookup per id (399)
    assert shards.group_ids_by_shard(ProbeEvent, []) == {}


def test_a_number_that_is_no_id_finds_nothing(probe_sharding):
    """Found by the API fuzz test (issue 12): `/messages/5567597980162303665553539072/` was a 500
    (the id's time overflowed); any digits in a URL are a 404."""
    for number in (10 ** 30, 2 ** 63, -1):
        assert shards.get_or_none(ProbeEvent, number) is None
