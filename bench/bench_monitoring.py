"""Monitoring: logging overhead per request, and the system log admin on a big daily shard.

Measured in one run, interleaved, on the dedicated bench database (see harness.py):

* request, logging off   -- a small view (one ORM query) through the full middleware stack with
                            the in-process test client; the system log handler disabled and no
                            access record. This is the baseline.
* request, DB handler on -- the same request with the request context middleware's access
                            record and one INFO line from the view, both going through the queued
                            SystemLogHandler into today's `system_logs` shard (writer thread in
                            the same process, batches of 500).
* admin first page       -- GET the system log admin (today's shard, newest 50) on a shard of
                            1,000,000 rows (100,000 with --quick), against the raw SQL of the
                            same page through the same driver.
* admin filtered page    -- the same with `level=ERROR&service=worker` (about 1 % of the rows).

Run: `.venv/bin/python bench/bench_monitoring.py [--quick] [--rows N]`.
"""
import logging
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    Timer, bench_args, environment_line, report, save_results, setup_django, time_interleaved,
)

urlpatterns = []  # filled in main(); this module is the ROOT_URLCONF during the run


def extra_options(parser):
    parser.add_argument("--rows", type=int, default=None,
                        help="rows in the daily shard (default 1,000,000; 100,000 with --quick)")


