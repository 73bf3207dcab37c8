"""Per-module databases (docs/schema.md, "Storage layout"; wework.db.layout).

The layout tests run everywhere. The `split` tests need the five-schema layout that .ci/run's
section "per-module databases" sets up (DATABASE_URL_<MODULE> pointing at five schemas of one
MariaDB server); on one database they are skipped.
"""
import pytest
from django.conf import settings
from django.db import connections, router

from accounts.models import User
from contacts.models import WeworkAccount
from instances.models import WeworkInstance
from messaging.models import Message, MessageTask
from monitoring.models import AuditLog
from scrm.models import Tag
from wework.db import layout
from wework.db.references import MissingReference
from wework.shards.models import ShardTable

SPLIT = getattr(settings, "DATABASE_SPLIT", False)
split = pytest.mark.skipif(not SPLIT, reason="needs the per-module layout (DATABASE_URL_<MODULE>)")


# --- the layout itself (any database) ---------------------------------------------------------

def test_modules_with_the_same_url_share_one_alias():
    aliases, modules = layout.build("mysql://h/db", {})
    assert aliases == {"default": "mysql://h/db"}
    assert set(modules.values()) == {"default"}

    aliases, modules = layout.build("mysql://h/a", {"accounts": "mysql://h/a", "messaging": "mysql://h/m",
                                                    "monitoring": "mysql://h/m", "contacts": ""})
    assert aliases == {"default": "mysql://h/a", "monitoring": "mysql://h/m"}
    assert modules == {"accounts": "default", "instances": "default", "contacts": "default",
                       "messaging": "monitoring", "monitoring": "monitoring"}


def test_platform_apps_follow_accounts_and_scrm_follows_contacts():
    assert {layout.module_of(a) for a in ("auth", "contenttypes", "sessions", "admin", "guardian",
                                          "shards", "accounts")} == {"accounts"}
    assert layout.module_of("scrm") == "contacts"


@pytest.mark.skipif(SPLIT, reason="the one-database layout")
def test_one_database_by_default_and_filters_unchanged():
    assert set(settings.DATABASE_MODULE_ALIASES.values()) == {"default"}
    assert not layout.is_split()
    assert layout.cross_filter(Message, "account__instance__in", [1]) == {"account__instance__in": [1]}
    for model in (User, WeworkInstance, WeworkAccount, Message, AuditLog, ShardTable, Tag):
        assert router.db_for_write(model) == "default"
        assert router.allow_migrate("default", model._meta.app_label)


@pytest.mark.django_db
def test_query_counts_see_every_database_in_the_order_the_queries_ran(django_assert_num_queries):
    """Tests count queries on every alias (wework.testing.queries): a list that queried another
    module once per row would otherwise pass an O(page) test on five databases."""
    from wework.testing.queries import capture_queries

    with capture_queries() as queries:
        MessageTask.objects.exists()
        AuditLog.objects.exists()
        User.objects.exists()
    assert [q["alias"] for q in queries] == [layout.alias_for_model(m) for m in (MessageTask, AuditLog, User)]
    assert ["message_tasks" in queries[0]["sql"], "audit_logs" in queries[1]["sql"]] == [True, True]
    with django_assert_num_queries(2):
        MessageTask.objects.exists()
        AuditLog.objects.exists()


# --- five schemas -------------------------------------------------------------------------------

EXPECTED = {
    "accounts": {"users", "roles", "user_sessions", "auth_permission", "django_content_type",
                 "django_session", "shard_tables", "shard_locks"},
    "instances": {"wework_instances", "instance_configs", "instance_monitors", "instance_events"},
    "contacts": {"wework_accounts", "contacts", "groups", "group_members", "scrm_tags", "scrm_opt_outs"},
    "messaging": {"messages", "message_tasks", "message_receivers", "message_templates"},
    "monitoring": {"audit_logs", "system_logs", "alert_records", "alert_rules"},
}


def _tables(alias):
    connection = connections[alias]
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def _foreign_keys(alias, table):
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, referenced_table_name FROM information_schema.key_column_usage "
            "WHERE table_schema = DATABASE() AND table_name = %s AND referenced_table_name IS NOT NULL",
            [table])
        return dict(cursor.fetchall())


@split
@pytest.mark.django_db
def test_each_module_has_its_own_schema_with_its_tables_only():
    aliases = settings.DATABASE_MODULE_ALIASES
    assert len(set(aliases.values())) == 5
    names = {connections[aliases[m]].settings_dict["NAME"] for m in layout.MODULES}
    assert len(names) == 5
    for module, tables in EXPECTED.items():
        here = _tables(aliases[module])
        assert tables <= here, (module, tables - here)
        for other, other_tables in EXPECTED.items():
            if other != module:
                assert not (other_tables & here), (module, other, other_tables & here)


@split
@pytest.mark.django_db
def test_foreign_keys_within_a_module_stay_and_across_modules_are_left_out():
    aliases = settings.DATABASE_MODULE_ALIASES
    # contacts -> wework_accounts: the same module, the constraint is there.
    assert _foreign_keys(aliases["contacts"], "contacts").get("account_id") == "wework_accounts"
    # wework_accounts -> wework_instances (instance_db), messages -> wework_accounts (contact_db),
    # audit_logs -> users (user_db): constraint-free.
    assert "instance_id" not in _foreign_keys(aliases["contacts"], "wework_accounts")
    assert "account_id" not in _foreign_keys(aliases["messaging"], "messages")
    assert "user_id" not in _foreign_keys(aliases["monitoring"], "audit_logs")


