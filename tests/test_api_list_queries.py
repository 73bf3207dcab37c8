"""What a list page costs on tables of millions (issue 13): every API list runs the same queries
whatever its rows (no N+1, no count), none counts a table, the messages page reads the month's
shard without joining the accounts, orderings need an index, and a statement the database
stops at the web's time limit is a 503 that says so, never a 500."""
import re
from decimal import Decimal

import pytest
from django.db import OperationalError, connection
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import UserFactory
from contacts.models import Contact, Group, GroupMember
from contacts.tests.factories import WeworkAccountFactory
from instances.models import InstanceEvent, InstanceMonitor
from instances.tests.factories import WeworkInstanceFactory
from messaging.models import Message
from monitoring.models import SystemLog
from wework import shards
from wework.api.urls import _modules
from wework.db.layout import connection_for
from wework.testing.factories import make
from wework.testing.fixtures import login_verified
from wework.testing.queries import capture_queries

pytestmark = pytest.mark.django_db(transaction=True)

COUNT = re.compile(r"\bCOUNT\(", re.IGNORECASE)
#: COUNTs over one user's grants (permission checks) are no list's count.
GRANT_TABLES = ("guardian", "user_roles")


@pytest.fixture
def api(client):
    login_verified(client, UserFactory(is_superuser=True))
    return client


class Rows:
    """Fills each list's table(s), a few rows at a time."""

    def __init__(self):
        self.instance = WeworkInstanceFactory()
        self.account = WeworkAccountFactory(instance=self.instance)
        self.n = 0
        shards.create_instance_shards(self.instance.pk)
        self.group_id = shards.bulk_create(Group, [self._group()], instance_id=self.instance.pk)[0]

    def _next(self):
        self.n += 1
        return self.n

    def _group(self):
        n = self._next()
        return {"account_id": self.account.pk, "group_wxid": f"{n}@chatroom", "group_name": f"g{n}",
                "member_count": 0, "my_role": 1}

    def shard_fillers(self):
        now = timezone.now()
        inst = self.instance.pk

        def message():
            n = self._next()
            shards.bulk_create(Message, [{"message_uuid": shards.new_uuid(), "account_id": self.account.pk,
                                          "chat_type": 1, "chat_wxid": f"wxid_{n}", "message_type": "text",
                                          "message_content": f"m{n}", "created_at": now}])

        def log():
            n = self._next()
            shards.bulk_create(SystemLog, [{"log_uuid": shards.new_uuid(), "level": "INFO", "service": "t",
                                            "module": "m", "message": f"line {n}", "created_at": now}])

        def metric():
            shards.bulk_create(InstanceMonitor, [{"instance_id": inst, "metric_name": "cpu_percent",
                                                  "metric_value": Decimal("1.5"), "collected_at": now}])

        def contact():
            n = self._next()
            shards.bulk_create(Contact, [{"account_id": self.account.pk, "wxid": f"wxid_{n}",
                                          "nickname": f"c{n}", "contact_type": 1}], instance_id=inst)

        def group():
            shards.bulk_create(Group, [self._group()], instance_id=inst)

        def conversation_message():  # one account's conversation with one contact
            self._next()
            shards.bulk_create(Message, [{"message_uuid": shards.new_uuid(), "account_id": self.account.pk,
                                          "chat_type": 1, "chat_wxid": "wxid_talk", "message_type": "text",
                                          "message_content": "hi", "created_at": now}])

        def member():
            n = self._next()
            shards.bulk_create(GroupMember, [{"group_id": self.group_id, "member_wxid": f"wxid_m{n}",
                                              "member_nickname": f"m{n}", "role": 0}], instance_id=inst)

        def event():
            n = self._next()
            InstanceEvent.objects.create(instance=self.instance, event_id=f"e{n}", seq=n, event_type="message.new",
                                         payload={}, ts_ms=n)

        on_instance = {"instance": inst}
        return {
            "instanceevent": ({}, event),
            "message": ({}, message),
            "systemlog": ({}, log),
            "instancemonitor": (on_instance, metric),
            "contact": (on_instance, contact),
            "scrm-contact": (on_instance, contact),
            "conversation": ({"account": self.account.pk, "chat_wxid": "wxid_talk"}, conversation_message),
            "group": (on_instance, group),
            "groupmember": (on_instance, member),
        }


def _lists():
    for module in _modules:
        for _prefix, viewset, basename in module.router.registry:
            if hasattr(viewset, "list"):
                yield basename, reverse(f"api:{basename}-list"), viewset
    yield "systemlog", reverse("api:systemlog-list"), None


def _list_cases(rows):
    special = rows.shard_fillers()
    for basename, url, viewset in _lists():
        if basename in special:
            params, fill = special[basename]
        else:
            model = viewset.queryset.model

            def fill(model=model):
                make(model, instance=rows.instance)

            params = {}
        yield basename, url, params, fill


