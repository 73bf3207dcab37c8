"""Instances: contact sync from the simulator, and webhook intake, each against a raw baseline.

* sync        -- `contacts.services.sync_account(scopes=("contacts",))` of one account holding
                 50,000 contacts (5,000 with --quick) in the instance simulator (a real HTTP
                 server in this process), pages of 500, one transaction per page, bulk upsert into
                 the instance's shard, then the sweep and the recount. Baseline: the same rows,
                 already fetched, written with raw multi-row INSERTs (500 rows a statement, one
                 commit per statement) through the same driver into a copy of the shard table.
                 The fetch alone (HTTP + JSON + protocol validation) is reported too. Between
                 the two syncs one contact in 20 is renamed in the simulator (a mostly unchanged
                 address book); the re-sync's baseline still writes every row (all updates).
* webhook     -- signed `instance.heartbeat` deliveries POSTed to
                 /api/v1/instances/<uuid>/events of ONE web process (Django's threaded WSGI
                 server in a subprocess, DEBUG off, Celery publishing to the broker without a
                 worker: the intake only checks, stores and enqueues). Baseline: a bare Django
                 view in the same process that does one INSERT of the body. 4 client threads
                 with keep-alive connections.

Run: `.venv/bin/python bench/bench_instances.py [--quick]`; set BENCH_REDIS_URL to a Redis db
for the Celery broker and the cache (else the embedded filesystem broker is used).
"""
import datetime
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    Timer, bench_args, environment_line, report, save_results, setup_django,
)

BARE_TABLE = "bench_bare_events"
SECRET = "bench-webhook-secret"
urlpatterns = []  # the ROOT_URLCONF of the served process (see serve())


def _extra(parser):
    parser.add_argument("--serve", type=int, default=None, help=argparse_hidden())
    parser.add_argument("--contacts", type=int, default=None)
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--only", choices=("sync", "webhook"), default=None)
    parser.add_argument("--profile", metavar="FILE", default=None,
                        help="cProfile the two syncs into FILE")


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


# --- sync ------------------------------------------------------------------------------------


def _raw_upsert_baseline(connection, model, rows, update_fields):
    """Raw multi-row `INSERT ... ON DUPLICATE KEY UPDATE` of `rows` (500 a statement, one
    commit each) into a copy of the shard table: the first pass inserts, the second updates.
    Values are prepared before the clock starts. Returns (insert_seconds, update_seconds)."""
    from django.db import transaction

    from harness import Timer
    from wework import shards

    table = model._meta.db_table
    copy = f"{table}_rawcopy"
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {qn(copy)}")
        if connection.vendor == "mysql":
            cursor.execute(f"CREATE TABLE {qn(copy)} LIKE {qn(table)}")
        else:
            cursor.execute(f"CREATE TABLE {qn(copy)} AS SELECT * FROM {qn(table)} WHERE 0")
    fields = [f for f in model._meta.concrete_fields]
    columns = ", ".join(qn(f.column) for f in fields)
    prepared = []
    for row in rows:
        values = []
        for f in fields:
            if f.primary_key:
                values.append(shards.new_id())
                continue
            value = row.get(f.attname, row.get(f.name, f.get_default()))
            values.append(f.get_db_prep_save(value, connection))
        prepared.append(values)
    update_columns = [model._meta.get_field(name).column for name in update_fields]
    tail = " ON DUPLICATE KEY UPDATE " + ", ".join(
        f"{qn(c)} = VALUES({qn(c)})" for c in update_columns)
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    # the second pass writes a later sync stamp, as a re-sync does (an unchanged row would be
    # left alone by MariaDB)
    later = [i for i, f in enumerate(fields) if f.attname in ("last_sync_time", "updated_at")]
    passes = [prepared, [list(r) for r in prepared]]
    for r in passes[1]:
        for i in later:
            later_value = datetime.datetime.fromisoformat(r[i]) + datetime.timedelta(seconds=1)
            r[i] = str(later_value)  # the naive UTC text the backend wrote
    seconds = []
    for prepared in passes:
        with Timer() as raw:
            for start in range(0, len(prepared), 500):
                chunk = prepared[start:start + 500]
                sql = (f"INSERT INTO {qn(copy)} ({columns}) VALUES "
                       + ", ".join([placeholders] * len(chunk)) + tail)
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(sql, [v for r in chunk for v in r])
        seconds.append(raw.seconds)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {qn(copy)}")
        assert cursor.fetchone()[0] == len(rows)
        cursor.execute(f"DROP TABLE {qn(copy)}")
    return seconds


