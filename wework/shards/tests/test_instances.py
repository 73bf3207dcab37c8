"""Per-instance shards (contacts, groups, group_members) follow their instance."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from accounts.models import User
from contacts.models import Contact, Group, GroupMember, WeworkAccount
from instances.models import InstanceMonitor, WeworkInstance
from messaging.models import Message
from wework import ids, shards
from wework.db.layout import connection_for
from wework.shards import ddl, exports
from wework.shards.models import ShardState, ShardTable

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def instance(settings, tmp_path):
    settings.SHARDING_EXPORT_DIR = str(tmp_path / "exports")
    user = User.objects.create(username="owner")
    with transaction.atomic():
        inst = WeworkInstance.objects.create(instance_uuid=ids.new_uuid(), name="one", created_by=user)
        tables = [f"contacts_{inst.pk}", f"groups_{inst.pk}", f"group_members_{inst.pk}"]
        assert not any(ddl.table_exists(t) for t in tables)  # created once the instance commits
    return inst


@pytest.fixture
def account(instance):
    return WeworkAccount.objects.create(instance=instance, wxid="acc-1")


def test_shards_are_created_with_their_instance(instance):
    for table in (f"contacts_{instance.pk}", f"groups_{instance.pk}", f"group_members_{instance.pk}"):
        assert ddl.table_exists(table)
        row = ShardTable.objects.get(table_name=table)
        assert row.instance_id == instance.pk and row.strategy == "instance" and row.created_by_tool
    if connection.vendor == "mysql":
        contacts_db = connection_for("contacts")  # the shards' database (per-module layout)
        constraints = ddl.read_schema(contacts_db, lambda cursor: contacts_db.introspection.get_constraints(
            cursor, f"group_members_{instance.pk}"))
        targets = {c["foreign_key"] for c in constraints.values() if c.get("foreign_key")}
        assert (f"groups_{instance.pk}", "id") in targets  # members point at the same instance's groups


def test_rolled_back_instance_creates_no_shards():
    user = User.objects.create(username="owner2")
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            inst = WeworkInstance.objects.create(instance_uuid=ids.new_uuid(), name="gone", created_by=user)
            raise RuntimeError
    assert not ddl.table_exists(f"contacts_{inst.pk}")


def test_sync_upserts_and_reads_in_the_instance_shards(instance, account):
    sent = shards.bulk_upsert(Contact, instance.pk, [
        {"account_id": account.pk, "wxid": "c1", "nickname": "One"},
        {"account_id": account.pk, "wxid": "c2", "nickname": "Two"},
    ], ["account", "wxid"], ["nickname"])
    assert sent == 2
    shards.bulk_upsert(Contact, instance.pk, [{"account_id": account.pk, "wxid": "c1", "nickname": "Uno"}],
                       ["account", "wxid"], ["nickname"])
    contacts = shards.for_instance(Contact, instance.pk).order_by("wxid")
    assert [(c.wxid, c.nickname) for c in contacts] == [("c1", "Uno"), ("c2", "Two")]
    assert contacts[0].account == account
    first_id = contacts[0].id
    assert shards.get(Contact, first_id, instance_id=instance.pk).nickname == "Uno"
    shards.bulk_upsert(Group, instance.pk, [{"account_id": account.pk, "group_wxid": "g1"}],
                       ["account", "group_wxid"], ["group_name"])
    group = shards.for_instance(Group, instance.pk).get()
    shards.bulk_upsert(GroupMember, instance.pk, [{"group_id": group.pk, "member_wxid": "m1"}],
                       ["group", "member_wxid"], ["member_nickname"])
    member = shards.for_instance(GroupMember, instance.pk).get()
    assert member.group.group_wxid == "g1"  # the FK resolves to the groups shard
    page = shards.paginate(Contact, instance_id=instance.pk, limit=1)
    assert len(page.items) == 1 and page.next_after is not None


def test_drop_needs_confirmation_and_exports_first(instance, account):
    shards.bulk_upsert(Contact, instance.pk, [{"account_id": account.pk, "wxid": "c1"}],
                       ["account", "wxid"], ["nickname"])
    with pytest.raises(shards.ShardError, match="needs confirmation"):
        shards.drop_instance_shards(instance.pk)
    archived = shards.archive_instance_shards(instance.pk)
    assert f"contacts_{instance.pk}" in archived
    row = ShardTable.objects.get(table_name=f"contacts_{instance.pk}")
    assert row.state == ShardState.ARCHIVED and row.export_rows == 1
    out = StringIO()
    instance.delete()  # soft delete: a live instance's shards are never dropped
    call_command("shards", "drop", "--instance", str(instance.pk), "--yes", stdout=out)
    for table in (f"contacts_{instance.pk}", f"groups_{instance.pk}", f"group_members_{instance.pk}"):
        assert not ddl.table_exists(table)
        assert ShardTable.objects.get(table_name=table).state == ShardState.DROPPED
    assert len(exports.read_export(row.export_path)) == 1
    with pytest.raises(CommandError, match="has no shard tables"):
        call_command("shards", "drop", "--instance", str(instance.pk), "--yes", stdout=out)


def test_deleting_an_instance_archives_its_shards(instance, account):
    shards.bulk_upsert(Contact, instance.pk, [{"account_id": account.pk, "wxid": "c9"}],
                       ["account", "wxid"], ["nickname"])
    pk = instance.pk

    with connection_for("instances").cursor() as cursor:  # the instance's own database
        if connection.vendor == "mysql":
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        WeworkInstance.all_objects.filter(pk=pk).hard_delete()
        if connection.vendor == "mysql":
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
    row = ShardTable.objects.get(table_name=f"contacts_{pk}")
    assert row.state == ShardState.ARCHIVED and row.export_rows == 1
    assert ddl.table_exists(f"contacts_{pk}")  # kept until someone confirms a drop


def test_real_time_models_route(instance, account):
    msg = shards.create(Message, account_id=account.pk, chat_type=1, chat_wxid="c1", message_type="text",
                        message_content="hello")
    assert msg._meta.db_table.startswith("messages_") and len(msg.message_uuid) == 36
    assert shards.get(Message, msg.id).message_content == "hello"
    assert shards.get(Message, msg.id).account == account
    page = shards.paginate(Message, filters={"account_id": account.pk, "chat_wxid": "c1"})
    assert [m.id for m in page.items] == [msg.id]
    sample = shards.create(InstanceMonitor, instance_id=instance.pk, metric_name="cpu", metric_value=1.5)
    assert "w" in sample._meta.db_table.rsplit("_", 1)[1]


def test_disabled_instance_sharding_filters_the_plain_table(instance, account, settings):
    settings.SHARDING = {**settings.SHARDING, "contacts.Contact": {"enabled": False}}
    shards.bulk_upsert(Contact, instance.pk, [{"account_id": account.pk, "wxid": "plain"}],
                       ["account", "wxid"], ["nickname"])
    assert shards.model_for(Contact, instance_id=instance.pk) is Contact
    assert [c.wxid for c in shards.for_instance(Contact, instance.pk)] == ["plain"]
    assert not shards.for_instance(Contact, instance.pk + 1000).exists()


def test_reading_a_missing_instance_shard_is_an_empty_page():
    page = shards.paginate(Contact, instance_id=987654)
    assert page.items == [] and page.next_after is None
    assert not ddl.table_exists("contacts_987654")