def test_every_list_runs_the_same_queries_whatever_its_rows_and_counts_nothing(api):
    rows = Rows()
    checked = []
    for basename, url, params, fill in _list_cases(rows):
        fill()
        api.get(url, params)  # caches (shard listing, permissions) warm
        with capture_queries() as few:
            first = api.get(url, params)
        assert first.status_code == 200, (basename, first.status_code, first.content[:300])
        for _ in range(4):
            fill()
        with capture_queries() as many:
            response = api.get(url, params)
        body = response.json()
        assert "count" not in body and body["results"], (basename, body)
        assert len(many) == len(few), (basename, [q["sql"] for q in many])
        counted = [q["sql"] for q in many if COUNT.search(q["sql"])
                   and not any(table in q["sql"] for table in GRANT_TABLES)]
        assert not counted, (basename, counted)
        checked.append(basename)
    shard_lists = {"message", "systemlog", "instancemonitor", "contact", "group", "groupmember"}
    assert shard_lists <= set(checked) and len(checked) >= 20, checked


def test_the_shard_lists_page_through_their_rows(api):
    rows = Rows()
    for basename, (params, fill) in rows.shard_fillers().items():
        for _ in range(5):
            fill()
        url = reverse(f"api:{basename}-list")
        seen, query = [], {**params, "limit": 2}
        for _ in range(10):
            body = api.get(url, query).json()
            page = [r["id"] for r in body["results"]]
            assert page == sorted(page, reverse=True), basename
            seen += page
            after = body.get("next_after") if "next_after" in body else None
            if "next_after" not in body:  # a cursor list: follow its link
                if not body["next"]:
                    break
                url, query = body["next"], {}
                continue
            if after is None:
                break
            query = {**params, "limit": 2, "after": after}
        assert len(seen) == len(set(seen)) >= 5, (basename, seen)


def test_the_messages_page_reads_the_month_shard_alone_for_a_scoped_user(personas):
    account = WeworkAccountFactory(instance=personas.a)
    other = WeworkAccountFactory(instance=personas.b)
    now = timezone.now()
    shards.bulk_create(Message, [{"message_uuid": shards.new_uuid(), "account_id": acc.pk, "chat_type": 1,
                                  "chat_wxid": f"wxid_{i}", "message_type": "text", "created_at": now}
                                 for i, acc in enumerate([account, other, account])])
    client = personas.api_client("object_grantee")
    with capture_queries() as queries:
        body = client.get("/api/v1/messaging/messages/").json()
    assert [r["account"] for r in body["results"]] == [account.pk, account.pk]
    table = shards.model_for(Message, now)._meta.db_table
    page = [q["sql"] for q in queries if table in q["sql"]]
    assert len(page) == 1 and "wework_accounts" not in page[0] and "JOIN" not in page[0].upper(), page


def test_orderings_need_an_index_and_ties_are_broken_by_id(api):
    response = api.get("/api/v1/instance-events/", {"ordering": "received_at"})
    assert response.status_code == 400
    assert "index" in response.json()["ordering"][0], response.json()
    assert api.get("/api/v1/instance-events/", {"ordering": "-id"}).status_code == 200
    instance = WeworkInstanceFactory()
    made = {WeworkAccountFactory(instance=instance, status=1).pk for _ in range(5)}
    url, query, seen = "/api/v1/wework-accounts/", {"ordering": "status", "limit": 2}, []
    for _ in range(5):
        body = api.get(url, query).json()
        seen += [r["id"] for r in body["results"]]
        if not body["next"]:
            break
        url, query = body["next"], {}
    assert sorted(seen) == sorted(made)


def _interrupt(table):
    """A database that stops every statement on `table` at the time limit (MariaDB's 1969)."""
    def wrapper(execute, sql, params, many, context):
        if table in sql:
            raise OperationalError(1969, "Query execution was interrupted (max_statement_time exceeded)")
        return execute(sql, params, many, context)
    return wrapper


def test_a_statement_stopped_at_the_time_limit_is_a_503_saying_so(api, settings):
    settings.DATABASE_STATEMENT_TIMEOUT_S = 25
    rows = Rows()
    rows.shard_fillers()["message"][1]()
    table = shards.model_for(Message, timezone.now())._meta.db_table
    with connection_for("messaging").execute_wrapper(_interrupt(table)):  # the shard's database
        response = api.get("/api/v1/messaging/messages/")
    assert response.status_code == 503, response.content
    assert response["Retry-After"]
    body = response.json()
    assert body["code"] == "statement_timeout" and "25" in body["detail"], body


def test_an_admin_page_stopped_at_the_time_limit_is_a_503_page(verified_admin_client, settings):
    settings.DATABASE_STATEMENT_TIMEOUT_S = 25
    with connection_for("monitoring").execute_wrapper(_interrupt("audit_logs")):
        response = verified_admin_client.get("/admin/monitoring/auditlog/")
    assert response.status_code == 503 and response["Retry-After"]
    assert "25" in response.content.decode()


