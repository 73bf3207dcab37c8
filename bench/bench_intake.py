"""Webhook intake through gunicorn: signed events/s and latency against a bare one-INSERT view.

* webhook -- signed `instance.heartbeat` deliveries POSTed to /api/v1/instances/<uuid>/events
             of gunicorn (`wework.wsgi`'s application, DEBUG off, production middleware,
             `WEWORK_PROCESS=web`), 4 sync workers by default as in docs/deployment.md
             (`--workers`, `--threads` for gthread). Celery publishes to the broker
             (BENCH_REDIS_URL) with no worker running: the intake only checks, stores and
             enqueues. Every 2xx must be a stored row: the bench counts the inbox afterwards.
             The webhook takes wework.wsgi's lean route (wework/webhook_wsgi.py) unless
             `--django-only`, which serves it through the full middleware and URLconf.
             `--batch 1,10,50`: events per request (protocol 1.2 batched deliveries, one
             signed `{"events": [...]}` body; 1 = one event a request as before).
* baseline -- a bare Django view in the same gunicorn that does one INSERT of the body
             (autocommit) and answers 202, behind the same middleware; for batches, a bare view
             that parses the body and writes its events by one multi-row INSERT.

The load generator is asyncio on raw sockets (requests prepared and signed beforehand),
`--connections` in flight, one connection per request (gunicorn's sync workers close them), or
with `--keep-alive` one persistent connection per client (what the simulator's and the bridge's
HTTP clients do; gthread workers keep them open, sync workers close them after each answer and
the client reconnects); the rounds alternate intake and baseline so machine noise falls on both.
Latencies are per request; every event of a batch waits for its request's answer, so they are
the per-event figures too.

Run: `BENCH_REDIS_URL=redis://127.0.0.1:6379/<db> .venv/bin/python bench/bench_intake.py
[--quick] [--events N] [--rounds R] [--workers W] [--threads T] [--connections C]
[--batch 1,10,50] [--keep-alive] [--django-only]`.
"""
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import bench_args, environment_line, percentile, report, save_results, setup_django

BARE_TABLE = "bench_bare_events"
BARE_PATH = "/bench/bare-events"
BARE_BATCH_PATH = "/bench/bare-events-batch"
SECRET = "bench-webhook-secret"
urlpatterns = []  # ROOT_URLCONF of the served process


def _extra(parser):
    import argparse

    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=None, help="events per round")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batch", default="1",
                        help="events per request, comma-separated sizes measured in turn")
    parser.add_argument("--keep-alive", action="store_true",
                        help="one persistent connection per client instead of one per request")
    parser.add_argument("--profile", default=None, help="cProfile the intake in-process to FILE")
    parser.add_argument("--profile-wsgi", default=None,
                        help="cProfile whole WSGI requests (intake, then bare view) to FILE")
    parser.add_argument("--django-only", action="store_true",
                        help="serve the webhook through the full Django stack, not wework.wsgi's "
                             "lean webhook route")


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

    @csrf_exempt
    def bare_batch(request):
        events = json.loads(request.body)["events"]
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {BARE_TABLE} (body) VALUES "
                           + ", ".join(["(%s)"] * len(events)),
                           [json.dumps(event) for event in events])
        return JsonResponse({"ok": True}, status=202)

    return [path(BARE_PATH[1:], bare), path(BARE_BATCH_PATH[1:], bare_batch),
            path("", include("wework.urls"))]


