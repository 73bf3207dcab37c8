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
        assert sum(exported) == 15 and exported[-1] == 0
        # the first run took the oldest minute
        assert exported[0] == 5
        lines = [line for _path, body in fake.writes for line in body.splitlines()]
        assert len(lines) == len(set(lines)) == 15
    finally:
        fake.close()
