"""Lists through gunicorn with wrk: each API list and the admin's first page against a bare view
of the same rows, served by the same gunicorn in the same run (issue 13).

One run on a dedicated MariaDB database (`wework_li_http` unless BENCH_DATABASE_URL or
--database-url says otherwise). Shards are filled by server-side multi-row INSERT ... SELECT
from MariaDB's sequence engine (500,000 rows a statement). gunicorn serves `wework.wsgi`'s
application (DEBUG off, the production middleware, `WEWORK_PROCESS=web`: the statement time
limit on) plus the bare views below, on 127.0.0.1:--port; the load generator is wrk
(`--connections` connections, one thread, keep-alive, `--seconds` a round), the rounds
alternate a list and its bare view. Requests carry the session cookie of a super administrator
(verified second factor), or with `--auth token` the API lists and their bare views carry an
access token of the same user (`Authorization: Bearer`, as integrators call the API; the bare
views then authenticate it with the same service, `authenticate_access`); the admin page always
uses the session.

* users      -- GET /api/v1/users/?limit=50 (2,000 users) | bare: `.values()` of the
                serializer's columns, 51 rows by id, JsonResponse
* contacts   -- GET /api/v1/contacts/?instance=&limit=50 on the instance's shard
                (--contacts rows) | bare: `.values()` page of the shard, ORDER BY id DESC
* messages   -- GET /api/v1/messaging/messages/?limit=50 on the month's shard, measured at each
                of --steps rows | bare: `.values()` page of the shard, ORDER BY id DESC
* admin      -- GET /admin/messaging/message/ (first page) at each step | bare: the same
                `.values()` page

The contacts and messages lists are also measured against a bare view of every column
(`?columns=all`, `.values()` of the whole row): the API's rows carry 25-26 fields, the narrow
bare views 7 and 12, and that width alone is about 0.4 ms of CPU a page.

Every bare view checks `request.user.is_authenticated` behind the same middleware.
Run: `.venv/bin/python bench/bench_lists_http.py [--steps 100000,1000000,5000000]
[--contacts N] [--seconds S] [--rounds R] [--reuse-db --keep-db] [--fill-only]`.
`--fill-only` fills and measures nothing, so the measuring run can hold the bench lock alone.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCH_DATABASE_URL", "mysql://root@127.0.0.1:3306/wework_li_http")

from harness import Timer, bench_args, environment_line, report, save_results, setup_django

urlpatterns = []  # ROOT_URLCONF of the served process
MESSAGE_COLUMNS = ["id", "message_uuid", "account_id", "chat_type", "chat_wxid", "message_type",
                   "message_content", "send_status", "retry_count", "task_id", "is_scheduled",
                   "created_at"]
CONTACT_COLUMNS = ["id", "account_id", "wxid", "nickname", "remark", "contact_type", "created_at"]
USER_COLUMNS = ["id", "username", "email", "phone", "nickname", "avatar_url", "status",
                "is_superuser", "two_factor_enabled", "email_verified", "phone_verified",
                "last_login", "last_login_ip", "login_fail_count", "locked_until",
                "created_at", "updated_at"]
LUA = Path(__file__).resolve().parent / "wrk_report.lua"


def _extra(parser):
    import argparse

    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=18210)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", default="100000,1000000,5000000")
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--only", default="", help="comma-separated: users,contacts,messages")
    parser.add_argument("--auth", choices=["session", "token"], default="session",
                        help="how the API lists and their bare views are called (the admin: session)")
    parser.add_argument("--stock-admin", action="store_true",
                        help="serve the admin with Django's row renderer and an app list built every page (baseline)")
    parser.add_argument("--cpu", type=int, default=50,
                        help="admin first pages timed in-process (process_time), planned and stock alternately")
    parser.add_argument("--fill-only", action="store_true",
                        help="fill the shards and measure nothing (run it before taking the lock)")


# --- the served process --------------------------------------------------------------------------
def build_urls():
    from django.http import HttpResponse, JsonResponse
    from django.urls import include, path
    from django.utils import timezone

    from accounts.models import User
    from contacts.models import Contact
    from messaging.models import Message
    from wework import shards

    from accounts.services import sessions as session_services
    from accounts.services.sessions import AuthFailed

    def authenticated(request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header.startswith("Bearer "):
            try:
                session_services.authenticate_access(header[7:])
            except AuthFailed:
                return False
            return True
        return request.user.is_authenticated

    def bare(rows):
        def view(request):
            if not authenticated(request):
                return HttpResponse(status=401)
            return JsonResponse({"results": rows(request)})
        return view

    def columns(request, narrow):
        # ?columns=all: every column of the table, as wide as the API's rows (25-26 fields)
        return () if request.GET.get("columns") == "all" else narrow

    def messages(request):
        model = shards.model_for(Message, when=timezone.now())
        return list(model._default_manager.order_by("-id").values(*columns(request, MESSAGE_COLUMNS))[:51])

    def contacts(request):
        model = shards.model_for(Contact, instance_id=int(request.GET["instance"]))
        return list(model._default_manager.order_by("-id").values(*columns(request, CONTACT_COLUMNS))[:51])

    def users(request):
        return list(User.objects.order_by("id").values(*USER_COLUMNS)[:51])

    return [path("bench/bare/messages", bare(messages)), path("bench/bare/contacts", bare(contacts)),
            path("bench/bare/users", bare(users)), path("", include("wework.urls"))]


def stock_admin(on):
    """Django's own changelist rows and an app list built on every page (the baseline), or
    the platform's (wework/admin_rows.py, WeworkAdminSite.get_app_list)."""
    from django.contrib import admin

    from wework.admin_rows import planned_results
    from wework.templatetags import admin_rows

    admin.site.name  # noqa: B018 -- admin.site is a lazy object: set up the site itself
    site = admin.site._wrapped
    admin_rows.planned_results = (lambda cl: None) if on else planned_results
    if on:
        site._app_list_key = lambda request, app_label: None  # no key: built every time
    else:
        vars(site).pop("_app_list_key", None)