@split
@pytest.mark.django_db
def test_router_places_each_app_on_its_alias_and_migrates_it_there_only():
    aliases = settings.DATABASE_MODULE_ALIASES
    for model, module in ((User, "accounts"), (ShardTable, "accounts"), (WeworkInstance, "instances"),
                          (WeworkAccount, "contacts"), (Tag, "contacts"), (Message, "messaging"),
                          (AuditLog, "monitoring")):
        assert router.db_for_write(model) == aliases[module]
        assert router.db_for_read(model) == aliases[module]
        for alias in set(aliases.values()):
            assert router.allow_migrate(alias, model._meta.app_label) == (alias == aliases[module])


@split
@pytest.mark.django_db
def test_a_reference_to_a_missing_row_in_another_database_is_refused():
    from instances.tests.factories import WeworkInstanceFactory

    instance = WeworkInstanceFactory()
    with pytest.raises(MissingReference) as refused:
        WeworkAccount.objects.create(instance_id=instance.pk + 100000, wxid="wx_orphan", nickname="x")
    assert "does not exist" in str(refused.value)
    assert not WeworkAccount.all_objects.filter(wxid="wx_orphan").exists()
    # An existing one is accepted, and a join-free scoped filter finds it from messaging.
    account = WeworkAccount.objects.create(instance_id=instance.pk, wxid="wx_ok", nickname="ok")
    assert layout.cross_filter(MessageTask, "account__instance__in", [instance.pk]) == {
        "account__in": [account.pk]}


@split
def test_api_lists_across_modules_and_a_missing_reference_is_400(api_client_for, django_user_model, db):
    from instances.tests.factories import WeworkInstanceFactory

    admin = django_user_model.objects.create_superuser("rootapi", "r@example.com", "pw-root-123")
    client = api_client_for(admin)
    instance = WeworkInstanceFactory()
    # Lists whose rows join another module (accounts and their instance) on separate databases.
    account = WeworkAccount.objects.create(instance=instance, wxid="wx_api", nickname="api")
    response = client.get("/api/v1/wework-accounts/", {"instance": instance.pk})
    assert response.status_code == 200, response.content
    assert [row["id"] for row in response.json()["results"]] == [account.pk]
    assert client.get("/api/v1/messaging/tasks/").status_code == 200
    assert client.get("/api/v1/messaging/messages/").status_code == 200
    # A write naming an account that does not exist: a sentence under the field, not a 500.
    response = client.post("/api/v1/messaging/tasks/", {"account": account.pk + 100000, "task_name": "x",
                                                         "message_type": "text", "content": "hi"},
                           format="json")
    assert response.status_code == 400, response.content
    assert "account" in response.json()
    assert not MessageTask.objects.exists()


@split
@pytest.mark.django_db(transaction=True)
def test_an_idempotent_transaction_spans_every_module_database():
    """`run_idempotent` without `using` (the dispatcher's claims, for one) opens its transaction
    on every alias: rows of messaging can be locked (select_for_update) and users written in
    the same run, and both commit. With the transaction on "default" alone, the lock raised
    TransactionManagementError on the messaging database and no broadcast was ever sent."""
    from messaging.models import MessageReceiver
    from wework.db.retry import run_idempotent

    def work():
        assert all(connections[alias].in_atomic_block for alias in layout.primary_aliases())
        list(MessageReceiver.objects.select_for_update().values("id")[:1])
        return User.objects.create(username="spanning")

    user = run_idempotent(work)
    assert User.objects.filter(pk=user.pk).exists()


@split
@pytest.mark.django_db(transaction=True)
def test_work_on_one_modules_rows_opens_a_transaction_on_that_database_only(monkeypatch):
    """The system log sink's batches and the claim leases' renewal name their database: one
    BEGIN/COMMIT per batch or renewal, not one on each of the five databases."""
    import logging

    from messaging.clock import Clock
    from messaging.dispatch.heartbeat import ClaimLease
    from monitoring.logging_handler import build_entry
    from monitoring.sinks import DatabaseSink
    from wework import shards

    def open_transactions():
        return {alias for alias in layout.primary_aliases() if connections[alias].in_atomic_block}

    seen = []
    real_bulk_create = shards.bulk_create

    def bulk_create(*args, **kwargs):
        seen.append(open_transactions())
        return real_bulk_create(*args, **kwargs)

    monkeypatch.setattr(shards, "bulk_create", bulk_create)
    entry = build_entry(logging.LogRecord("tests.layout", logging.WARNING, __file__, 1, "one", (), None), "test")
    entry["log_uuid"] = shards.new_uuid()
    DatabaseSink(retry_attempts=1).write([entry])
    assert seen == [{layout.alias_for_app("monitoring")}]

    renewing = []
    monkeypatch.setattr(ClaimLease, "_renew_part", staticmethod(lambda part, now: renewing.append(open_transactions()) or part))
    lease = ClaimLease(task_id=1, clock=Clock())
    lease.held.update({1, 2})
    assert lease.renew() == 2
    assert renewing == [{layout.alias_for_app("messaging")}]