def serve(args):
    """gunicorn on 127.0.0.1:<port>, the platform's WSGI application plus the bare view."""
    from gunicorn.app.base import BaseApplication

    os.environ["WEWORK_PROCESS"] = "web"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"

    class App(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"127.0.0.1:{args.serve}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("worker_class", "gthread" if args.threads > 1 else "sync")
            self.cfg.set("backlog", 2048)
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", "warning")

        def load(self):
            setup_django(args, migrate=False, fresh=False)
            from django.conf import settings
            from django.core.wsgi import get_wsgi_application

            settings.ROOT_URLCONF = __name__
            urlpatterns[:] = build_urls()
            if args.django_only:
                return get_wsgi_application()
            from wework.webhook_wsgi import wrap

            return wrap(get_wsgi_application())  # as wework/wsgi.py: the bare view stays on Django

    App().run()


# --- load generator --------------------------------------------------------------------------
def request_bytes(path, body, headers, keep_alive=False):
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {len(body)}",
             "Connection: keep-alive" if keep_alive else "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-type"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _one(port, raw):
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    data = await reader.read()  # Connection: close - the server closes after the answer
    writer.close()
    status = int(data[9:12]) if data[:5] == b"HTTP/" else 0
    return status, time.perf_counter() - start


class _KeptConnection:
    """One persistent HTTP/1.1 connection: reads each answer by its Content-Length; reconnects
    when the server closed it (`Connection: close`, or an idle connection dropped before the
    request was answered)."""

    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None

    async def request(self, raw):
        start = time.perf_counter()
        for _attempt in range(2):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writer.write(raw)
            try:
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                self.close()
                if fresh:
                    return 0, time.perf_counter() - start
                continue  # the server had closed the idle connection: once more on a new one
            length, close, chunked = 0, False, False
            for line in head.split(b"\r\n")[1:]:
                name, _sep, value = line.partition(b":")
                name, value = name.strip().lower(), value.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value == b"close":
                    close = True
                elif name == b"transfer-encoding" and value == b"chunked":
                    chunked = True
            if chunked:  # no Content-Length (the lean route has no CommonMiddleware): gunicorn chunks
                while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    await self.reader.readexactly(size + 2)
                await self.reader.readuntil(b"\r\n")
            else:
                await self.reader.readexactly(length)
            if close:
                self.close()
            status_line = head.split(b"\r\n", 1)[0]
            if not status_line.startswith(b"HTTP/"):  # out of step with the server: start over
                self.close()
                return 0, time.perf_counter() - start
            return int(status_line[9:12]), time.perf_counter() - start
        return 0, time.perf_counter() - start

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _load(port, requests, connections, keep_alive=False):
    queue = list(reversed(requests))
    statuses, latencies = [], []

    async def worker():
        kept = _KeptConnection(port) if keep_alive else None
        while queue:
            raw = queue.pop()
            status, seconds = await (kept.request(raw) if kept else _one(port, raw))
            statuses.append(status)
            latencies.append(seconds)
        if kept:
            kept.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - start, statuses, latencies


def load(port, requests, connections, keep_alive=False):
    return asyncio.run(_load(port, requests, connections, keep_alive))


def signed_events(instance_uuid, n, seq0, batch=1):
    """n signed heartbeat events from seq0, `batch` a request: [(body, headers)]."""
    from instances import protocol

    if batch > 1:
        out = []
        for start in range(0, n, batch):
            events = [json.loads(body) for body, _h in
                      signed_events(instance_uuid, min(batch, n - start), seq0 + start)]
            body = json.dumps({"events": events}).encode()
            out.append((body, protocol.signature_headers(
                body, SECRET, event_id=events[0]["event_id"], seq=events[0]["seq"],
                count=len(events))))
        return out
    out = []
    for i in range(n):
        event = {
            "event_id": f"evt_{uuid.uuid4().hex}", "type": "instance.heartbeat",
            "instance_id": instance_uuid, "account_id": None,
            "seq": seq0 + i, "ts_ms": int(time.time() * 1000),
            "data": {"uptime_s": i, "accounts": [], "queue_depth": 0,
                     "client_version": "4.1.22", "client_running": True,
                     "metrics": {"cpu": 1.0, "memory": 2.0, "queue_depth": 0}},
        }
        body = json.dumps(event).encode()
        out.append((body, protocol.signature_headers(body, SECRET, event_id=event["event_id"])))
    return out


def bench_webhook(args, admin, database_url):
    from django.db import connection

    from instances import services
    from instances.models import InstanceEvent

    per_round = args.events or (500 if args.quick else 2000)
    if int(os.environ.get("INSTANCE_WEBHOOK_BATCH_MAX", "100")) < max(
            int(size) for size in str(args.batch).split(",")):
        raise SystemExit("--batch is above INSTANCE_WEBHOOK_BATCH_MAX")
    rounds = args.rounds or (2 if args.quick else 4)
    instance = services.register_instance(name="bench-hook", api_url="http://127.0.0.1:9",
                                          token="t", webhook_secret=SECRET, created_by=admin,
                                          push=False).instance
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {BARE_TABLE}")
        kind = "BIGINT AUTO_INCREMENT" if connection.vendor == "mysql" else "INTEGER"
        extra = "" if connection.vendor == "mysql" else " AUTOINCREMENT"
        cursor.execute(f"CREATE TABLE {BARE_TABLE} (id {kind} PRIMARY KEY{extra}, body TEXT)")
    connection.close()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, __file__, "--serve", str(port), "--database-url", database_url,
               "--reuse-db", "--keep-db", "--workers", str(args.workers),
               "--threads", str(args.threads)]
    if args.redis_url:
        command += ["--redis-url", args.redis_url]
    if args.django_only:
        command.append("--django-only")
    server = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.DEVNULL,
                              stderr=sys.stderr)
    hook_path = f"/api/v1/instances/{instance.instance_uuid}/events"
    bare_path = BARE_PATH
    sizes = [int(size) for size in str(args.batch).split(",") if size.strip()]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _s = asyncio.run(_one(port, request_bytes(bare_path, b"{}", {})))
                if status == 202:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("gunicorn did not answer")
            time.sleep(0.3)
        seq = 1
        keep = args.keep_alive
        warm = signed_events(instance.instance_uuid, 200, seq)
        seq += 200
        load(port, [request_bytes(hook_path, b, h, keep) for b, h in warm], args.connections, keep)
        load(port, [request_bytes(bare_path, b, h, keep) for b, h in warm], args.connections, keep)
        accepted = len(warm)
        results = []
        for batch in sizes:
            hook_s = bare_s = 0.0
            hook_lat, bare_lat, hook_status, bare_status = [], [], [], []
            target = bare_path if batch == 1 else BARE_BATCH_PATH
            for _round in range(rounds):
                events = signed_events(instance.instance_uuid, per_round, seq, batch)
                seq += per_round
                seconds, statuses, lat = load(
                    port, [request_bytes(hook_path, b, h, keep) for b, h in events],
                    args.connections, keep)
                hook_s += seconds
                hook_status += statuses
                hook_lat += lat
                accepted += sum(batch for s in statuses if s == 202)
                seconds, statuses, lat = load(
                    port, [request_bytes(target, b, h, keep) for b, h in events],
                    args.connections, keep)
                bare_s += seconds
                bare_status += statuses
                bare_lat += lat
            assert set(hook_status) == {202}, sorted(set(hook_status))
            assert set(bare_status) == {202}, sorted(set(bare_status))
            results.append((batch, hook_s, bare_s, hook_lat, bare_lat))
        stored = InstanceEvent.objects.filter(instance=instance).count()
        assert stored == accepted, (stored, accepted)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {BARE_TABLE}")
    finally:
        server.terminate()
        server.wait(20)
    total = per_round * rounds
    kind = f"{args.workers} workers" + (f" x {args.threads} threads" if args.threads > 1 else "")
    kind += ", full Django stack" if args.django_only else ", lean webhook route"
    kind += ", keep-alive" if keep else ", a connection per request"
    for batch, hook_s, bare_s, hook_lat, bare_lat in results:
        each = "1 event a request" if batch == 1 else f"{batch} events a request"
        bare = "bare view, one INSERT" if batch == 1 else "bare view, one multi-row INSERT"
        report(f"webhook intake, {each} ({kind}, {args.connections} in flight)", total / hook_s,
               "events/s", total / bare_s, f"events/s ({bare})")
        report(f"webhook intake, {each}, p50 per event", percentile(hook_lat, 50) * 1000, "ms",
               percentile(bare_lat, 50) * 1000, "ms (bare view p50)")
        report(f"webhook intake, {each}, p99 per event", percentile(hook_lat, 99) * 1000, "ms",
               percentile(bare_lat, 99) * 1000, "ms (bare view p99)")
    print(f"# {stored} events stored, {accepted} acknowledged with 202")