def admin_cpu(cookie, repeats, path="/admin/messaging/message/"):
    """CPU (process_time) of the admin page in this process, the platform's renderer and the
    stock one alternately: the median of `repeats` pages each, after 5 of each."""
    import statistics

    from django.conf import settings
    from django.test import Client

    name, value = cookie.split("=", 1)
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.cookies[name] = value
    times = {False: [], True: []}
    for i in range(repeats + 5):
        for stock in (False, True):
            stock_admin(stock)
            start = time.process_time()
            response = client.get(path)
            spent = time.process_time() - start
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code}")
            if i >= 5:
                times[stock].append(spent * 1000)
    stock_admin(False)
    planned, stock = statistics.median(times[False]), statistics.median(times[True])
    report("admin first page CPU in-process", planned, "ms", stock, "ms (Django's rows and app list)")
    print(f"#   admin page CPU: {planned:.1f} ms planned, {stock:.1f} ms stock "
          f"(load {os.getloadavg()[0]:.1f}, {settings.LANGUAGE_CODE})", flush=True)


def serve(args):
    from gunicorn.app.base import BaseApplication

    os.environ["WEWORK_PROCESS"] = "web"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"

    class App(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"127.0.0.1:{args.serve}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", "sync")
            self.cfg.set("timeout", 30)
            self.cfg.set("backlog", 2048)
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", "warning")

        def load(self):
            setup_django(args, migrate=False, fresh=False)
            from django.conf import settings
            from django.core.wsgi import get_wsgi_application

            settings.ROOT_URLCONF = __name__
            urlpatterns[:] = build_urls()
            application = get_wsgi_application()
            if args.stock_admin:
                stock_admin(True)
            return application

    App().run()


# --- fills -----------------------------------------------------------------------------------------
def fill_messages(table, accounts, start, end, rows, offset, worker, batch=500_000):
    """Server-side INSERT ... SELECT from seq_0_to_N: Snowflake ids of `worker` (one per fill:
    each fill spreads its rows over [start, end) by millisecond, distinct within the fill), a
    UUID each, 20 % group chats, 5 % failed."""
    from django.db import connection

    from wework.ids import EPOCH_MS, SEQUENCE_BITS, TIME_SHIFT

    start_ms = int(start.timestamp() * 1000)
    span = int(end.timestamp() * 1000) - start_ms - 1
    total = offset + rows
    acc = ",".join(str(a) for a in accounts)
    done = 0
    with connection.cursor() as cursor:
        while done < rows:
            n = min(batch, rows - done)
            first = offset + done
            ms = f"({start_ms} + FLOOR((seq + {first}) * {span} / {total}))"
            cursor.execute(
                f"INSERT INTO `{table}` (id, message_uuid, account_id, chat_type, chat_wxid, message_type,"
                " message_content, send_status, retry_count, task_id, is_scheduled, created_at, updated_at)"
                f" SELECT (({ms} - {EPOCH_MS}) << {TIME_SHIFT}) | ({worker} << {SEQUENCE_BITS}) | (seq % 2048),"
                f" UUID(), ELT(1 + (seq % {len(accounts)}), {acc}), IF(seq % 5 = 0, 2, 1),"
                " IF(seq % 5 = 0, CONCAT(seq % 2000, '@chatroom'), CONCAT('wxid_c', seq % 20000)),"
                " 'text', CONCAT('message ', seq), IF(seq % 20 = 0, 3, 2), 0,"
                " IF(seq % 2 = 0, seq % 500, NULL), 0,"
                f" FROM_UNIXTIME({ms} / 1000), FROM_UNIXTIME({ms} / 1000)"
                f" FROM seq_0_to_{n - 1}")
            done += n
        cursor.execute(f"ANALYZE TABLE `{table}`")


