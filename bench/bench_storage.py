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

from harness import (
    Timer, bench_args, environment_line, report, save_results, setup_django, time_interleaved,
)


def extra_options(parser):
    parser.add_argument("--rows", type=int, default=None, help="rows of the backlog / the shard")
    parser.add_argument("--part", choices=["drain", "cold", "all"], default="all")
    parser.add_argument("--no-pages", action="store_true",
                        help="cold part: skip the API and admin month pages (see bench_cold)")


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


def table_size(table):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE TABLE {table}")
        cursor.fetchall()
        cursor.execute("SELECT data_length + index_length FROM information_schema.tables "
                       "WHERE table_schema = DATABASE() AND table_name = %s", [table])
        return int(cursor.fetchone()[0])


def file_size(table):
    """The .ibd file's allocated size (what the disk holds), via information_schema."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT allocated_size FROM information_schema.innodb_sys_tablespaces "
                       "WHERE name = CONCAT(DATABASE(), '/', %s)", [table])
        row = cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else None


def bench_cold(args):
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from accounts.models import User
    from bench_shards import drop_secondary_indexes, add_back_indexes, load, make_accounts
    from messaging.models import Message
    from wework import shards
    from wework.shards import ddl
    from wework.shards.conf import period_of
    from wework.testing.fixtures import login_verified

    rows = args.rows or (200_000 if args.quick else 1_000_000)
    # Two months with the same rows: one stays hot, the other goes to the cold tier; the pages
    # are timed interleaved on both (the same load on the machine for either).
    hot_period = period_of("month", timezone.now()).previous().previous()
    cold_period = hot_period.previous()
    from contacts.models import WeworkAccount

    tables = {}
    convert = None
    reused = args.reuse_db and WeworkAccount.objects.exists()
    accounts = (list(WeworkAccount.objects.order_by("pk").values_list("pk", flat=True)) if reused
                else make_accounts())
    for name, period in (("hot", hot_period), ("cold", cold_period)):
        model = shards.model_for(Message, when=period.start + timedelta(days=1))
        tables[name] = model._meta.db_table
        if reused and model._base_manager.exists():
            print(f"# reusing {tables[name]} ({ddl.row_estimate(tables[name]):,} rows, estimate)")
            continue
        drop_secondary_indexes(model)
        with Timer() as load_timer:
            load(tables[name], period.start, period.end, rows, accounts)
        add_back_indexes(model)
        print(f"# loaded {rows:,} messages into {tables[name]} in {load_timer.seconds:.1f} s")
    if ddl.row_format(tables["cold"]) != "Compressed":
        with Timer() as convert:
            ddl.to_cold_format(tables["cold"])
    fmt = ddl.row_format(tables["cold"])
    assert fmt == "Compressed", fmt

    admin = (User.objects.filter(username="bench-admin").first()
             or User.objects.create(username="bench-admin", email="bench-admin@example.com", is_superuser=True))
    client = Client()
    login_verified(client, admin)
    account = accounts[0]

    def pages(period):
        api_url = reverse("api:message-list") + f"?month={period.suffix}"
        admin_url = reverse("admin:messaging_message_changelist") + f"?month={period.suffix}"
        last_id = shards.paginate(Message, since=period.start, until=period.end,
                                  filters={"account_id": account}, limit=50).items[-1].id

        def page_api():
            response = client.get(api_url)
            assert response.status_code == 200, response.status_code

        def page_admin():
            response = client.get(admin_url)
            assert response.status_code == 200, response.status_code

        def page_account():
            return shards.paginate(Message, since=period.start, until=period.end,
                                   filters={"account_id": account}, limit=50)

        def deep_get():
            return shards.get(Message, last_id)

        return {"api": page_api, "admin": page_admin, "account": page_account, "get": deep_get}

    fns = {}
    # --no-pages: the month pages of the API and admin join wework_accounts and scan the whole
    # month on main (about 90 s a page at 1,000,000 rows, hot or cold alike; the scale branch's
    # page without the join fixes that): time only the shard layer's page and get then.
    kinds = ("account", "get") if args.no_pages else ("api", "admin", "account", "get")
    for name, period in (("hot", hot_period), ("cold", cold_period)):
        for kind, fn in pages(period).items():
            if kind in kinds:
                fns[f"{kind}-{name}"] = fn
    stats = time_interleaved(fns, repeats=args.repeats)
    mib = 1024 * 1024
    hot_size, cold_size = table_size(tables["hot"]), table_size(tables["cold"])
    report(f"cold shard size ({fmt})", cold_size / mib, "MiB", hot_size / mib, "MiB (hot, DYNAMIC)",
           note=f"{rows:,} rows each, data+index per information_schema")
    hot_file, cold_file = file_size(tables["hot"]), file_size(tables["cold"])
    if hot_file and cold_file:
        report("cold shard .ibd file", cold_file / mib, "MiB", hot_file / mib, "MiB (hot)")
    if convert is not None:
        report("hot -> cold rebuild", convert.seconds, "s", note=f"{rows:,} rows, ALTER .. ROW_FORMAT")
    for kind, label in (("api", "API messages page (month)"), ("admin", "admin messages changelist"),
                        ("account", "shards.paginate one account"), ("get", "shards.get by id")):
        if f"{kind}-cold" not in stats:
            continue
        report(f"{label} on the cold shard", stats[f"{kind}-cold"].median_ms, "ms",
               stats[f"{kind}-hot"].median_ms, "ms (hot shard)")


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