def fill_shard(model, day_start, rows, batch=5000):
    """Raw multi-row INSERTs into the shard table the shard layer gave us."""
    from django.db import connection

    from wework import shards

    table = connection.ops.quote_name(model._meta.db_table)
    columns = ["id", "log_uuid", "level", "service", "module", "action", "message", "trace_id",
               "user_id", "instance_id", "request_method", "request_url", "response_code",
               "response_time", "created_at"]
    rnd = random.Random(7)
    levels = ["INFO"] * 90 + ["WARN"] * 8 + ["ERROR"] * 2
    services_ = ["web", "web", "worker", "beat"]
    seconds = 86_400 - 1
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql_head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    import datetime
    import uuid

    done = 0
    with connection.cursor() as cursor:
        while done < rows:
            n = min(batch, rows - done)
            values = []
            for i in range(n):
                at = day_start + datetime.timedelta(seconds=(done + i) * seconds // rows)
                level = rnd.choice(levels)
                values.extend([
                    shards.new_id(when=at), str(uuid.uuid4()), level, rnd.choice(services_),
                    "messaging", "send", f"message {done + i} sent to contact {rnd.randint(1, 9999)}",
                    uuid.uuid4().hex, rnd.randint(1, 50), rnd.randint(1, 200), "POST",
                    "/api/v1/messages/", 200 if level == "INFO" else 500, rnd.randint(1, 300),
                    at.replace(tzinfo=None) if connection.vendor == "mysql" else at,
                ])
            cursor.execute(sql_head + ", ".join([placeholders] * n), values)
            done += n
    if connection.vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE TABLE {table}")


def main():
    args = bench_args(__doc__.splitlines()[0], extra=extra_options)
    url = setup_django(args)
    rows = args.rows or (100_000 if args.quick else 1_000_000)

    from django.conf import settings
    from django.db import connection
    from django.http import JsonResponse
    from django.test import Client
    from django.test.utils import override_settings
    from django.urls import clear_url_caches, include, path
    from django.utils import timezone
    from django_otp import DEVICE_ID_SESSION_KEY

    from accounts.models import User
    from accounts.services.otp import create_confirmed_totp
    from monitoring.admin import day_bounds
    from monitoring.logging_handler import SystemLogHandler
    from monitoring.models import SystemLog
    from monitoring.sinks import DatabaseSink
    from wework import shards

    environment_line(url)
    admin = User.objects.create_superuser("bench-admin", "bench-admin@example.com", "x")
    device = create_confirmed_totp(admin)

    # --- 1. logging overhead per request ------------------------------------------------------
    handler = SystemLogHandler(level=logging.INFO, sinks=[DatabaseSink()], service="bench",
                               queue_size=10_000, batch_size=500, flush_interval=0.2)
    view_logger = logging.getLogger("bench.view")
    for name in ("wework.request", "bench.view"):
        lg = logging.getLogger(name)
        lg.handlers = [handler]
        lg.propagate = False
        lg.setLevel(logging.INFO)

    def view(request):
        view_logger.info("listed users", extra={"action": "list"})
        return JsonResponse({"users": list(User.objects.values_list("id", flat=True)[:10])})

    urlpatterns[:] = [path("bench/view/", view), path("", include("wework.urls"))]

    with override_settings(ROOT_URLCONF=__name__):
        clear_url_caches()
        client = Client()
        client.force_login(admin)
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()

        def request(enabled):
            def call():
                handler.enabled = enabled
                settings.SYSTEM_LOG_REQUESTS = enabled
                response = client.get("/bench/view/")
                assert response.status_code == 200
            return call

        stats = time_interleaved({"off": request(False), "on": request(True)},
                                 repeats=args.repeats)
        handler.enabled = True
        handler.flush(timeout=60)
        written = handler.stats()
        for name, s in stats.items():
            print(f"#   logging {name:4s} {s.summary()}")
        report("request with DB log handler", stats["on"].median_ms, "ms",
               stats["off"].median_ms, "ms (logging off)")
        report("request with DB log handler p95", stats["on"].p(95), "ms",
               stats["off"].p(95), "ms (logging off p95)")
        print(f"#   handler: {written}")

        # The cost in the caller's thread of one record (build + enqueue), 100 per sample.
        def emit_records(enabled):
            def call():
                handler.enabled = enabled
                for _ in range(100):
                    view_logger.info("listed users", extra={"action": "list"})
            return call

        emit = time_interleaved({"off": emit_records(False), "on": emit_records(True)},
                                repeats=args.repeats)
        handler.enabled = True
        handler.flush(timeout=120)
        report("one log record, caller's cost", emit["on"].median_ms * 10, "us",
               emit["off"].median_ms * 10, "us (handler disabled)")

        # --- 2. the admin listing on a big daily shard -----------------------------------------
        today = timezone.localdate()
        since, until = day_bounds(today)
        model = shards.model_for(SystemLog, when=since)
        with Timer() as fill:
            fill_shard(model, since, rows)
        print(f"# filled {model._meta.db_table} with {rows} rows in {fill.seconds:.1f} s "
              f"({rows / fill.seconds:,.0f} rows/s)")

        table = connection.ops.quote_name(model._meta.db_table)
        cols = ("id, created_at, level, service, module, action, message, trace_id, user_id, "
                "instance_id, request_method, request_url, response_code, response_time")
        low, high = shards.id_bounds(since=since, until=until)

        def raw(where="", params=()):
            sql = (f"SELECT {cols} FROM {table} WHERE id >= %s AND id < %s {where} "
                   f"ORDER BY id DESC LIMIT 51")

            def call():
                with connection.cursor() as cursor:
                    cursor.execute(sql, (low, high, *params))
                    return cursor.fetchall()
            return call

        admin_url = "/admin/monitoring/systemlog/"

        def page(query):
            def call():
                response = client.get(admin_url, query)
                assert response.status_code == 200, response.status_code
                return response
            return call

        first = page({"day": today.isoformat()})
        filtered = page({"day": today.isoformat(), "level": "ERROR", "service": "worker"})
        assert b"message" in first().content and b"ERROR" in filtered().content
        repeats = max(20, args.repeats // 4)
        stats = time_interleaved({
            "raw_first": raw(), "admin_first": first,
            "raw_filtered": raw("AND level = %s AND service = %s", ("ERROR", "worker")),
            "admin_filtered": filtered,
        }, repeats=repeats)
    for name, s in stats.items():
        print(f"#   {name:15s} {s.summary()}")
    report(f"system log admin first page ({rows:,} rows)", stats["admin_first"].median_ms, "ms",
           stats["raw_first"].median_ms, "ms (raw SQL page)")
    report(f"system log admin filtered page ({rows:,} rows)",
           stats["admin_filtered"].median_ms, "ms", stats["raw_filtered"].median_ms,
           "ms (raw SQL page)")
    handler.close()
    print(f"# results: {save_results(args)}")


if __name__ == "__main__":
    main()