def fill_contacts(table, accounts, rows, offset, batch=500_000):
    from django.db import connection

    acc = ",".join(str(a) for a in accounts)
    names = "'Li','Wang','Zhang','Liu','Chen','Yang','Zhao','Huang','Zhou','Wu'"
    done = 0
    with connection.cursor() as cursor:
        while done < rows:
            n = min(batch, rows - done)
            first = offset + done
            cursor.execute(
                f"INSERT INTO `{table}` (account_id, wxid, nickname, remark, contact_type, created_at, updated_at)"
                f" SELECT ELT(1 + ((seq + {first}) % {len(accounts)}), {acc}), CONCAT('wxid_g', seq + {first}),"
                f" CONCAT(ELT(1 + (seq % 10), {names}), ' ', seq + {first}),"
                f" IF((seq + {first}) % 3 = 0, CONCAT('r', seq + {first}), NULL), 1, UTC_TIMESTAMP(), UTC_TIMESTAMP()"
                f" FROM seq_0_to_{n - 1}")
            done += n
        cursor.execute(f"ANALYZE TABLE `{table}`")


def fill_users(n):
    from accounts.models import User

    present = User.objects.count()
    if present < n:
        User.objects.bulk_create([
            User(username=f"bench-u{i}", email=f"bench-u{i}@example.com", nickname=f"U {i}", status=1)
            for i in range(present, n)], batch_size=1000)


# --- load -------------------------------------------------------------------------------------------
def wrk(port, path, header, args):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--timeout", "35s", "-s", str(LUA),
         "-H", header, f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("JSON "))
    data = json.loads(line[5:])
    if data["non2xx"] or data["errors"]:
        raise SystemExit(f"{path}: {data}\n{out}")
    return data


def measure(port, header, args, pairs):
    """pairs: {name: (path, bare_path[, bare_all_path])}; rounds alternate the list and its bare
    views (the bare view of the same page with the bench's columns, and with all columns)."""
    results = {}
    if args.fill_only:
        return results
    for name, paths in pairs.items():
        for each in paths:
            wrk(port, each, header, argparse_short(args))  # warm
        runs = [[] for _ in paths]
        for _ in range(args.rounds):
            for each, out in zip(paths, runs):
                out.append(wrk(port, each, header, args))
        results[name] = [combine(r) for r in runs]
        a, b = results[name][:2]
        load = os.getloadavg()[0]
        report(f"{name} req/s", a["rps"], "req/s", b["rps"], "req/s (bare view)")
        report(f"{name} p50", a["p50"], "ms", b["p50"], "ms (bare view p50)")
        report(f"{name} p95", a["p95"], "ms", b["p95"], "ms (bare view p95)")
        wide = ""
        if len(paths) > 2:
            c = results[name][2]
            report(f"{name} req/s", a["rps"], "req/s", c["rps"], "req/s (bare view, all columns)")
            wide = f"; bare, all columns {c['rps']:.0f}, ratio {a['rps'] / c['rps']:.2f}"
        print(f"#   {name}: {a['rps']:.0f} req/s (bare {b['rps']:.0f}, ratio {a['rps'] / b['rps']:.2f}{wide}), "
              f"p50 {a['p50']:.1f} ms, p95 {a['p95']:.1f} ms (bare p95 {b['p95']:.1f} ms), load {load:.1f}",
              flush=True)
    return results


def argparse_short(args):
    import copy

    short = copy.copy(args)
    short.seconds = 2
    return short


