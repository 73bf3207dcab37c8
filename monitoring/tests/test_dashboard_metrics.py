"""The dashboard (admin home page) with a pinned query count; metrics into the weekly shards,
the metric threshold rule, the InfluxDB exporter against a local fake endpoint."""
import datetime
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone

from contacts.models import AccountStatus
from contacts.tests.factories import WeworkAccountFactory
from instances.models import InstanceStatus
from instances.tests.factories import UserFactory, WeworkInstanceFactory
from monitoring import exporters, services
from monitoring.models import AlertRecord, RuleType
from monitoring.tests.factories import AlertRuleFactory

# The dashboard's own queries (instances, accounts, message shards, tasks, alerts x2) plus the
# admin page itself (session, user, OTP device, permissions, app list): pinned.
DASHBOARD_MAX_QUERIES = 12  # measured: 9


@pytest.mark.django_db
def test_dashboard_renders_within_a_pinned_query_count(admin_client,
                                                       django_assert_max_num_queries):
    for status in (InstanceStatus.ONLINE, InstanceStatus.ONLINE, InstanceStatus.OFFLINE):
        WeworkInstanceFactory(status=status)
    WeworkAccountFactory(status=AccountStatus.BANNED)
    services.fire_alert("disk.full", source_type="host", source_id="db1", title="Disk full db1",
                        message="m", level="CRITICAL")
    with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES):
        response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="dashboard"' in body and "Disk full db1" in body
    assert "vendor/chartjs/chart.umd.js" in body and 'id="dashboard-data"' in body
    dash = response.context["dash"]
    # (the account's factory brings its own online instance)
    assert dash["instances_online"] == 3 and dash["instances_offline"] == 1
    assert {a["status"]: a["count"] for a in dash["accounts"]}[AccountStatus.BANNED] == 1
    assert dash["active_alert_total"] == 1
    # Cached: the second rendering runs none of the dashboard's queries.
    with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES - 6):
        assert admin_client.get(reverse("admin:index")).status_code == 200


@pytest.mark.django_db
def test_dashboard_hidden_without_permission(client):
    user = UserFactory()
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200 and b'id="dashboard"' not in response.content


def test_chartjs_is_served_from_static_with_its_licence():
    assert finders.find("vendor/chartjs/chart.umd.js")
    assert finders.find("vendor/chartjs/LICENSE.md")
    assert finders.find("monitoring/dashboard.js")


@pytest.mark.django_db(transaction=True)
def test_metric_rule_over_weekly_shards_fires_and_clears():
    instance = WeworkInstanceFactory()
    rule = AlertRuleFactory(name="cpu.hot", rule_type=RuleType.METRIC_THRESHOLD,
                            metric_name="cpu", threshold_value=Decimal("90"),
                            duration_seconds=120, window_seconds=300)
    now = timezone.now()
    for seconds, value in ((100, 95), (60, 97), (10, 99)):
        services.record_metrics(instance, {"cpu": value, "memory": 512, "bogus": "n/a"},
                                now - datetime.timedelta(seconds=seconds))
    assert services.evaluate_rule(rule, now) == (1, 0)
    record = AlertRecord.objects.get(rule_name="cpu.hot")
    assert record.instance_id == instance.pk and record.metric_value == Decimal("99.0000")
    # One sample below the threshold within the duration: the condition no longer holds.
    services.record_metrics(instance, {"cpu": 40}, now - datetime.timedelta(seconds=5))
    assert services.evaluate_rule(rule, now) == (0, 1)


class FakeInflux:
    def __init__(self):
        self.writes = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    import gzip

                    body = gzip.decompress(body)
                fake.writes.append((self.path, body.decode()))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.django_db(transaction=True)
def test_influx_exporter_is_off_by_default_and_writes_points(settings):
    settings.INFLUXDB = {"url": ""}
    assert exporters.export_new_metrics() == 0
    from django.core.cache import cache

    from wework import shards

    # Shard tables outlive the flush of transactional tests: start after existing rows.
    cache.set(exporters.CURSOR_KEY, shards.new_id())
    instance = WeworkInstanceFactory()
    services.record_metrics(instance, {"cpu": 12.5, "queue_depth": 3})
    fake = FakeInflux()
    try:
        settings.INFLUXDB = {"url": fake.url, "token": "t", "org": "o", "bucket": "b"}
        assert exporters.export_new_metrics() == 2
        assert len(fake.writes) == 1
        path, body = fake.writes[0]
        assert path.startswith("/api/v2/write") and "bucket=b" in path
        assert f"instance_metric,instance_id={instance.pk},metric=cpu" in body
        assert "value=12.5" in body
        # Nothing new: nothing written again.
        assert exporters.export_new_metrics() == 0
    finally:
        fake.close()


