"""Delete rules across databases (wework/db/deletion.py) and the orphan report
(wework/db/orphans.py, `manage.py orphans`, the nightly `database.report_orphans`).

On five schemas (.ci/run's per-module section) a hard delete does to the rows of the other
databases what the foreign keys do on one database: cascade, set null, or refuse; and rows
orphaned behind the platform's back are reported and repaired by their rule. On one database
the command and the task say the keys hold every reference, and `--all-references` checks
anyway (it finds nothing)."""
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db.models import ProtectedError
from django.utils import timezone

from contacts.models import WeworkAccount
from contacts.tests.factories import WeworkAccountFactory
from instances.models import WeworkInstance
from instances.tests.factories import WeworkInstanceFactory
from messaging.models import MessageTask
from messaging.tests.factories import MessageTaskFactory
from monitoring.models import AlertRecord, AuditLog
from monitoring.tests.factories import AlertRecordFactory
from scrm.models import OptOut, Segment, TagRule
from scrm.tests.factories import OptOutFactory, SegmentFactory, TagRuleFactory
from wework.api.exceptions import exception_handler
from wework.db.layout import connection_for
from wework.tasks import report_orphans

SPLIT = getattr(settings, "DATABASE_SPLIT", False)
split = pytest.mark.skipif(not SPLIT, reason="needs the per-module layout (DATABASE_URL_<MODULE>)")

pytestmark = pytest.mark.django_db(transaction=True)


def _run(*args):
    out = StringIO()
    try:
        call_command("orphans", *args, stdout=out)
    except CommandError as exc:
        return 1, out.getvalue() + str(exc)
    return 0, out.getvalue()


def _delete_behind_the_platforms_back(model, pk):
    with connection_for(model._meta.app_label).cursor() as cursor:
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0" if cursor.db.vendor == "mysql" else "SELECT 1")
        cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE id = %s", [pk])


@split
def test_deleting_an_instance_cascades_and_empties_across_databases():
    instance = WeworkInstanceFactory()
    account = WeworkAccountFactory(instance=instance)
    segment = SegmentFactory(instance=instance)
    alert = AlertRecordFactory(instance=instance)

    WeworkInstance.objects.filter(pk=instance.pk).hard_delete()

    assert not WeworkAccount._base_manager.filter(pk=account.pk).exists()  # DB_CASCADE, contacts' database
    assert not Segment.objects.filter(pk=segment.pk).exists()  # DB_CASCADE, scrm on contacts' database
    alert.refresh_from_db()
    assert alert.instance_id is None  # DB_SET_NULL, monitoring's database


@split
def test_deleting_a_task_cascades_its_tag_rules_and_empties_opt_out_confirmations():
    task = MessageTaskFactory()
    rule = TagRuleFactory(task=task, account=task.account)
    opt_out = OptOutFactory(account=task.account, confirmation_task=task)

    MessageTask.objects.filter(pk=task.pk).delete()

    assert not TagRule.objects.filter(pk=rule.pk).exists()
    opt_out = OptOut.objects.get(pk=opt_out.pk)
    assert opt_out.confirmation_task_id is None


@split
def test_a_row_referenced_by_a_refusing_reference_is_not_deleted():
    task = MessageTaskFactory()
    account = task.account
    with pytest.raises(ProtectedError, match="refer to it"):
        WeworkAccount._base_manager.filter(pk=account.pk).hard_delete()
    assert WeworkAccount._base_manager.filter(pk=account.pk).exists()
    assert MessageTask.objects.filter(pk=task.pk).exists()


