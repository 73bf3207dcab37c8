"""What an admin changelist of a table of millions costs (issue 13): the same queries whatever
its rows, no COUNT over the table, no join into the page, sorting only by indexed columns, and
searches that an index serves or a sentence that refuses them."""
import re
from collections import Counter

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact, Group, GroupMember
from instances.models import InstanceMonitor
from messaging.models import Message, MessageReceiver
from messaging.tests.factories import MessageReceiverFactory, MessageTaskFactory
from monitoring.models import AuditLog, SystemLog
from wework import shards
from wework.admin import EstimatedCountPaginator
from wework.admin_large import admin_searchable
from wework.db.indexes import ordering_served
from wework.testing.factories import make

from .test_api_list_queries import Rows
from wework.testing.queries import capture_queries

pytestmark = pytest.mark.django_db(transaction=True)

COUNT = re.compile(r"\bCOUNT\(", re.IGNORECASE)
#: the paginator's capped count: the server counts at most count_cap + 1 ids
CAPPED_COUNT = re.compile(rf"^SELECT COUNT\(\*\) FROM \(SELECT .* LIMIT {EstimatedCountPaginator.count_cap + 1}\) subquery$",
                          re.IGNORECASE | re.DOTALL)
JOIN = re.compile(r"\bJOIN\b", re.IGNORECASE)
ORDER_BY = re.compile(r"ORDER BY (.*?)(?: LIMIT|$)", re.IGNORECASE | re.DOTALL)
LARGE = (Contact, Group, GroupMember, MessageReceiver, AuditLog, InstanceMonitor, Message)
#: The first column that indexed_search_scope fixes for each admin's pair indexes.
SCOPED = {Contact: {"account_id"}, Group: {"account_id"}, MessageReceiver: {"task_id"},
          AuditLog: {"resource_type"}}


def _cases(rows):
    """(name, changelist url, params, fill, table of the page)"""
    inst = rows.instance.pk
    fillers = rows.shard_fillers()
    task = MessageTaskFactory(account=rows.account)

    def receiver():
        MessageReceiverFactory(task=task)

    def audit():
        make(AuditLog)

    on_instance = {"instance": inst}
    metric_table = shards.model_for(InstanceMonitor, timezone.now())._meta.db_table
    return [
        ("contact", reverse("admin:contacts_contact_changelist"), on_instance, fillers["contact"][1],
         shards.model_for(Contact, instance_id=inst)._meta.db_table),
        ("group", reverse("admin:contacts_group_changelist"), on_instance, fillers["group"][1],
         shards.model_for(Group, instance_id=inst)._meta.db_table),
        ("groupmember", reverse("admin:contacts_groupmember_changelist"), on_instance, fillers["groupmember"][1],
         shards.model_for(GroupMember, instance_id=inst)._meta.db_table),
        ("message", reverse("admin:messaging_message_changelist"), {}, fillers["message"][1],
         shards.model_for(Message, timezone.now())._meta.db_table),
        ("receiver", reverse("admin:messaging_messagereceiver_changelist"), {}, receiver, "message_receivers"),
        ("auditlog", reverse("admin:monitoring_auditlog_changelist"), {}, audit, "audit_logs"),
        ("metric", reverse("admin:instances_instancemonitor_changelist"), {"shard": metric_table},
         fillers["instancemonitor"][1], metric_table),
    ]


def _on(table, queries):
    quoted = (f"`{table}`", f'"{table}"')
    return [q["sql"] for q in queries if any(name in q["sql"] for name in quoted)]


def test_large_changelists_cost_the_same_whatever_their_rows_and_count_and_join_nothing(verified_admin_client):
    client = verified_admin_client
    rows = Rows()
    for name, url, params, fill, table in _cases(rows):
        fill()
        assert client.get(url, params).status_code == 200, name  # caches warm
        with capture_queries() as few:
            first = client.get(url, params)
        assert first.status_code == 200, name
        for _ in range(4):
            fill()
        with capture_queries() as many:
            page = client.get(url, params)
        assert page.status_code == 200, name
        assert len(many) == len(few), (name, [q["sql"] for q in many])
        on_table = _on(table, many)
        assert on_table, (name, table, [q["sql"] for q in many])
        assert not [sql for sql in on_table if COUNT.search(sql) and not CAPPED_COUNT.match(sql)], (name, on_table)
        assert not [sql for sql in on_table if JOIN.search(sql)], (name, on_table)


