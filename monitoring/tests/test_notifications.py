"""Notification delivery to a local HTTP endpoint (a tiny server in the test): success, retry
on failure, an unreachable endpoint that never blocks evaluation, the robot rate limit."""
import json
import socket
import threading
import zoneinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from monitoring import delivery, notifications, services
from monitoring.models import AlertRecord, RuleType
from monitoring.tests.factories import AlertRuleFactory

pytestmark = pytest.mark.django_db


class Robot:
    """A fake WeCom group robot: records posts; answers from a script of status codes."""

    def __init__(self, script=()):
        self.posts = []
        self.script = list(script)
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                robot.posts.append(json.loads(body))
                status = robot.script.pop(0) if robot.script else 200
                payload = {"errcode": 0, "errmsg": "ok"} if status == 200 else {
                    "errcode": 500, "errmsg": "boom"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/cgi-bin/webhook/send?key=k"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def robot():
    servers = []

    def make(script=()):
        server = Robot(script)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def fire(django_capture_on_commit_callbacks, rule_name="cpu.hot"):
    with django_capture_on_commit_callbacks(execute=True):
        record, created = services.fire_alert(rule_name, source_type="instance", source_id="7",
                                              title="CPU hot", message="cpu 99%",
                                              metric_name="cpu", metric_value=99,
                                              threshold_value=90)
    assert created
    record.refresh_from_db()
    return record


def test_webhook_delivery_to_local_endpoint(robot, settings, django_capture_on_commit_callbacks):
    server = robot()
    settings.ALERT_WECOM_ROBOTS = {"ops": server.url}
    AlertRuleFactory(name="cpu.hot", notify_channels={"wecom": ["ops"],
                                                      "email": ["ops@example.com"]})
    record = fire(django_capture_on_commit_callbacks)
    assert record.notification_sent and record.notification_sent_at is not None
    assert len(server.posts) == 1
    post = server.posts[0]
    assert post["msgtype"] == "markdown" and "CPU hot" in post["markdown"]["content"]
    assert len(mail.outbox) == 1 and "CPU hot" in mail.outbox[0].subject
    # A second firing of the same open alert notifies nobody again.
    services.fire_alert("cpu.hot", source_type="instance", source_id="7", title="CPU hot",
                        message="cpu 100%")
    assert len(server.posts) == 1


def test_resolution_is_notified_in_the_platforms_language_and_time_zone(
        robot, settings, django_capture_on_commit_callbacks):
    server = robot()
    settings.ALERT_WECOM_ROBOTS = {"ops": server.url}
    settings.LANGUAGE_CODE = "zh-hans"
    settings.TIME_ZONE = "Asia/Shanghai"
    AlertRuleFactory(name="cpu.hot", notify_channels={"wecom": ["ops"], "email": ["ops@example.com"]})
    record = fire(django_capture_on_commit_callbacks)
    raised = server.posts[0]["markdown"]["content"]
    local = timezone.localtime(record.created_at, zoneinfo.ZoneInfo("Asia/Shanghai"))
    assert "规则" in raised and local.strftime("%Y-%m-%d %H:%M") in raised
    with django_capture_on_commit_callbacks(execute=True):
        assert services.resolve_alert("cpu.hot", source_type="instance", source_id="7") == 1
    assert len(server.posts) == 2
    resolved = server.posts[1]["markdown"]["content"]
    assert "已恢复" in resolved and "CPU hot" in resolved
    assert len(mail.outbox) == 2 and "已恢复" in mail.outbox[1].subject
    # an alert nobody was told of resolves silently
    other = services.fire_alert("quiet.rule", source_type="instance", source_id="8", title="t", message="m",
                                notify=False)[0]
    with django_capture_on_commit_callbacks(execute=True):
        services.resolve_alert("quiet.rule", source_type="instance", source_id="8")
    assert len(server.posts) == 2 and other.pk


def test_failed_delivery_is_retried_until_it_succeeds(robot, settings,
                                                      django_capture_on_commit_callbacks):
    server = robot(script=[500, 502])
    settings.ALERT_WECOM_ROBOTS = {"ops": server.url}
    AlertRuleFactory(name="cpu.hot", notify_channels={"wecom": ["ops"]})
    record = fire(django_capture_on_commit_callbacks)
    assert len(server.posts) == 3  # two failures, then delivered
    assert record.notification_sent


def test_unreachable_endpoint_is_retried_recorded_and_never_blocks(settings, caplog):
    settings.ALERT_WECOM_ROBOTS = {"ops": f"http://127.0.0.1:{free_port()}/send?key=x"}
    rule = AlertRuleFactory(name="cpu.hot", rule_type=RuleType.ACCOUNT_STATUS, metric_name=None,
                            notify_channels={"wecom": ["ops"]})
    record, _created = services.fire_alert("cpu.hot", source_type="instance", source_id="1",
                                           title="t", message="m")
    with caplog.at_level("WARNING", logger="monitoring.delivery"):
        from monitoring.tasks import deliver_notification

        result = deliver_notification.apply(args=(record.pk, "wecom", "ops"))
    assert result.failed()  # gave up after the retries, without raising into the caller
    attempts = [r for r in caplog.records if "notification to robot ops failed" in r.getMessage()]
    assert len(attempts) == 6  # first try + 5 retries
    assert "giving up" in attempts[-1].getMessage()
    record.refresh_from_db()
    assert not record.notification_sent
    # Evaluation itself only enqueues: it returns normally whatever the endpoint does.
    assert services.evaluate_rule(rule) is not None


def test_robot_rate_limit_parks_and_merges(robot, settings, monkeypatch):
    # One fixed minute (an injected clock): on a loaded machine the 25 deliveries may straddle
    # a minute boundary of the wall clock.
    minute = [29_000_000]
    monkeypatch.setattr(notifications, "_minute", lambda now=None: minute[0])
    server = robot()
    settings.ALERT_WECOM_ROBOTS = {"ops": server.url}
    settings.ALERT_WECOM_ROBOT_LIMIT_PER_MINUTE = 20
    AlertRuleFactory(name="many", notify_channels={"wecom": ["ops"]})
    records = [
        services.fire_alert("many", source_type="instance", source_id=str(i), title=f"A{i}",
                            message="m", notify=False)[0]
        for i in range(25)
    ]
    outcomes = [delivery.deliver(r.pk, "wecom", "ops") for r in records]
    assert outcomes.count("sent") == 20 and outcomes.count("parked") == 5
    assert len(server.posts) == 20
    assert AlertRecord.objects.filter(notification_sent=True).count() == 25
    # Next minute: the parked five go out as one merged message.
    minute[0] += 1
    assert delivery.flush_parked("ops") == 5
    assert len(server.posts) == 21
    merged = server.posts[-1]["markdown"]["content"]
    assert "5 alerts" in merged and "A24" in merged and "A20" in merged