@split
def test_orphans_are_reported_and_fixed_by_their_rule():
    instance = WeworkInstanceFactory()
    account = WeworkAccountFactory(instance=instance)
    segment = SegmentFactory(instance=instance)
    alert = AlertRecordFactory(instance=instance)
    _delete_behind_the_platforms_back(WeworkInstance, instance.pk)

    status, out = _run()
    assert status == 1 and "orphan rows remain" in out
    assert "wework_accounts.instance_id -> wework_instances: 1 rows name 1 missing rows (rule: cascade)" in out
    assert "alert_records.instance_id -> wework_instances: 1 rows" in out
    assert report_orphans()["orphans"]["scrm_segments.instance_id -> wework_instances"] == 1

    status, out = _run("--fix")
    assert status == 0, out
    assert not WeworkAccount._base_manager.filter(pk=account.pk).exists()
    assert not Segment.objects.filter(pk=segment.pk).exists()
    alert.refresh_from_db()
    assert alert.instance_id is None
    assert AuditLog.objects.filter(operation="database.orphans_fixed").count() == 3
    status, out = _run()
    assert status == 0 and "No orphan rows remain" in out


@split
def test_orphans_of_a_refusing_reference_are_listed_not_fixed():
    task = MessageTaskFactory()
    _delete_behind_the_platforms_back(WeworkAccount, task.account_id)
    status, out = _run("--fix")
    assert status == 1
    assert "message_tasks.account_id -> wework_accounts: 1 rows" in out and "not fixed" in out
    assert MessageTask.objects.filter(pk=task.pk).exists()


def test_page_must_be_positive():
    status, out = _run("--page", "0")
    assert status == 1 and "--page must be a positive number" in out


@pytest.mark.skipif(SPLIT, reason="the one-database layout")
def test_on_one_database_the_keys_hold_and_all_references_finds_nothing():
    task = MessageTaskFactory()
    AlertRecordFactory(instance=task.account.instance)
    assert _run() == (0, "One database: its foreign keys hold every reference between modules "
                         "(--all-references checks them anyway).\n")
    status, out = _run("--all-references")
    assert status == 0 and "No orphan rows remain" in out
    assert "message_tasks.account_id -> wework_accounts: no orphan (1 ids" in out
    assert report_orphans() == {"skipped": "one database: its foreign keys hold every reference"}
    assert AlertRecord.objects.filter(instance=task.account.instance).count() == 1  # nothing changed


def test_a_refused_delete_is_a_409_with_its_sentence_in_the_api(rf):
    error = ProtectedError("Cannot delete: message tasks rows of another module still refer to it "
                           "(message_tasks.account_id -> wework_accounts).", [])
    response = exception_handler(error, {"request": rf.delete("/api/v1/accounts/1/")})
    assert response.status_code == 409
    assert response.data == {"detail": str(error.args[0]), "code": "protected"}


def test_an_account_with_messages_in_a_time_shard_is_not_deleted():
    """messages are sharded by month: the refusal looks in every shard, as each shard's own
    FOREIGN KEY does on one database (the base `messages` table is empty)."""
    from django.db import IntegrityError

    from messaging.models import Message
    from wework import shards

    account = WeworkAccountFactory()
    message = shards.create(Message, account_id=account.pk, chat_type=1, chat_wxid="wxid_peer",
                            message_type=1, message_content="hi", send_time=timezone.now())
    assert type(message)._meta.db_table != Message._meta.db_table
    with pytest.raises((ProtectedError, IntegrityError)):
        WeworkAccount._base_manager.filter(pk=account.pk).hard_delete()
    assert WeworkAccount._base_manager.filter(pk=account.pk).exists()
    assert shards.get(Message, message.pk).account_id == account.pk


@split
def test_an_orphan_in_a_time_shard_is_reported_with_its_shard():
    from messaging.models import Message
    from wework import shards

    account = WeworkAccountFactory()
    message = shards.create(Message, account_id=account.pk, chat_type=1, chat_wxid="wxid_peer",
                            message_type=1, message_content="hi", send_time=timezone.now())
    _delete_behind_the_platforms_back(WeworkAccount, account.pk)
    status, out = _run()
    assert status == 1
    assert (f"messages.account_id -> wework_accounts: 1 rows name 1 missing rows (rule: refuse); "
            f"e.g. {type(message)._meta.db_table} id {message.pk} -> {account.pk}") in out


