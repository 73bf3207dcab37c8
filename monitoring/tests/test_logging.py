"""System logs: the queued handler (storm, overflow, failures), trace ids, the database sink into
the daily shard, the admin listing and the Elasticsearch sink against a local fake endpoint."""
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db.models import Q
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from monitoring import context
from monitoring.logging_handler import SystemLogHandler, build_entry, level_name
from monitoring.middleware import RequestContextMiddleware
from wework import shards


class ListSink:
    """Collects what it is given; `gate` (an Event) holds every write until it is set, a database
    that does not answer."""

    def __init__(self, gate=None, fail=False):
        self.entries = []
        self.gate = gate
        self.fail = fail

    def write(self, entries):
        if self.gate is not None:
            self.gate.wait(30)
        if self.fail:
            raise RuntimeError("sink down")
        self.entries.extend(entries)


def make_logger(handler, name="storm"):
    logger = logging.getLogger(f"tests.monitoring.{name}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_storm_of_10000_records_is_bounded_and_counted_while_the_sink_hangs():
    gate = threading.Event()
    sink = ListSink(gate=gate)  # a database that does not answer until the gate opens
    handler = SystemLogHandler(queue_size=1000, batch_size=200, flush_interval=0.05,
                               report_interval=0.0, sinks=[sink], service="test")
    logger = make_logger(handler)
    # Emitting never waits for the sink: all 10,000 calls return while it hangs (a blocking
    # emit would hang here; no wall-clock bound is needed to see it).
    for i in range(10_000):
        logger.info("storm %d", i)
    stats = handler.stats()
    assert stats["queued"] <= 1000  # memory bounded by the queue size
    assert stats["dropped"] > 0 and not sink.entries
    gate.set()
    handler.close()
    stats = handler.stats()
    stored = [e for e in sink.entries if e["action"] != "log_overflow"]
    assert stats["dropped"] > 0
    assert len(stored) + stats["dropped"] == 10_000
    reports = [e for e in sink.entries if e["action"] == "log_overflow"]
    assert reports and sum(r["context"]["dropped"] for r in reports) == stats["dropped"]
    assert reports[0]["level"] == "WARN"


def test_failing_sink_is_counted_never_raised():
    handler = SystemLogHandler(queue_size=100, flush_interval=0.01, sinks=[ListSink(fail=True)])
    logger = make_logger(handler, "failing")
    logger.error("boom")  # must not raise
    handler.flush()
    assert handler.stats()["failed"] == 1
    handler.close()


def test_entry_is_structured_with_request_context():
    actor = context.Actor(source="api", ip="10.1.2.3", user_agent="ua", request_id="t" * 32,
                          span_id="s" * 16, request_url="/api/v1/x?y=1", request_method="POST",
                          instance_id=42)
    logger = logging.getLogger("instances.services")
    record = logger.makeRecord("instances.services", logging.ERROR, __file__, 10, "failed %s",
                               ("x",), None, extra={"action": "restart", "attempt": 2})
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    with context.use_actor(actor):
        entry = build_entry(record, "web")
    assert entry["level"] == "ERROR" and entry["module"] == "instances"
    assert entry["action"] == "restart" and entry["message"] == "failed x"
    assert entry["trace_id"] == "t" * 32 and entry["span_id"] == "s" * 16
    assert entry["instance_id"] == 42 and entry["ip_address"] == "10.1.2.3"
    assert entry["request_method"] == "POST" and entry["context"]["attempt"] == 2
    assert "ValueError: bad" in entry["error_stack"]
    assert level_name(logging.CRITICAL) == "FATAL" and level_name(logging.WARNING) == "WARN"


@pytest.mark.parametrize("headers, expected", [
    ({"HTTP_X_REQUEST_ID": "abc-12345678"}, "abc-12345678"),
    ({"HTTP_TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
     "4bf92f3577b34da6a3ce929d0e0e4736"),
])
def test_incoming_trace_ids_are_kept(headers, expected):
    seen = {}

    def view(request):
        from django.http import HttpResponse

        seen["actor"] = context.current()
        return HttpResponse("ok")

    response = RequestContextMiddleware(view)(RequestFactory().get("/x", **headers))
    assert response["X-Request-ID"] == expected
    assert seen["actor"].request_id == expected
    assert context.current() is None  # reset after the request


@pytest.mark.parametrize("headers", [
    {"HTTP_X_REQUEST_ID": "bad id with spaces"},
    {"HTTP_X_REQUEST_ID": "x" * 200},
    {"HTTP_TRACEPARENT": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
    {"HTTP_TRACEPARENT": "garbage"},
    {},
])
def test_invalid_trace_ids_are_replaced(headers):
    from django.http import HttpResponse

    response = RequestContextMiddleware(lambda r: HttpResponse("ok"))(
        RequestFactory().get("/x", **headers))
    assert len(response["X-Request-ID"]) == 32
    int(response["X-Request-ID"], 16)


@pytest.mark.django_db(transaction=True)
def test_database_sink_writes_the_daily_shard_and_admin_lists_it(verified_admin_client):
    from monitoring.models import SystemLog
    from monitoring.sinks import DatabaseSink

    handler = SystemLogHandler(flush_interval=0.01, sinks=[DatabaseSink()])
    logger = make_logger(handler, "db")
    actor = context.Actor(source="api", request_id="trace-for-db-test", ip="127.0.0.1")
    with context.use_actor(actor):
        logger.warning("disk almost full on %s", "db1", extra={"action": "disk_check"})
    logger.info("plain info line")
    handler.flush()
    assert handler.stats()["written"] == 2 and handler.stats()["failed"] == 0
    today = timezone.localdate()
    from monitoring.admin import day_bounds

    since, until = day_bounds(today)
    page = shards.paginate(SystemLog, since=since, until=until,
                           filters=Q(trace_id="trace-for-db-test"))
    assert len(page.items) == 1
    row = page.items[0]
    assert row.level == "WARN" and row.message == "disk almost full on db1"
    assert row.action == "disk_check" and row.log_uuid

    url = reverse("admin:monitoring_systemlog_changelist")
    response = verified_admin_client.get(url)
    assert response.status_code == 200 and b"disk almost full" in response.content
    response = verified_admin_client.get(url, {"day": today.isoformat(), "level": "INFO"})
    assert b"plain info line" in response.content and b"disk almost full" not in response.content
    response = verified_admin_client.get(url, {"level": "NOPE"})
    assert response.status_code == 200 and b"errornote" in response.content
    detail = verified_admin_client.get(reverse("admin:monitoring_systemlog_change", args=[row.id]))
    assert detail.status_code == 200 and b"disk almost full" in detail.content
    api = verified_admin_client.get(reverse("api:systemlog-list"), {"trace_id": "trace-for-db-test"})
    assert api.status_code == 200 and len(api.json()["results"]) == 1
    handler.close()


class FakeElasticsearch:
    """Answers the bulk API like Elasticsearch 8 (with the product header the client checks)."""

    def __init__(self):
        self.bulks = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                fake.bulks.append(lines)
                items = [{"index": {"_index": a["index"]["_index"], "_id": a["index"]["_id"],
                                    "status": 201, "result": "created"}}
                         for a in lines[0::2]]
                self._reply({"took": 1, "errors": False, "items": items})

            do_PUT = do_POST  # the client sends bulk requests with PUT

            def do_GET(self):
                self._reply({"version": {"number": "8.19.0"}, "tagline": "You Know, for Search"})

            def do_HEAD(self):
                self._reply({})

            def _reply(self, payload):
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_elasticsearch_sink_against_a_local_fake_endpoint():
    from monitoring.sinks import ElasticsearchSink

    fake = FakeElasticsearch()
    try:
        sink = ElasticsearchSink([fake.url], index_prefix="wework-logs")
        handler = SystemLogHandler(flush_interval=0.01, sinks=[sink])
        logger = make_logger(handler, "es")
        logger.error("to elasticsearch")
        handler.flush()
        handler.close()
        assert handler.stats()["failed"] == 0
        assert len(fake.bulks) == 1
        action, doc = fake.bulks[0][0], fake.bulks[0][1]
        today = timezone.now().strftime("%Y.%m.%d")
        assert action["index"]["_index"] == f"wework-logs-{today}"
        assert doc["message"] == "to elasticsearch" and doc["level"] == "ERROR"
        assert "@timestamp" in doc and action["index"]["_id"] == doc["log_uuid"]
    finally:
        fake.close()


def test_sinks_from_settings_respect_configuration(settings):
    from monitoring.sinks import DatabaseSink, ElasticsearchSink, sinks_from_settings

    settings.SYSTEM_LOG_DB = True
    settings.SYSTEM_LOG_ELASTICSEARCH = {"hosts": []}
    assert [type(s) for s in sinks_from_settings()] == [DatabaseSink]
    # With the database sink, Elasticsearch is fed from the database (exporters.export_new_logs).
    settings.SYSTEM_LOG_ELASTICSEARCH = {"hosts": ["http://127.0.0.1:9"]}
    assert [type(s) for s in sinks_from_settings()] == [DatabaseSink]
    settings.SYSTEM_LOG_DB = False
    settings.SYSTEM_LOG_ELASTICSEARCH = {"hosts": ["http://127.0.0.1:9"]}
    assert [type(s) for s in sinks_from_settings()] == [ElasticsearchSink]