@pytest.mark.django_db
def test_dashboard_and_alert_api(client, grant):
    services.fire_alert("a", source_type="x", source_id="1", title="open one", message="m")
    closed, _created = services.fire_alert("b", source_type="x", source_id="2", title="closed",
                                           message="m")
    services.resolve(closed, None, "done")
    user = grant(UserFactory(), "monitoring.view_alertrecord")
    client.force_login(user)
    data = client.get(reverse("api:monitoring-dashboard")).json()
    assert data["active_alert_total"] == 1 and len(data["messages_per_hour"]) >= 1
    listed = client.get(reverse("api:alertrecord-list"), {"open": "true"}).json()
    assert [r["alert_title"] for r in listed["results"]] == ["open one"]
    outsider = UserFactory()
    client.force_login(outsider)
    assert client.get(reverse("api:monitoring-dashboard")).status_code == 403


def test_beat_schedule_names_registered_tasks():
    import monitoring.tasks  # noqa: F401 - registers the shared tasks
    from monitoring.schedules import BEAT_SCHEDULE
    from wework.celery import app

    for entry in BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, entry["task"]


def test_celery_root_logger_keeps_the_system_log_handler():
    import logging

    from monitoring.logging_handler import SystemLogHandler
    from monitoring.signals import _keep_system_log_handler

    handler = SystemLogHandler(sinks=[])
    logger = logging.Logger("celery-root")
    _keep_system_log_handler(logger=logger)
    assert handler in logger.handlers
    SystemLogHandler._instances.remove(handler)


@pytest.mark.django_db(transaction=True)
def test_dashboard_counts_todays_messages_per_hour():
    from messaging.models import Message
    from wework import shards

    account = WeworkAccountFactory()
    before = services.dashboard_data(use_cache=False)["messages_today"]
    now = timezone.now()
    base = {"account_id": account.pk, "chat_type": 1, "chat_wxid": "wxid_x",
            "message_type": "text", "message_content": "hi", "send_time": now}
    shards.bulk_create(Message, [dict(base, created_at=now) for _ in range(3)])
    data = services.dashboard_data(use_cache=False)
    assert data["messages_today"] == before + 3
    local_hour = timezone.localtime(now).hour
    assert len(data["messages_per_hour"]) == local_hour + 1
    assert data["messages_per_hour"][local_hour] >= 3


@pytest.mark.django_db(transaction=True)
def test_shard_rotation_rule_fires_when_shards_are_missing_and_clears():
    from wework import shards
    from wework.shards.conf import all_configs

    rule = AlertRuleFactory(name="shards.rotation", rule_type=RuleType.SHARD_ROTATION,
                            metric_name=None, threshold_value=None)
    now = timezone.now()
    later = now + datetime.timedelta(days=400)  # no shard exists that far ahead
    fired, _resolved = services.evaluate_rule(rule, later)
    assert fired >= 1
    assert AlertRecord.objects.filter(rule_name="shards.rotation",
                                      source_id="monitoring.SystemLog").exists()
    # Shards for today and tomorrow exist after a rotation: the alerts clear.
    for conf in all_configs().values():
        if conf.enabled and conf.is_time:
            for when in (now, now + datetime.timedelta(days=1)):
                shards.model_for(conf.model, when=when)
    services.evaluate_rule(rule, now)
    assert not AlertRecord.objects.filter(rule_name="shards.rotation",
                                          status__in=services.OPEN_STATUSES).exists()


@pytest.mark.django_db
def test_dashboard_api_of_users_scoped_to_one_instance_covers_that_instance(client, grant):
    """Per-instance grants must not reveal the figures of every instance (F3): the dashboard
    covers the granted instance only (more in test_dashboard_scoped.py)."""
    from accounts.services.permissions import grant_instance

    mine, other = WeworkInstanceFactory(), WeworkInstanceFactory()
    services.fire_alert("a", source_type="instance", source_id=str(other.pk), title="other's alert",
                        message="m")
    user = UserFactory()
    grant_instance(user, mine, ["monitoring.view_alertrecord", "instances.view_weworkinstance"])
    client.force_login(user)
    response = client.get(reverse("api:monitoring-dashboard"))
    assert response.status_code == 200
    assert response.json()["instance_ids"] == [mine.pk]
    assert b"other's alert" not in response.content


@pytest.mark.django_db
def test_dashboard_labels_follow_the_language_of_each_request():
    from django.core.cache import cache
    from django.utils import translation

    cache.clear()
    services.fire_alert("a", source_type="x", source_id="1", title="t", message="m",
                        level="ERROR")
    with translation.override("zh-hans"):
        chinese = services.dashboard_data()
    with translation.override("en"):
        english = services.dashboard_data()  # cached figures, but not the Chinese labels
    assert english["instances"][0]["label"] == "Offline"
    assert chinese["instances"][0]["label"] != "Offline"
    assert english["active_alerts"][0]["level_label"] == "Error"
    assert english["active_alerts"][0]["status_label"] == "Active"
    assert chinese["active_alerts"][0]["status_label"] != "Active"