def test_a_cascade_that_reaches_a_refused_row_deletes_nothing_on_any_database():
    """An instance's accounts cascade, but an account with a task refuses: on one database the
    key fails the statement; on five the refusal rolls back the instance's delete on its
    database too (one transaction over every database)."""
    from django.db import IntegrityError

    task = MessageTaskFactory()
    instance = task.account.instance
    alert = AlertRecordFactory(instance=instance)
    with pytest.raises((ProtectedError, IntegrityError)):
        WeworkInstance._base_manager.filter(pk=instance.pk).hard_delete()
    assert WeworkInstance._base_manager.filter(pk=instance.pk).exists()
    assert WeworkAccount._base_manager.filter(pk=task.account_id).exists()
    alert.refresh_from_db()
    assert alert.instance_id == instance.pk  # the set-null on monitoring's database was rolled back


def test_every_reference_between_modules_leads_an_index_of_its_table():
    """The refusal, the cascades and the orphan report's keyset pages read a reference by its
    column (`WHERE col IN`, `DISTINCT col ... WHERE col > last ORDER BY col LIMIT n`); without
    a key starting with the column each would scan its table. On five schemas no FOREIGN KEY
    brings an implicit index, so the key must be declared."""
    from django.db import connections

    from wework.db.deletion import references_between_databases

    unindexed = []
    for reference in references_between_databases(include_same=True):
        for table in reference.tables():
            connection = connections[reference.alias]
            with connection.cursor() as cursor:
                constraints = connection.introspection.get_constraints(cursor, table._meta.db_table)
            # a unique constraint is an index too (SQLite reports it as a constraint only)
            if not any((c["index"] or c["unique"]) and c["columns"] and c["columns"][0] == reference.field.column
                       for c in constraints.values()):
                unindexed.append(f"{table._meta.db_table}.{reference.field.column}")
    assert not unindexed


def test_deleting_a_task_in_the_admin_applies_the_rules_on_the_contacts_database(verified_admin_client):
    """The admin's delete view (a hard delete: tasks have no deleted_at) cascades the task's tag
    rules and empties the opt-outs it confirmed, on five schemas as the keys do on one."""
    from django.urls import reverse

    task = MessageTaskFactory()
    rule = TagRuleFactory(task=task, account=task.account)
    opt_out = OptOutFactory(account=task.account, confirmation_task=task)
    url = reverse("admin:messaging_messagetask_delete", args=[task.pk])
    assert verified_admin_client.get(url).status_code == 200
    response = verified_admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302, response.content[:500]
    assert not MessageTask.objects.filter(pk=task.pk).exists()
    assert not TagRule.objects.filter(pk=rule.pk).exists()
    assert OptOut.objects.get(pk=opt_out.pk).confirmation_task_id is None


@split
def test_the_nightly_report_raises_an_alert_per_reference_and_resolves_it_when_fixed():
    instance = WeworkInstanceFactory()
    WeworkAccountFactory(instance=instance)
    _delete_behind_the_platforms_back(WeworkInstance, instance.pk)

    report_orphans()
    report_orphans()  # one open alert per reference, refreshed, not repeated
    source = "wework_accounts.instance_id -> wework_instances"
    alert = AlertRecord.objects.get(rule_name="database.orphans", source_id=source)
    assert (alert.status, alert.alert_level, alert.metric_value) == ("ACTIVE", "ERROR", 1)
    assert "1 rows name 1 missing rows" in alert.alert_message and "--fix" in alert.alert_message

    assert _run("--fix")[0] == 0
    report_orphans()
    alert.refresh_from_db()
    assert alert.status == "RESOLVED"
    assert not AlertRecord.objects.filter(rule_name="database.orphans", status="ACTIVE").exists()