def bench_sync(args, admin):
    from django.db import connection, transaction

    from contacts import services as contact_services
    from contacts.models import Contact
    from contacts.services.rows import CONTACT_UPDATE_FIELDS
    from instances import services
    from simulator.server import Simulator
    from wework import shards

    count = args.contacts or (5_000 if args.quick else 50_000)
    sim = Simulator(port=0, token="bench", accounts=1, contacts=count, rooms=0, members=0,
                    seed=3, chatter_per_min=0, duplicate_rate=0)
    sim.start()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    try:
        instance = services.register_instance(name="bench-sync", api_url=sim.url, token="bench",
                                               created_by=admin, push=False).instance
        wxid = next(iter(sim.accounts))
        account = contact_services.ensure_account(instance, wxid)
        contact_services.ensure_instance_shards(instance.pk)
        model = shards.model_for(Contact, instance_id=instance.pk)

        if profiler:
            profiler.enable()
        with Timer() as synced:
            result = contact_services.sync_account(account, scopes=("contacts",),
                                                   page_limit=500)
        assert result["contacts"] == count, result
        # a re-sync of a mostly unchanged address book: one contact in 20 renamed meanwhile
        renamed = sim.accounts[wxid].contacts[::20]
        for c in renamed:
            c["name"] = f"{c['name']} (renamed)"
        with Timer() as resynced:
            contact_services.sync_account(account, scopes=("contacts",), page_limit=500)
        assert model.objects.filter(account=account, nickname__endswith=" (renamed)").count() == len(renamed)
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
            print(f"profile of the two syncs written to {args.profile}")

        # the same rows, fetched once, for the baselines
        client = services.client_for(instance)
        rows = []
        with Timer() as fetched:
            stamp = contact_services._stamp()
            for page in client.iter_contacts(wxid, limit=500):
                rows.extend(contact_services.contact_row(account.pk, item, stamp)
                            for item in page.items)
        client.close()
        assert len(rows) == count

        # the platform's upsert alone (rows already fetched), into the shard holding them
        with Timer() as upserted:
            for start in range(0, len(rows), 500):
                with transaction.atomic():
                    contact_services.upsert_contacts(instance.pk, rows[start:start + 500])
        # a re-sync's page writes alone (5 % renamed, a later stamp): compared with the stored
        # rows, unchanged ones only stamped (contacts.services.sync_contacts, when present)
        resync_write = None
        if hasattr(contact_services, "sync_contacts"):
            later = contact_services._stamp() + datetime.timedelta(seconds=1)
            again = [dict(row, last_sync_time=later, updated_at=later,
                          nickname=row["nickname"] + " (again)" if i % 20 == 0 else row["nickname"])
                     for i, row in enumerate(rows)]
            with Timer() as resync_write:
                for start in range(0, len(again), 500):
                    with transaction.atomic():
                        contact_services.sync_contacts(instance.pk, again[start:start + 500])
        raw_insert_s, raw_update_s = _raw_upsert_baseline(connection, model, rows,
                                                          CONTACT_UPDATE_FIELDS)
    finally:
        sim.stop()

    label = f"{count // 1000}k"
    raw_label = "rows/s (raw multi-row upsert, new rows)"
    report(f"sync {label} contacts (fetch + upsert, new)", count / synced.seconds, "rows/s",
           count / raw_insert_s, raw_label)
    report(f"re-sync {label} contacts (fetch + upsert, 5 % renamed)", count / resynced.seconds,
           "rows/s", count / raw_update_s, "rows/s (raw multi-row upsert, all updates)")
    report(f"upsert {label} contacts alone (all updates)", count / upserted.seconds, "rows/s",
           count / raw_update_s, "rows/s (raw multi-row upsert, all updates)")
    if resync_write is not None:
        report(f"re-sync writes alone, {label} contacts (5 % renamed)", count / resync_write.seconds, "rows/s",
               count / raw_update_s, "rows/s (raw multi-row upsert, all updates)")
    report(f"fetch {label} contacts from the simulator", count / fetched.seconds, "rows/s",
           note="HTTP + JSON + protocol validation, no database")


# --- webhook ---------------------------------------------------------------------------------


