"""The large tables' changelist rows, rendered from a plan (wework/admin_rows.py), are the
HTML Django's own `items_for_result` gives for the same changelist, in Chinese and English."""
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from contacts.models import Contact, Group, GroupMember, WeworkAccount
from instances.models import InstanceMonitor
from instances.tests.factories import WeworkInstanceFactory
from messaging.models import Message
from messaging.tests.factories import MessageReceiverFactory, MessageTaskFactory
from monitoring.tests.factories import AuditLogFactory
from wework import shards
from wework.admin_rows import planned_results
from wework.templatetags import admin_rows as tag

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = re.compile(r'<table id="result_list">.*?</table>', re.S)


@pytest.fixture
def rows():
    now = timezone.now()
    instance = WeworkInstanceFactory()
    account = WeworkAccount.objects.create(instance=instance, wxid="wxid_<b>&owner", nickname="客服<小王>")
    for i, (chat, task, error) in enumerate([("wm_plain", None, ""), ("群聊 #1?a=b&c%", 77, "E<1>"),
                                             ("wo_~:@!$'()*+,;=", 12345678, None)]):
        shards.create(Message, account_id=account.pk, chat_type=1 + i % 2, chat_wxid=chat, created_at=now,
                      message_type="text", message_content=f"<i>{i}</i> & more", task_id=task,
                      error_code=error, send_status=i)
    shards.bulk_create(Contact, [{"account_id": account.pk, "wxid": f"wxid_c{i}", "nickname": f"c<{i}>",
                                  "remark": "" if i else None, "contact_type": 1 + i % 2,
                                  "last_sync_time": now if i else None} for i in range(3)],
                       instance_id=instance.pk)
    shards.bulk_create(Group, [{"account_id": account.pk, "group_wxid": f"R:{i}", "group_name": f"g&{i}",
                                "is_active": bool(i), "member_count": i * 1000}
                               for i in range(3)], instance_id=instance.pk)
    group = shards.for_instance(Group, instance.pk).order_by("id").first()
    shards.bulk_create(GroupMember, [{"group_id": group.pk, "member_wxid": f"wxid_m{i}",
                                      "member_nickname": f"小李{i}"} for i in range(2)], instance_id=instance.pk)
    task = MessageTaskFactory(account=account)
    MessageReceiverFactory(task=task, send_time=now)
    MessageReceiverFactory(task=task, receiver_name="<script>")
    AuditLogFactory()
    AuditLogFactory(ip_address="", resource_name="名字 & <x>")
    for value in (Decimal("12.5000"), Decimal("0.0100")):
        shards.create(InstanceMonitor, instance_id=instance.pk, metric_name="cpu_percent", metric_value=value,
                      metric_unit="%", collected_at=now)
    return instance


def _pages(instance):
    i = f"?instance={instance.pk}"
    return [reverse("admin:messaging_message_changelist"),
            reverse("admin:messaging_message_changelist") + "?direction=in",
            reverse("admin:contacts_contact_changelist") + i,
            reverse("admin:contacts_group_changelist") + i,
            reverse("admin:contacts_groupmember_changelist") + i,
            reverse("admin:messaging_messagereceiver_changelist"),
            reverse("admin:messaging_messagereceiver_changelist") + "?send_status__exact=0",
            reverse("admin:monitoring_auditlog_changelist"),
            reverse("admin:instances_instancemonitor_changelist")]


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_planned_rows_are_djangos_rows(verified_admin_client, rows, monkeypatch, language):
    planned = []
    real = tag.planned_results

    def spy(cl):
        got = real(cl)
        planned.append(got is not None)
        return got

    for url in _pages(rows):
        monkeypatch.setattr(tag, "planned_results", spy)
        with translation.override(language):
            ours = verified_admin_client.get(url, HTTP_ACCEPT_LANGUAGE=language)
        monkeypatch.setattr(tag, "planned_results", lambda cl: None)  # Django's result_list
        with translation.override(language):
            stock = verified_admin_client.get(url, HTTP_ACCEPT_LANGUAGE=language)
        assert ours.status_code == stock.status_code == 200, url
        assert planned.pop() is True, url
        table = TABLE.search(ours.content.decode())
        assert table is not None and table.group(0).count("<tr>") > 1, url
        assert table.group(0) == TABLE.search(stock.content.decode()).group(0), url


def test_small_tables_keep_djangos_renderer(verified_admin_client, rows, monkeypatch):
    seen = []
    monkeypatch.setattr(tag, "planned_results", lambda cl: seen.append(cl) or None)
    page = verified_admin_client.get(reverse("admin:messaging_messagetask_changelist"))
    assert page.status_code == 200 and seen
    assert planned_results(seen[0]) is None  # not a large table: Django's items_for_result
