"""Storage (issue 15): the exporters' drain rate after an outage; the cold tier's size and pages.

Measured in one run on the dedicated bench database (see harness.py), MariaDB:

* drain   -- N instance metric samples (default 300,000; `--quick` 50,000) spread over the
             last 9 days (two weekly shards), left behind by an "outage": the InfluxDB
             exporter (`monitoring.exporters.export_new_metrics`, MAX_ROWS per run, batches of
             5,000 points) drains them into a local fake `/api/v2/write` endpoint that reads
             and discards each request; rows/s over the whole backlog. Baseline: the same rows
             read by raw SQL in id order, 5,000 a query, no serialisation (the floor).
* cold    -- a messages month shard of N rows (default 1,000,000; `--quick` 200,000): its size
             in the hot format, then after `demote` to the cold tier (ROW_FORMAT=COMPRESSED),
             and the same API page and admin page on the hot and on the cold table.

Run: `.venv/bin/python bench/bench_storage.py [--quick] [--part drain|cold] [--rows N]`
(BENCH_DATABASE_URL defaults to mysql://root@127.0.0.1:3306/wework_storage_bench here).
"""
import os
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCH_DATABASE_URL", "mysql://root@127.0.0.1:3306/wework_storage_bench")

from harness import Timer, bench_args, environment_line, report, save_results, setup_django


def extra_options(parser):
    parser.add_argument("--rows", type=int, default=None, help="rows of the backlog / the shard")
    parser.add_argument("--part", choices=["drain", "cold", "all"], default="all")


class DiscardingInflux:
    def __init__(self):
        self.requests = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.requests += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def make_instance():
    from accounts.models import User
    from instances.models import WeworkInstance
    from wework import ids

    user = User.objects.create(username="bench")
    return WeworkInstance.objects.create(instance_uuid=ids.new_uuid(), name="bench", created_by=user)


def load_metrics(instance, rows, start, end, batch=5000):
    from django.db import connection

    from instances.models import InstanceMonitor
    from wework import ids, shards

    step = (end - start) / rows
    pending = {}
    for i in range(rows):
        when = start + step * i
        model = shards.model_for(InstanceMonitor, when=when)
        pending.setdefault(model._meta.db_table, []).append(
            (ids.new_id(when), instance.pk, "cpu", i % 100, "%", when.replace(tzinfo=None)))
    with connection.cursor() as cursor:
        for table, values in pending.items():
            sql = (f"INSERT INTO {table} (id, instance_id, metric_name, metric_value, metric_unit, "
                   "collected_at) VALUES (%s, %s, %s, %s, %s, %s)")
            for k in range(0, len(values), batch):
                cursor.executemany(sql, values[k:k + batch])
    return sorted(pending)


def bench_drain(args):
    from django.conf import settings
    from django.core.cache import cache
    from django.db import connection
    from django.utils import timezone

    from monitoring import exporters
    from wework import shards

    rows = args.rows or (50_000 if args.quick else 300_000)
    instance = make_instance()
    now = timezone.now()
    start = now - timedelta(days=9)
    with Timer() as load_timer:
        tables = load_metrics(instance, rows, start, now - timedelta(minutes=1))
    print(f"# loaded {rows:,} samples into {', '.join(tables)} in {load_timer.seconds:.1f} s")
    fake = DiscardingInflux()
    settings.INFLUXDB = {"url": fake.url, "token": "t", "org": "o", "bucket": "b"}
    cache.set(exporters.CURSOR_KEY, {"last_id": shards.new_id(start) - 1, "seen": []})
    runs, total = 0, 0
    t0 = time.perf_counter()
    while True:
        done = exporters.export_new_metrics(now=now)
        runs += 1
        total += done
        if not done:
            break
    drain = time.perf_counter() - t0
    assert total == rows, (total, rows)
    # Baseline: the same rows by raw SQL, id order, 5,000 a query.
    t0 = time.perf_counter()
    read = 0
    with connection.cursor() as cursor:
        for table in tables:
            last = 0
            while True:
                cursor.execute(f"SELECT id, instance_id, metric_name, metric_value, metric_unit, collected_at "
                               f"FROM {table} WHERE id > %s ORDER BY id LIMIT 5000", [last])
                batch = cursor.fetchall()
                if not batch:
                    break
                read += len(batch)
                last = batch[-1][0]
    raw = time.perf_counter() - t0
    report("influx exporter drain", total / drain, "rows/s", read / raw, "rows/s (raw SQL read)",
           note=f"{rows:,} samples over 9 days, {runs} runs of <= {exporters.MAX_ROWS:,}, "
                f"{fake.requests} writes, {drain:.1f} s")


def bench_cold(args):
    raise SystemExit("the cold part is not written yet")


def main():
    args = bench_args(__doc__.splitlines()[0], extra=extra_options)
    setup_django(args)
    environment_line(args.database_url)
    if args.part in ("drain", "all"):
        bench_drain(args)
    if args.part in ("cold", "all"):
        bench_cold(args)
    save_results(args)


if __name__ == "__main__":
    main()