def build_urls():
    from django.db import connection
    from django.http import JsonResponse
    from django.urls import include, path
    from django.views.decorators.csrf import csrf_exempt

    @csrf_exempt
    def bare(request):
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {BARE_TABLE} (body) VALUES (%s)",
                           [request.body.decode("utf-8")])
        return JsonResponse({"ok": True}, status=202)

    return [path("bench/bare-events", bare), path("", include("wework.urls"))]


def serve(args):
    """The web process: Django's threaded WSGI server on 127.0.0.1:<port>."""
    setup_django(args, migrate=False, fresh=False)
    from django.conf import settings
    from django.core.servers.basehttp import run
    from django.core.wsgi import get_wsgi_application

    settings.ROOT_URLCONF = __name__
    settings.CELERY_TASK_ALWAYS_EAGER = False
    urlpatterns[:] = build_urls()
    # One thread: one persistent database connection (a thread per request would open a new
    # connection per request, as CONN_MAX_AGE is per thread).
    run("127.0.0.1", args.serve, get_wsgi_application(), threading=False)


def _load(url, bodies, threads=4):
    import httpx

    chunks = [bodies[i::threads] for i in range(threads)]
    statuses = []
    lock = threading.Lock()

    def worker(chunk):
        with httpx.Client(timeout=30) as http:
            local = []
            for body, headers in chunk:
                local.append(http.post(url, content=body, headers=headers).status_code)
        with lock:
            statuses.extend(local)

    pool = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - start, statuses


def bench_webhook(args, admin, database_url):
    import socket
    import uuid

    import httpx
    from django.db import connection

    from instances import protocol, services
    from instances.models import InstanceEvent

    count = args.events or (300 if args.quick else 3000)
    instance = services.register_instance(name="bench-hook", api_url="http://127.0.0.1:9",
                                          token="t", webhook_secret=SECRET, created_by=admin,
                                          push=False).instance
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {BARE_TABLE}")
        kind = "BIGINT AUTO_INCREMENT" if connection.vendor == "mysql" else "INTEGER"
        extra = "" if connection.vendor == "mysql" else " AUTOINCREMENT"
        cursor.execute(f"CREATE TABLE {BARE_TABLE} (id {kind} PRIMARY KEY{extra}, body TEXT)")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ)
    command = [sys.executable, __file__, "--serve", str(port), "--database-url", database_url,
               "--reuse-db", "--keep-db"]
    if args.redis_url:
        command += ["--redis-url", args.redis_url]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"{base}/bench/bare-events", content=b"{}")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        def bodies(n, seq0):
            out = []
            for i in range(n):
                event = {
                    "event_id": f"evt_{uuid.uuid4().hex}", "type": "instance.heartbeat",
                    "instance_id": instance.instance_uuid, "account_id": None,
                    "seq": seq0 + i, "ts_ms": int(time.time() * 1000),
                    "data": {"uptime_s": i, "accounts": [], "queue_depth": 0,
                             "client_version": "4.1.22", "client_running": True,
                             "metrics": {"cpu": 1.0, "memory": 2.0, "queue_depth": 0}},
                }
                body = json.dumps(event).encode()
                out.append((body, protocol.signature_headers(body, SECRET,
                                                             event_id=event["event_id"])))
            return out

        hook_url = f"{base}/api/v1/instances/{instance.instance_uuid}/events"
        _load(hook_url, bodies(50, 1))  # warm-up
        _load(f"{base}/bench/bare-events", bodies(50, 1))
        hook_s, hook_status = _load(hook_url, bodies(count, 1000))
        bare_s, bare_status = _load(f"{base}/bench/bare-events", bodies(count, 1000))
        assert set(hook_status) == {202}, set(hook_status)
        assert set(bare_status) == {202}
        assert InstanceEvent.objects.filter(instance=instance).count() == count + 50
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {BARE_TABLE}")
    finally:
        server.terminate()
        server.wait(10)
    report("webhook intake (verify, store, enqueue)", count / hook_s, "events/s",
           count / bare_s, "req/s (bare view, one INSERT)")


def main():
    args = bench_args(__doc__.splitlines()[0], extra=_extra)
    if args.serve:
        return serve(args)
    url = setup_django(args)
    environment_line(url)
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("bench-admin", "b@example.com", "x")
    if args.only in (None, "sync"):
        bench_sync(args, admin)
    if args.only in (None, "webhook"):
        bench_webhook(args, admin, url)
    save_results(args)
    return 0


if __name__ == "__main__":
    sys.exit(main() or 0)
