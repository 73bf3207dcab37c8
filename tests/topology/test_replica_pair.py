"""Primary + GTID replica (scripts/services up replica): a lagging replica never costs an update,
a replica out of date or down is out of rotation within seconds, and a replica outage costs
no error and no log record. Run by `scripts/test-topology replica`."""
import logging
import re
import time

import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from wework.testing.fixtures import login_verified
from messaging.models import MessageTemplate
from messaging.tests.factories import MessageTemplateFactory
from wework import routers

from .conftest import (
    PRIMARY_PORT, REPLICA_PORT, database_name, eventually, replica_server_stopped, sql,
    sql_thread_stopped, wait_replica_caught_up,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

REPLICA = "replica_0"
API = "/api/v1/messaging/templates/"


@pytest.fixture
def admin(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")


@pytest.fixture
def browser(client, admin):
    login_verified(client, admin)
    return client


@pytest.fixture
def template(admin):
    tpl = MessageTemplateFactory(name="v1", content="Hello {{ name }}", created_by=admin)
    wait_replica_caught_up()
    return tpl


def _on_primary(pk):
    return sql(PRIMARY_PORT, "SELECT name, use_count, content FROM message_templates WHERE id = %s",
               [pk], db=database_name())[0]


def _on_replica(pk):
    return sql(REPLICA_PORT, "SELECT name, use_count, content FROM message_templates WHERE id = %s",
               [pk], db=database_name())[0]


def _newer_value_on_primary(pk):
    """Another writer renames the template and uses it five times; the replica does not see it."""
    sql(PRIMARY_PORT, "UPDATE message_templates SET name = 'v2', use_count = use_count + 5 WHERE id = %s",
        [pk], db=database_name())


def test_the_replica_is_a_real_replica_of_the_test_database():
    assert connections[REPLICA].settings_dict["PORT"] in (REPLICA_PORT, str(REPLICA_PORT))
    assert connections[REPLICA].settings_dict["NAME"] == database_name()
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT @@port, @@read_only")
        assert cursor.fetchone() == (REPLICA_PORT, 1)


def test_a_patch_on_a_lagging_replica_cannot_revert_a_newer_value(browser, template, replica_health, django_user_model):
    with sql_thread_stopped():
        _newer_value_on_primary(template.pk)
        assert _on_replica(template.pk)[:2] == ("v1", 0)
        # The replica's lag is not noticed yet: it stays in rotation.
        replica_health.force(REPLICA, True)

        # Pure reads do come from the replica (stale): the replica is really used ...
        listed = {t["id"]: t for t in browser.get(API).json()["results"]}
        assert listed[template.pk]["name"] == "v1"

        # ... but the read that feeds the write does not.
        response = browser.patch(f"{API}{template.pk}/", {"content": "Hi {{ name }}"},
                                 content_type="application/json")
        assert response.status_code == 200, response.content
        assert response.json()["name"] == "v2" and response.json()["use_count"] == 5
        assert _on_primary(template.pk) == ("v2", 5, "Hi {{ name }}")

        # The writer reads its own write next (pinned to the primary for a few seconds) ...
        mine = browser.get(f"{API}{template.pk}/").json()
        assert (mine["name"], mine["content"]) == ("v2", "Hi {{ name }}")
        # ... while another user's pure read may still be served by the stale replica.
        other = django_user_model.objects.create_superuser("other", "other@example.com", "pw-other-123")
        from django.test import Client

        second = Client()
        login_verified(second, other)
        assert {t["id"]: t for t in second.get(API).json()["results"]}[template.pk]["name"] == "v1"
    wait_replica_caught_up()
    assert _on_replica(template.pk) == ("v2", 5, "Hi {{ name }}")


def _form_data(response):
    """The change form's fields with the values it rendered, as a browser would send them."""
    form = response.context["adminform"].form
    data = {"_save": "Save"}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()  # prepared for display, as rendered
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        data[name] = "" if value is None else value
    return data


def test_the_admin_change_form_cannot_write_a_stale_value(browser, template, replica_health):
    url = reverse("admin:messaging_messagetemplate_change", args=[template.pk])
    with sql_thread_stopped():
        _newer_value_on_primary(template.pk)
        replica_health.force(REPLICA, True)
        # The changelist (a pure read) is served by the stale replica ...
        changelist = browser.get(reverse("admin:messaging_messagetemplate_changelist"))
        assert changelist.status_code == 200 and b">v1<" in changelist.content
        # ... the change form by the primary: what it shows is what it will write back.
        form = browser.get(url)
        assert form.status_code == 200
        assert re.search(rb'name="name"[^>]*value="v2"', form.content)
        data = _form_data(form)
        assert data["name"] == "v2"
        data["content"] = "Changed in the admin {{ name }}"
        saved = browser.post(url, data)
        assert saved.status_code == 302, saved.context["adminform"].form.errors
        assert _on_primary(template.pk) == ("v2", 5, "Changed in the admin {{ name }}")


def test_a_stopped_replica_sql_thread_takes_it_out_of_rotation_and_back(browser, template, replica_health, settings):
    settings.DATABASE_REPLICA_CHECK_INTERVAL_S = 0.5
    assert replica_health.status(REPLICA).healthy
    with sql_thread_stopped():
        _newer_value_on_primary(template.pk)
        took_out = eventually(lambda: not replica_health.status(REPLICA).healthy, timeout=5,
                              message="replica out of rotation")
        assert "SQL thread" in replica_health.status(REPLICA).reason
        # Reads fall back to the primary: no stale value, no error.
        listed = {t["id"]: t for t in browser.get(API).json()["results"]}
        assert listed[template.pk]["name"] == "v2"
    back = eventually(lambda: replica_health.status(REPLICA).healthy, timeout=10,
                      message="replica back in rotation")
    with routers.replica_reads():
        assert routers.PrimaryReplicaRouter().db_for_read(MessageTemplate) == REPLICA
    print(f"\nreplica out of rotation {took_out:.2f} s after its SQL thread stopped; back {back:.2f} s after it restarted")


def test_a_replica_over_the_maximum_lag_is_out_of_rotation(template, replica_health, settings):
    settings.DATABASE_REPLICA_MAX_LAG_S = 1
    settings.DATABASE_REPLICA_CHECK_INTERVAL_S = 0.5
    wait_replica_caught_up()
    # Delayed replication: the SQL thread runs but applies each change 4 s late.
    sql(REPLICA_PORT, "STOP SLAVE")
    sql(REPLICA_PORT, "CHANGE MASTER TO MASTER_DELAY = 4")
    sql(REPLICA_PORT, "START SLAVE")
    try:
        eventually(lambda: replica_health.status(REPLICA).healthy, timeout=10, message="replicating again")
        started = time.monotonic()
        for _ in range(20):  # changes keep coming while the replica applies them late
            MessageTemplate.objects.filter(pk=template.pk).update(use_count=F_plus_one())
            if not replica_health.status(REPLICA).healthy:
                break
            time.sleep(0.25)
        status = replica_health.status(REPLICA)
        assert not status.healthy and status.lag_s is not None and status.lag_s > 1, status
        print(f"\nreplica {status.lag_s:.0f} s behind: out of rotation after {time.monotonic() - started:.2f} s")
    finally:
        sql(REPLICA_PORT, "STOP SLAVE")
        sql(REPLICA_PORT, "CHANGE MASTER TO MASTER_DELAY = 0")
        sql(REPLICA_PORT, "START SLAVE")
        wait_replica_caught_up()
    eventually(lambda: replica_health.status(REPLICA).healthy, timeout=10, message="back in rotation")


def F_plus_one():
    from django.db.models import F

    return F("use_count") + 1


def test_a_replica_outage_costs_no_error_and_no_log_record(browser, template, replica_health, settings):
    from monitoring.logging_handler import build_entry
    from monitoring.models import SystemLog
    from monitoring.sinks import DatabaseSink
    from wework import shards

    settings.DATABASE_REPLICA_CHECK_INTERVAL_S = 0.5
    pages = [API, f"{API}{template.pk}/", "/api/v1/messaging/tasks/", "/api/v1/monitoring/audit-logs/",
             reverse("admin:messaging_messagetemplate_changelist"),
             reverse("admin:messaging_messagetemplate_change", args=[template.pk]),
             reverse("admin:index")]
    # Warm: the replica is in rotation and serves the pure reads.
    assert all(browser.get(p).status_code == 200 for p in pages)
    with replica_server_stopped():
        # The first requests find out (a failed read is repeated on the primary), the next
        # ones skip the replica from its health check: every answer is a 200.
        statuses = [browser.get(p).status_code for p in pages for _ in range(3)]
        assert statuses == [200] * len(statuses)
        assert not replica_health.status(REPLICA).healthy
        # Writes and the log sink never depended on the replica (the shard registry is read
        # on the primary).
        record = logging.LogRecord("topology", logging.WARNING, __file__, 1, "during the replica outage", (), None)
        entry = build_entry(record, "test")
        entry["log_uuid"] = shards.new_uuid()
        entry["trace_id"] = "replica-outage"
        DatabaseSink(retry_attempts=1).write([entry])
        response = browser.patch(f"{API}{template.pk}/", {"name": "renamed during outage"},
                                 content_type="application/json")
        assert response.status_code == 200
        # Periodic jobs that failed every 15 s with a replica down.
        from instances import tasks as instance_tasks
        from messaging import tasks as messaging_tasks

        instance_tasks.check_heartbeats()
        messaging_tasks.kick()
    rows = list(shards.iterate(SystemLog, filters={"trace_id": "replica-outage"},
                               since=timezone.now() - timezone.timedelta(days=1)))
    assert [r.message for r in rows] == ["during the replica outage"]
    eventually(lambda: replica_health.status(REPLICA).healthy, timeout=10, message="replica back")
