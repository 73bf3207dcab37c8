"""The InfluxDB exporter of instance metrics."""
import datetime
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from instances.models import InstanceMonitor
from instances.tests.factories import WeworkInstanceFactory
from monitoring import exporters, services
from wework import shards


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
    # Shard tables outlive the flush of transactional tests: start after existing rows.
    _start_after_existing_rows()
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


def _start_after_existing_rows():
    from django.core.cache import cache

    last_id = shards.new_id()
    second = exporters._second_of(last_id)
    existing = [row.id for row in shards.iterate(
        InstanceMonitor, since=second, until=second + datetime.timedelta(seconds=2))]
    cache.set(exporters.CURSOR_KEY, {"last_id": last_id, "seen": existing})


@pytest.mark.django_db(transaction=True)
def test_influx_exporter_sends_every_sample_oldest_first_after_an_outage(settings, monkeypatch):
    """Samples made for their own time (ids interleaved within a second) and a backlog larger
    than one run: every sample is exported once, none skipped."""
    _start_after_existing_rows()
    instance = WeworkInstanceFactory()
    start = timezone.now()
    # samples of three minutes while the exporter was away, written newest first (so their
    # ids do not follow the order they were written in)
    for minute in (2, 1, 0):
        for n in range(5):
            services.record_metrics(instance, {"cpu": n}, collected_at=start + datetime.timedelta(
                minutes=minute, seconds=1 + n / 10))
    monkeypatch.setattr(exporters, "MAX_ROWS", 4)
    fake = FakeInflux()
    try:
        settings.INFLUXDB = {"url": fake.url, "token": "t", "org": "o", "bucket": "b"}
        later = start + datetime.timedelta(minutes=4)
        exported = [exporters.export_new_metrics(now=later) for _run in range(6)]
        assert exported == [4, 4, 4, 3, 0, 0]  # MAX_ROWS per run until drained
        lines = [line for _path, body in fake.writes for line in body.splitlines()]
        assert len(lines) == len(set(lines)) == 15
        stamps = [int(line.rsplit(" ", 1)[1]) for line in lines]
        assert stamps == sorted(stamps)  # oldest first
    finally:
        fake.close()


class FailingInflux(FakeInflux):
    """Answers 503 while `down` is set (an outage of the metrics store)."""

    def __init__(self):
        super().__init__()
        self.down = True
        self.refused = 0
        fake = self
        handler = self.server.RequestHandlerClass
        accept = handler.do_POST

        def do_post(request):
            if fake.down:
                fake.refused += 1
                request.rfile.read(int(request.headers.get("Content-Length", 0)))
                request.send_response(503)
                request.end_headers()
                return
            accept(request)

        handler.do_POST = do_post


def _fresh_cursor(key, when):
    """The cursor just before `when`, in shards emptied of earlier tests' rows."""
    from django.core.cache import cache

    from wework.shards import testing

    testing.drop_shard_tables()
    cache.set(key, {"last_id": shards.new_id(when) - 1, "seen": []})


def _lines(fake):
    return [line for _path, body in fake.writes for line in body.splitlines()]


@pytest.mark.django_db(transaction=True)
def test_influx_backlog_of_an_outage_over_two_weeks_drains_in_order(settings, monkeypatch,
                                                                    django_assert_max_num_queries):
    """An outage: the exporter fails and keeps its cursor, then drains the backlog (two weekly
    shards) oldest first in batches, one run after another, nothing skipped or repeated; a
    week without samples costs no query per minute."""
    now = timezone.now()
    start = now - datetime.timedelta(days=9)
    _fresh_cursor(exporters.CURSOR_KEY, start)
    instance = WeworkInstanceFactory()
    times = [start + datetime.timedelta(days=d, minutes=m) for d in (0, 8) for m in range(6)]
    for n, when in enumerate(times):
        services.record_metrics(instance, {"cpu": n}, collected_at=when)
    monkeypatch.setattr(exporters, "BATCH", 4)
    fake = FailingInflux()
    try:
        settings.INFLUXDB = {"url": fake.url, "token": "t", "org": "o", "bucket": "b"}
        with pytest.raises(Exception):
            exporters.export_new_metrics(now=now)
        assert fake.refused and not fake.writes
        fake.down = False
        with django_assert_max_num_queries(12):
            assert exporters.export_new_metrics(now=now, max_rows=8) == 8
        assert exporters.export_new_metrics(now=now, max_rows=8) == 4
        assert exporters.export_new_metrics(now=now) == 0
        lines = _lines(fake)
        assert len(lines) == len(set(lines)) == 12
        values = [float(line.split("value=")[1].split()[0]) for line in lines]
        assert values == [float(n) for n in range(12)]  # oldest first, across the two shards
    finally:
        fake.close()


@pytest.mark.django_db(transaction=True)
def test_elasticsearch_is_fed_from_the_database_and_resumes_after_an_outage(settings):
    from monitoring.models import SystemLog
    from monitoring.sinks import ElasticsearchSink
    from monitoring.tests.test_logging import FakeElasticsearch

    now = timezone.now()
    start = now - datetime.timedelta(days=2)
    _fresh_cursor(exporters.LOG_CURSOR_KEY, start)
    settings.SYSTEM_LOG_DB = True
    for n in range(7):
        shards.create(SystemLog, level="ERROR", service="web", message=f"line {n}",
                      created_at=start + datetime.timedelta(hours=6 * n))
    down = ElasticsearchSink(["http://127.0.0.1:9"], timeout=0.5)  # nothing listens there
    with pytest.raises(Exception):
        exporters.export_new_logs(now=now, sink=down)
    fake = FakeElasticsearch()
    try:
        sink = ElasticsearchSink([fake.url])
        assert exporters.export_new_logs(now=now, sink=sink, max_rows=5) == 5
        assert exporters.export_new_logs(now=now, sink=sink) == 2
        assert exporters.export_new_logs(now=now, sink=sink) == 0
        docs = [line for bulk in fake.bulks for line in bulk[1::2]]
        assert [d["message"] for d in docs] == [f"line {n}" for n in range(7)]
        ids = [a["index"]["_id"] for bulk in fake.bulks for a in bulk[0::2]]
        assert ids == [d["log_uuid"] for d in docs]
        settings.SYSTEM_LOG_ELASTICSEARCH = {"hosts": [fake.url]}
        assert exporters.elasticsearch_exports()
    finally:
        fake.close()