def combine(runs):
    requests = sum(r["requests"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    return {"rps": requests / seconds, "p50": sorted(r["p50"] for r in runs)[len(runs) // 2],
            "p95": max(r["p95"] for r in runs), "p99": max(r["p99"] for r in runs)}


def session_cookie(admin):
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django_otp import DEVICE_ID_SESSION_KEY

    from accounts.services.otp import create_confirmed_totp

    session = SessionStore()
    session[SESSION_KEY] = str(admin.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = admin.get_session_auth_hash()
    session[DEVICE_ID_SESSION_KEY] = create_confirmed_totp(admin).persistent_id
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def start_server(args, url):
    command = [sys.executable, __file__, "--serve", str(args.port), "--database-url", url,
               "--reuse-db", "--keep-db", "--workers", str(args.workers)]
    if args.stock_admin:
        command.append("--stock-admin")
    if args.redis_url:
        command += ["--redis-url", args.redis_url]
    server = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=sys.stderr)
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{args.port}/bench/bare/users", timeout=2)
        except urllib.error.HTTPError:
            return server  # 401 without a session: it answers
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.terminate()
                raise SystemExit("gunicorn did not answer")
            time.sleep(0.5)
        else:
            return server


def main():
    args = bench_args(__doc__.splitlines()[0], extra=_extra)
    if args.serve:
        return serve(args)
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", args.port)) == 0:
            raise SystemExit(f"port {args.port} is taken")
    url = setup_django(args)
    from django.db import connection
    from django.utils import timezone

    from accounts.models import User
    from accounts.services import sessions as session_services
    from contacts.models import Contact, WeworkAccount
    from instances.models import WeworkInstance
    from messaging.models import Message
    from wework import shards
    from wework.shards.conf import period_of

    environment_line(url)
    print(f"# load average at start: {os.getloadavg()}")
    only = set(filter(None, args.only.split(","))) or {"users", "contacts", "messages"}
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser(
        "bench-admin", "bench-admin@example.com", "x")
    instance = WeworkInstance.objects.filter(name="bench-li").first() or WeworkInstance.objects.create(
        name="bench-li", instance_uuid=str(uuid.uuid4()), created_by=admin)
    accounts = [WeworkAccount.objects.get_or_create(instance=instance, wxid=f"wxid_libench_{i}",
                                                    defaults={"status": 1})[0].pk for i in range(20)]
    fill_users(args.users)
    shards.create_instance_shards(instance.pk)
    cookie = session_cookie(admin)
    browser = f"Cookie: {cookie}"
    if args.auth == "token":
        _row, access, _refresh = session_services.issue_tokens(admin, None)
        api = f"Authorization: Bearer {access}"
    else:
        api = browser
    print(f"# API lists called with a {args.auth}", flush=True)
    connection.close()
    server = start_server(args, url)
    try:
        if "users" in only:
            print(f"\n## users: {User.objects.count():,} rows", flush=True)
            measure(args.port, api, args, {"users API list": ("/api/v1/users/?limit=50", "/bench/bare/users")})
        if "contacts" in only:
            cmodel = shards.model_for(Contact, instance_id=instance.pk)
            present = cmodel._default_manager.count()
            if present < args.contacts:
                with Timer() as t:
                    fill_contacts(cmodel._meta.db_table, accounts, args.contacts - present, present)
                print(f"# filled {args.contacts - present:,} contacts in {t.seconds:.1f} s")
            print(f"\n## contacts shard {cmodel._meta.db_table}: {cmodel._default_manager.count():,} rows",
                  flush=True)
            measure(args.port, api, args, {
                "contacts API list": (f"/api/v1/contacts/?instance={instance.pk}&limit=50",
                                      f"/bench/bare/contacts?instance={instance.pk}",
                                      f"/bench/bare/contacts?instance={instance.pk}&columns=all")})
        if "messages" in only:
            now = timezone.now()
            period = period_of("month", now)
            model = shards.model_for(Message, when=now)
            table = model._meta.db_table
            for step, size in enumerate(int(x) for x in args.steps.split(",") if x):
                present = model._default_manager.count()
                if present < size:
                    with Timer() as t:
                        fill_messages(table, accounts, period.start, now, size - present, present,
                                      worker=1020 - step)
                    print(f"# filled {size - present:,} messages in {t.seconds:.1f} s "
                          f"({(size - present) / t.seconds:,.0f} rows/s)")
                total = model._default_manager.count()
                print(f"\n## messages shard {table}: {total:,} rows", flush=True)
                measure(args.port, api, args, {
                    f"messages API list ({total:,})": ("/api/v1/messaging/messages/?limit=50",
                                                       "/bench/bare/messages",
                                                       "/bench/bare/messages?columns=all")})
                measure(args.port, browser, args, {
                    f"messages admin first page ({total:,})": ("/admin/messaging/message/",
                                                               "/bench/bare/messages")})
                if args.cpu and not args.fill_only:
                    admin_cpu(cookie, args.cpu)
    finally:
        server.terminate()
        server.wait(20)
    print(f"# load average at end: {os.getloadavg()}")
    save_results(args)


if __name__ == "__main__":
    main()