def profile_intake(args, admin, path):
    """cProfile of `receive_webhook` in this process (eager Celery off: publishing is real)."""
    import cProfile
    import pstats

    from django.conf import settings

    from instances import services

    settings.CELERY_TASK_ALWAYS_EAGER = False
    instance = services.register_instance(name="bench-prof", api_url="http://127.0.0.1:9",
                                          token="t", webhook_secret=SECRET, created_by=admin,
                                          push=False).instance
    events = signed_events(instance.instance_uuid, 2000, 1)
    for body, headers in events[:100]:
        services.receive_webhook(instance.instance_uuid, body, headers)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for body, headers in events[100:]:
        services.receive_webhook(instance.instance_uuid, body, headers)
    profiler.disable()
    seconds = time.perf_counter() - start
    print(f"# in-process intake: {1900 / seconds:.0f} events/s under cProfile")
    profiler.dump_stats(path)
    pstats.Stats(path).sort_stats("cumulative").print_stats(25)


def _environ(path, body, headers):
    import io

    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "REMOTE_ADDR": "127.0.0.1",
               "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1",
               "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
               "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False}
    for key, value in headers.items():
        if key.lower() != "content-type":
            environ["HTTP_" + key.upper().replace("-", "_")] = value
    return environ


def profile_wsgi(args, admin, path):
    """cProfile of whole requests through the served WSGI application, one thread: where the
    request path (handler, middleware, view) spends its time, for the intake and the bare view."""
    import cProfile
    import pstats

    from django.conf import settings
    from django.db import connection

    from instances import services

    os.environ["WEWORK_PROCESS"] = "web"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    instance = services.register_instance(name="bench-wsgi", api_url="http://127.0.0.1:9",
                                          token="t", webhook_secret=SECRET, created_by=admin,
                                          push=False).instance
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {BARE_TABLE}")
        kind = "BIGINT AUTO_INCREMENT" if connection.vendor == "mysql" else "INTEGER"
        cursor.execute(f"CREATE TABLE {BARE_TABLE} (id {kind} PRIMARY KEY, body TEXT)")
    settings.ROOT_URLCONF = __name__
    urlpatterns[:] = build_urls()
    from wework.wsgi import application

    hook_path = f"/api/v1/instances/{instance.instance_uuid}/events"
    n = args.events or 2000
    for label, target in (("intake", hook_path), ("bare view", "/bench/bare-events")):
        events = [_environ(target, b, h) for b, h in signed_events(instance.instance_uuid, n + 100, 1 + n * 2 * (label == "bare view"))]
        statuses = []

        def start_response(status, _headers, _exc=None):
            statuses.append(int(status[:3]))

        for environ in events[:100]:
            b"".join(application(environ, start_response))
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        for environ in events[100:]:
            response = application(environ, start_response)
            b"".join(response)
            response.close()
        profiler.disable()
        seconds = time.perf_counter() - start
        assert set(statuses) == {202}, sorted(set(statuses))
        print(f"# {label}: {n / seconds:.0f} requests/s in one thread under cProfile, "
              f"{seconds / n * 1000:.3f} ms a request")
        out = f"{path}.{label.replace(' ', '-')}"
        profiler.dump_stats(out)
        pstats.Stats(out).sort_stats("cumulative").print_stats(45)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {BARE_TABLE}")


def main():
    args = bench_args(__doc__.splitlines()[0], extra=_extra)
    if args.serve:
        return serve(args)
    url = setup_django(args)
    environment_line(url)
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("bench-admin", "b@example.com", "x")
    if args.profile_wsgi:
        profile_wsgi(args, admin, args.profile_wsgi)
    elif args.profile:
        profile_intake(args, admin, args.profile)
    else:
        bench_webhook(args, admin, url)
    save_results(args)
    return 0


if __name__ == "__main__":
    sys.exit(main() or 0)