@pytest.mark.mysql
def test_mariadb_stops_a_statement_at_the_time_limit_and_the_api_answers_503(rf):
    if connection.vendor != "mysql":
        pytest.skip("max_statement_time is MariaDB's")
    from wework.api.exceptions import exception_handler

    with pytest.raises(OperationalError) as raised, connection.cursor() as cursor:
        cursor.execute("SET STATEMENT max_statement_time=0.001 FOR SELECT SLEEP(1)")
    response = exception_handler(raised.value, {"request": rf.get("/api/v1/messaging/messages/")})
    assert response.status_code == 503 and response.data["code"] == "statement_timeout"



def _large_views():
    for basename, url, viewset in _lists():
        if viewset is not None and getattr(viewset, "large_table", False):
            yield basename, url, viewset


def test_large_lists_search_only_through_an_index():
    from wework.db.indexes import searchable_through_an_index

    scoped = {"contact": {"account_id"}, "scrm-contact": {"account_id"}, "group": {"account_id"},
              "auditlog": {"resource_type"}}
    checked = set()
    for basename, _url, viewset in _large_views():
        model = viewset.base_model if getattr(viewset, "base_model", None) else viewset.queryset.model
        for spec in viewset.search_fields:
            assert searchable_through_an_index(model, spec, scoped.get(basename, set())), (basename, spec)
        checked.add(basename)
    assert {"contact", "group", "groupmember", "auditlog"} <= checked, checked


def test_a_shard_search_asks_each_indexed_field_alone_and_refuses_a_scan(api):
    rows = Rows()
    inst = rows.instance.pk
    shards.bulk_create(Contact, [
        {"account_id": rows.account.pk, "wxid": "wxid_alice", "nickname": "Alice Chen", "contact_type": 1},
        {"account_id": rows.account.pk, "wxid": "wxid_bob", "nickname": "Bob", "remark": "alice's friend",
         "contact_type": 1},
    ], instance_id=inst)
    table = shards.model_for(Contact, instance_id=inst)._meta.db_table
    url = reverse("api:contact-list")
    with capture_queries() as queries:
        body = api.get(url, {"instance": inst, "search": "ALICE"}).json()
    assert sorted(r["wxid"] for r in body["results"]) == ["wxid_alice", "wxid_bob"]
    on_table = [q["sql"] for q in queries if table in q["sql"]]
    # LIKE 'alice%' (an index range), never '%alice%', and no OR across the columns
    assert on_table and not [sql for sql in on_table if "%alice" in sql.lower() or " OR " in sql.upper()], on_table
    body = api.get(url, {"instance": inst, "search": "wxid_bob"}).json()
    assert [r["wxid"] for r in body["results"]] == ["wxid_bob"]
    body = api.get(url, {"instance": inst, "search": "alice c"}).json()  # a name's beginning, two words
    assert [r["wxid"] for r in body["results"]] == ["wxid_alice"]
    response = api.get(url, {"instance": inst, "search": "a" * 101})  # longer than any column
    assert response.status_code == 400 and "index" in response.json()["search"][0], response.content
    # members: by the group's name, through the groups' own index
    shards.bulk_create(GroupMember, [{"group_id": rows.group_id, "member_wxid": "wxid_m", "role": 0}],
                       instance_id=inst)
    group_name = shards.for_instance(Group, inst).get(pk=rows.group_id).group_name
    body = api.get(reverse("api:groupmember-list"), {"instance": inst, "search": group_name}).json()
    assert [r["member_wxid"] for r in body["results"]] == ["wxid_m"]


def test_an_audit_resource_id_is_searched_within_its_type(api):
    from monitoring.models import AuditLog
    from wework.testing.factories import make as make_row

    make_row(AuditLog, resource_type="user", resource_id="42", username="someone")
    url = reverse("api:auditlog-list")
    # without its type, an id is no index's first column: only the user name and operation are asked
    assert api.get(url, {"search": "42"}).json()["results"] == []
    found = api.get(url, {"search": "42", "resource_type": "user"}).json()["results"]
    assert [r["resource_id"] for r in found] == ["42"]
    assert [r["username"] for r in api.get(url, {"search": "someone"}).json()["results"]] == ["someone"]


def test_the_web_process_sets_a_statement_time_limit_below_the_web_servers_timeout():
    """gunicorn kills a worker after 30 s (its default, docs/deployment.md): MariaDB must stop
    the worker's statement before, on every connection of the web process (init_command)."""
    import subprocess
    import sys

    code = ("import os; os.environ['WEWORK_PROCESS'] = 'web'; "
            "os.environ['DATABASE_URL'] = 'mysql://root@127.0.0.1:3306/x'; "
            "from wework import settings as s; "
            "print(s.DATABASE_STATEMENT_TIMEOUT_S, s.DATABASES['default']['OPTIONS']['init_command'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    limit, init = out.split(" ", 1)
    assert 0 < float(limit) < 30, limit
    assert f"max_statement_time={float(limit):g}" in init, init