def test_large_changelists_sort_only_by_indexed_columns(verified_admin_client):
    client = verified_admin_client
    rows = Rows()
    for name, url, params, fill, table in _cases(rows):
        fill()
        model_admin = next(a for m, a in admin.site._registry.items() if reverse(
            f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist") == url)
        columns = list(model_admin.get_list_display(None))
        for index in range(len(columns)):
            with capture_queries() as queries:
                response = client.get(url, {**params, "o": str(index)})
            assert response.status_code == 200, (name, index)
            leads = model_admin.indexed_orderings()
            for sql in _on(table, queries):
                for clause in ORDER_BY.findall(sql):
                    for term in clause.split(","):
                        column = term.strip().split(".")[-1].split()[0].strip('`"')
                        # a number is a selected column's position (the pk in the capped count)
                        assert column in leads or column.isdigit(), (name, columns[index], sql)


def test_large_admins_search_through_an_index():
    for model in LARGE:
        model_admin = admin.site._registry[model]
        assert model_admin.large_table, model
        if model is Message:  # its own search (messaging/admin.py, messaging/tests/test_admin.py)
            continue
        for spec in model_admin.search_fields:
            assert admin_searchable(model_admin, spec, SCOPED.get(model, set())), (model, spec)


def test_contacts_search_uses_indexed_lookups_and_refuses_a_scan(verified_admin_client):
    client = verified_admin_client
    rows = Rows()
    inst = rows.instance.pk
    shards.bulk_create(Contact, [
        {"account_id": rows.account.pk, "wxid": "wxid_alice", "nickname": "Alice Chen", "contact_type": 1},
        {"account_id": rows.account.pk, "wxid": "wxid_bob", "nickname": "Bob", "remark": "alice's friend",
         "contact_type": 1},
    ], instance_id=inst)
    url = reverse("admin:contacts_contact_changelist")
    table = shards.model_for(Contact, instance_id=inst)._meta.db_table
    with capture_queries() as queries:
        body = client.get(url, {"instance": inst, "q": "alice"}).content.decode()
    # the start of a nickname or remark (LIKE 'alice%', an index range), never '%alice%'
    assert "wxid_alice" in body and "wxid_bob" in body
    searched = _on(table, queries)
    assert not [sql for sql in searched if "%alice" in sql.lower() or "'%%" in sql], searched
    # the WeCom id is exact, with the instance's accounts (the (account, wxid) index)
    body = client.get(url, {"instance": inst, "q": "wxid_bob"}).content.decode()
    assert "wxid_bob" in body and "wxid_alice" not in body
    # a name of two words, by its beginning
    body = client.get(url, {"instance": inst, "q": "Alice C"}).content.decode()
    assert "wxid_alice" in body and "wxid_bob" not in body
    # longer than any searched column: no index serves it: refused with a sentence
    response = client.get(url, {"instance": inst, "q": "a" * 101})
    text = response.content.decode()
    assert response.status_code == 200 and "wxid_alice" not in text and "index" in text


def test_receivers_search_by_task_or_by_wecom_id_within_a_task(verified_admin_client):
    client = verified_admin_client
    receiver = MessageReceiverFactory(receiver_wxid="wxid_target")
    other = MessageReceiverFactory(receiver_wxid="wxid_other")
    url = reverse("admin:messaging_messagereceiver_changelist")
    body = client.get(url, {"q": str(receiver.task_id)}).content.decode()
    assert "wxid_target" in body and "wxid_other" not in body
    body = client.get(url, {"q": "wxid_other", "task__id__exact": other.task_id}).content.decode()
    assert "wxid_other" in body and "wxid_target" not in body
    # a WeCom id without its task would read every receiver: refused
    body = client.get(url, {"q": "wxid_other"}).content.decode()
    assert "wxid_other" not in body.split("</form>", 2)[-1] and "index" in body


# --- every changelist ---------------------------------------------------------------------------
#: Changelists that hold their rows in shards need their shard named; others: the registry's row.
def _every_changelist(rows):
    special = {table_model: (params, fill, table)
               for _name, url, params, fill, table in _cases(rows)
               for table_model in [next(m for m in admin.site._registry
                                        if reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist") == url)]}
    fillers = rows.shard_fillers()
    log_table = shards.model_for(SystemLog, timezone.now())._meta.db_table
    special[SystemLog] = ({}, fillers["systemlog"][1], log_table)
    for model, model_admin in admin.site._registry.items():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        if model in special:
            params, fill, table = special[model]
        else:
            def fill(model=model):
                make(model, instance=rows.instance)
            params, table = {}, model._meta.db_table
        yield model, model_admin, url, params, fill, table


def _shape(sql):
    return re.sub(r"(N, )+N", "N", re.sub(r"\d+", "N", sql))


#: Read again when a short cache or a session's check interval runs out mid-test (a slow,
#: loaded run): the header's badge of active alerts, the session and its token-session row.
BADGE = re.compile(r'FROM [`"]alert_records[`"] WHERE [`"]alert_records[`"].[`"]status[`"] IN'
                   r'|FROM [`"](django_session|user_sessions)[`"]|UPDATE [`"](django_session|user_sessions)[`"]')


def test_every_changelist_costs_the_same_queries_whatever_its_rows_and_counts_nothing(verified_admin_client):
    """Every admin changelist, so that a new one is held to it: the same queries with 1 row as
    with 5 (no query per row), no COUNT over its table (the paginator reads at most
    EstimatedCountPaginator.count_cap ids), the default order walks an index (unless the admin
    says its table stays small: `small_table`), and the large tables are joined to nothing."""
    client = verified_admin_client
    rows = Rows()
    checked, problems = [], []
    for model, model_admin, url, params, fill, table in _every_changelist(rows):
        name = model._meta.label
        if not issubclass(model_admin.paginator, EstimatedCountPaginator) or model_admin.show_full_result_count:
            problems.append((name, "counts its table"))
        fill()
        assert client.get(url, params).status_code == 200, model  # caches warm
        with capture_queries() as few:
            assert client.get(url, params).status_code == 200, model
        for _ in range(4):
            fill()
        with capture_queries() as many:
            assert client.get(url, params).status_code == 200, model
        checked.append(name)
        many = [q for q in many if not BADGE.search(q["sql"])]
        few = [q for q in few if not BADGE.search(q["sql"])]
        if len(many) != len(few):
            shapes = Counter(_shape(q["sql"]) for q in many)
            shapes.subtract(_shape(q["sql"]) for q in few)
            problems.append((name, "queries per row", [sql for sql, n in shapes.items() if n]))
        on_table = _on(table, many)
        if model_admin.large_table:
            problems += [(name, "JOIN", sql) for sql in on_table if JOIN.search(sql)]
        if model_admin.small_table:  # any order; counts of its rows' children (tags of a group)
            continue
        problems += [(name, "COUNT", sql) for sql in on_table if COUNT.search(sql) and not CAPPED_COUNT.match(sql)]
        for sql in on_table:
            for clause in ORDER_BY.findall(sql):
                columns = [term.strip().split(".")[-1].split()[0].strip('`"') for term in clause.split(",")]
                # a number is a selected column's position (the primary key)
                columns = [model._meta.pk.attname if c.isdigit() else c for c in columns]
                if not ordering_served(model, columns):
                    problems.append((name, "ORDER BY", sql))
    assert not problems, "\n".join(repr(p)[:400] for p in problems)
    assert len(checked) == len(admin.site._registry) >= 30, checked
