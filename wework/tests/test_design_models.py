"""The models of the 14 design tables outside accounts (+ alert_rules): factories, round trips,
soft delete, encryption at rest, INSTANCE_PATH, database-level delete rules and ON UPDATE.

Runs on SQLite and on MariaDB.
"""
from datetime import datetime
from decimal import Decimal

import pytest
from django.db import connection

from contacts.models import Contact, Group, GroupMember, WeworkAccount
from contacts.tests.factories import (
    ContactFactory,
    GroupFactory,
    GroupMemberFactory,
    WeworkAccountFactory,
)
from instances.models import InstanceConfig, InstanceMonitor, WeworkInstance
from instances.tests.factories import (
    InstanceConfigFactory,
    InstanceMonitorFactory,
    WeworkInstanceFactory,
)
from messaging.models import Message, MessageReceiver, MessageTask, MessageTemplate
from messaging.tests.factories import (
    MessageFactory,
    MessageReceiverFactory,
    MessageTaskFactory,
    MessageTemplateFactory,
)
from monitoring.models import AlertRecord, AlertRule, AuditLog, SystemLog
from monitoring.tests.factories import (
    AlertRecordFactory,
    AlertRuleFactory,
    AuditLogFactory,
    SystemLogFactory,
)
from wework.db.layout import connection_for, is_split

FACTORIES = [
    WeworkInstanceFactory, InstanceConfigFactory, InstanceMonitorFactory,
    WeworkAccountFactory, ContactFactory, GroupFactory, GroupMemberFactory,
    MessageTemplateFactory, MessageTaskFactory, MessageReceiverFactory, MessageFactory,
    SystemLogFactory, AuditLogFactory, AlertRuleFactory, AlertRecordFactory,
]

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_factory_builds_and_saves(factory):
    built = factory.build()
    assert built.pk is None
    obj = factory()
    model = type(obj)
    again = model._base_manager.get(pk=obj.pk)
    assert again.pk == obj.pk
    # Every concrete column reads back as written (decimals at the design's scale).
    for field in model._meta.concrete_fields:
        if field.name in ("updated_at", "created_at"):
            continue
        stored, written = getattr(again, field.attname), getattr(obj, field.attname)
        if isinstance(written, datetime):  # DATETIME keeps whole seconds on MySQL/MariaDB
            assert abs((stored - written).total_seconds()) < 1, field.name
        else:
            assert stored == written, field.name


def test_every_design_model_has_a_factory():
    models = {f._meta.model for f in FACTORIES}
    expected = {
        WeworkInstance, InstanceConfig, InstanceMonitor, WeworkAccount, Contact, Group,
        GroupMember, Message, MessageTask, MessageReceiver, MessageTemplate, SystemLog,
        AuditLog, AlertRecord, AlertRule,
    }
    assert models == expected


def test_instance_path_reaches_the_instance():
    member = GroupMemberFactory()
    receiver = MessageReceiverFactory()
    samples = {
        WeworkInstance: member.group.account.instance,
        InstanceConfig: InstanceConfigFactory(),
        InstanceMonitor: InstanceMonitorFactory(),
        WeworkAccount: member.group.account,
        Contact: ContactFactory(),
        Group: member.group,
        GroupMember: member,
        Message: MessageFactory(),
        MessageTask: receiver.task,
        MessageReceiver: receiver,
        AlertRecord: AlertRecordFactory(),
    }
    for model, obj in samples.items():
        path = model.INSTANCE_PATH
        instance = obj
        for part in path.split("__") if path else []:
            instance = getattr(instance, part)
        lookup = path or "pk"
        assert list(model._base_manager.filter(**{lookup: instance.pk})) == [obj], model
    for model in (MessageTemplate, AuditLog, SystemLog, AlertRule):
        assert not hasattr(model, "INSTANCE_PATH")


def test_soft_delete_hides_rows_and_restores():
    account = WeworkAccountFactory()
    contact = ContactFactory(account=account)
    contact.delete()
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert Contact.all_objects.get(pk=contact.pk).is_deleted
    # The base manager still reaches a deleted account from its rows.
    account.delete()
    assert Contact.all_objects.get(pk=contact.pk).account == account
    Contact.all_objects.get(pk=contact.pk).restore()
    assert Contact.objects.filter(pk=contact.pk).exists()


def test_proxy_password_is_encrypted_at_rest():
    instance = WeworkInstanceFactory(proxy_password_encrypted="s3cret-proxy")
    with connection_for("instances").cursor() as cur:
        cur.execute("SELECT proxy_password_encrypted FROM wework_instances WHERE id = %s", [instance.pk])
        stored = cur.fetchone()[0]
    assert stored and "s3cret" not in stored
    assert WeworkInstance.objects.get(pk=instance.pk).proxy_password_encrypted == "s3cret-proxy"


def test_database_defaults_fill_omitted_columns():
    """Rows inserted by raw SQL (other services) get the design's defaults from the database."""
    instance = WeworkInstanceFactory()
    with connection_for("contacts").cursor() as cur:
        cur.execute(
            "INSERT INTO wework_accounts (instance_id, wxid) VALUES (%s, %s)", [instance.pk, "raw"]
        )
    account = WeworkAccount.objects.get(instance=instance, wxid="raw")
    assert (account.status, account.is_logged_in, account.contact_count) == (0, False, 0)
    assert account.created_at is not None and account.updated_at is not None
    rule = AlertRuleFactory(threshold_value=Decimal("1.23456"))
    assert AlertRule.objects.get(pk=rule.pk).threshold_value == Decimal("1.2346")


def test_delete_rules_are_enforced_by_the_database():
    """ON DELETE CASCADE / SET NULL as designed, without Python-side collection."""
    member = GroupMemberFactory()
    account = member.group.account
    instance = account.instance
    contact = ContactFactory(account=account)
    config = InstanceConfigFactory(instance=instance)
    alert = AlertRecordFactory(instance=instance)
    if is_split():
        # Per-module databases: a database enforces the rules within it (an instance's configs;
        # an account's contacts, groups and members); the rules from one module to another
        # (instance -> accounts, alerts) have no constraint there (docs/schema.md, "Storage
        # layout"), so the account is deleted on its own database here.
        with connection_for("contacts").cursor() as cur:
            cur.execute("DELETE FROM wework_accounts WHERE id = %s", [account.pk])
    with connection_for("instances").cursor() as cur:
        cur.execute("DELETE FROM wework_instances WHERE id = %s", [instance.pk])
    assert not WeworkAccount.all_objects.filter(pk=account.pk).exists()
    assert not Contact.all_objects.filter(pk=contact.pk).exists()
    assert not GroupMember.objects.filter(pk=member.pk).exists()
    assert not InstanceConfig.objects.filter(pk=config.pk).exists()
    if not is_split():
        assert AlertRecord.objects.get(pk=alert.pk).instance_id is None


@pytest.mark.mysql
def test_updated_at_on_update_on_mysql():
    if connection.vendor != "mysql":
        pytest.skip("ON UPDATE CURRENT_TIMESTAMP is MySQL/MariaDB only")
    task = MessageTaskFactory()
    with connection_for("messaging").cursor() as cur:
        cur.execute("UPDATE message_tasks SET updated_at = '2020-01-01 00:00:00' WHERE id = %s", [task.pk])
    MessageTask.objects.filter(pk=task.pk).update(success_count=1)  # no auto_now here
    assert MessageTask.objects.get(pk=task.pk).updated_at.year > 2020
