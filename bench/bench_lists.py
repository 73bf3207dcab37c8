"""Lists over a big shard: the messages API and admin on a month of 1,000,000 messages.

Measured in one run, interleaved, on a dedicated MariaDB database (`wework_scale_bench` unless
BENCH_DATABASE_URL or --database-url says otherwise; see harness.py):

* baseline            -- the bare ORM page of the month's shard: `.values()` of the API's
                         columns, `ORDER BY id DESC LIMIT 51` (the deep baseline adds `id < X`).
* API first page      -- `GET /api/v1/messaging/messages/?limit=50` as a super administrator
                         (session, full middleware stack, FilterSet, serializer).
* API deep page       -- the same with `?after=` the id of the 900,000th row (90,000th with
                         --quick): a keyset page, no OFFSET.
* API scoped page     -- a user granted one of two instances: the page is limited to the
                         accounts of that instance by id (`account_id IN (...)`), no join.
* API filtered page   -- `?chat_type=2&send_status=3` (a few % of the rows).
* admin first page    -- `/admin/messaging/message/` (the month's shard, 50 rows, the count
                         capped at 10,000 ids, accounts attached after the page).
* admin search        -- `?q=<a chat's WeCom ID>` (idx_account_chat over the visible accounts).
* join (before)       -- for reference, the page as it was read before (issue 13):
                         `select_related("account")` and the scope through the accounts table.

Run: `.venv/bin/python bench/bench_lists.py [--quick] [--rows N] [--keep-db --reuse-db]`.
"""
import datetime
import os
import random
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCH_DATABASE_URL", "mysql://root@127.0.0.1:3306/wework_scale_bench")

from harness import (
    Timer, bench_args, environment_line, report, save_results, setup_django, time_interleaved,
)

COLUMNS = ["id", "message_uuid", "account_id", "chat_type", "chat_wxid", "message_type",
           "message_content", "send_status", "retry_count", "task_id", "is_scheduled",
           "created_at", "updated_at"]


def extra_options(parser):
    parser.add_argument("--rows", type=int, default=None,
                        help="messages in the month's shard (default 1,000,000; 100,000 with --quick)")


def fill_month(model, accounts, start, end, rows, batch=5000):
    """Raw multi-row INSERTs into the month's shard, ids and times spread over [start, end)."""
    from django.db import connection

    from wework import shards

    table = connection.ops.quote_name(model._meta.db_table)
    rnd = random.Random(13)
    span = (end - start).total_seconds() - 1
    placeholders = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    head = f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES "
    statuses = [2] * 90 + [3] * 5 + [0] * 5
    done = 0
    with connection.cursor() as cursor:
        while done < rows:
            n = min(batch, rows - done)
            values = []
            for i in range(n):
                at = start + datetime.timedelta(seconds=(done + i) * span / rows)
                naive = at.replace(tzinfo=None) if connection.vendor == "mysql" else at
                group = rnd.random() < 0.2
                values.extend([
                    shards.new_id(when=at), str(uuid.uuid4()), rnd.choice(accounts), 2 if group else 1,
                    f"{rnd.randint(1, 2000)}@chatroom" if group else f"wxid_c{rnd.randint(1, 20000)}",
                    "text", f"message {done + i}", rnd.choice(statuses), 0,
                    rnd.randint(1, 500) if rnd.random() < 0.5 else None, 0, naive, naive,
                ])
            cursor.execute(head + ", ".join([placeholders] * n), values)
            done += n
    if connection.vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE TABLE {table}")


def main():
    args = bench_args(__doc__.splitlines()[0], extra=extra_options)
    url = setup_django(args)
    rows = args.rows or (100_000 if args.quick else 1_000_000)

    from django.db import connection
    from django.test import Client
    from django.utils import timezone
    from django_otp import DEVICE_ID_SESSION_KEY

    from accounts.models import User
    from accounts.services.otp import create_confirmed_totp
    from accounts.services.permissions import grant_instance
    from contacts.models import WeworkAccount
    from instances.models import WeworkInstance
    from messaging.models import Message
    from wework import shards
    from wework.shards.conf import period_of

    environment_line(url)
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser(
        "bench-admin", "bench-admin@example.com", "x")
    operator = User.objects.filter(username="bench-operator").first() or User.objects.create_user(
        "bench-operator", "bench-operator@example.com", "x")
    instances = []
    for name in ("bench-a", "bench-b"):
        instance = WeworkInstance.objects.filter(name=name).first() or WeworkInstance.objects.create(
            name=name, instance_uuid=str(uuid.uuid4()), created_by=admin)
        instances.append(instance)
    grant_instance(operator, instances[0], ["messaging.view_message"], granted_by=admin)
    accounts = []
    for i in range(40):
        account, _ = WeworkAccount.objects.get_or_create(
            instance=instances[i % 2], wxid=f"wxid_bench_{i}", defaults={"status": 1})
        accounts.append(account.pk)

    now = timezone.now()
    period = period_of("month", now)
    model = shards.model_for(Message, when=now)
    present = model._default_manager.count()
    if present < rows:
        with Timer() as fill:
            fill_month(model, accounts, period.start, now, rows - present)
        print(f"# filled {model._meta.db_table} with {rows - present:,} rows in {fill.seconds:.1f} s "
              f"({(rows - present) / fill.seconds:,.0f} rows/s)")
    total = model._default_manager.count()
    print(f"# {model._meta.db_table}: {total:,} rows")
    deep_offset = int(total * 0.9)
    deep_after = model._default_manager.order_by("-id").values_list("id", flat=True)[deep_offset]
    chat = model._default_manager.filter(account_id=accounts[0]).order_by("-id").values_list(
        "chat_wxid", flat=True).first()

    def logged_in(user):
        client = Client()
        client.force_login(user)
        if user.is_superuser:
            session = client.session
            session[DEVICE_ID_SESSION_KEY] = create_confirmed_totp(user).persistent_id
            session.save()
        return client

    su, op = logged_in(admin), logged_in(operator)
    api = "/api/v1/messaging/messages/"
    fields = [f for f in COLUMNS if f != "updated_at"]
    manager = model._default_manager
    scope_ids = list(WeworkAccount.objects.filter(instance=instances[0]).values_list("pk", flat=True))

    def get(client, path, query):
        def call():
            response = client.get(path, query)
            assert response.status_code == 200, (path, response.status_code, response.content[:200])
            return response
        return call

    calls = {
        "values first": lambda: list(manager.order_by("-id").values(*fields)[:51]),
        "values deep": lambda: list(manager.filter(id__lt=deep_after).order_by("-id").values(*fields)[:51]),
        "api first": get(su, api, {"limit": 50}),
        "api deep": get(su, api, {"limit": 50, "after": deep_after}),
        "api scoped": get(op, api, {"limit": 50}),
        "api filtered": get(su, api, {"limit": 50, "chat_type": 2, "send_status": 3}),
        "admin first": get(su, "/admin/messaging/message/", {}),
        "admin search": get(su, "/admin/messaging/message/", {"q": chat}),
        "join (before)": lambda: list(manager.select_related("account").filter(
            account__instance_id__in=[instances[0].pk]).order_by("-id")[:51]),
    }
    for name, call in calls.items():  # warm and check
        call()
    stats = time_interleaved(calls, repeats=args.repeats)
    for name, s in stats.items():
        print(f"#   {name:14s} {s.summary()}")
    base, deep = stats["values first"].median_ms, stats["values deep"].median_ms
    report(f"API first page ({total:,} rows)", stats["api first"].median_ms, "ms", base, "ms (.values() page)")
    report("API deep page (after the 90 % row)", stats["api deep"].median_ms, "ms", deep, "ms (.values() deep page)")
    report("API page, user of one instance", stats["api scoped"].median_ms, "ms", base, "ms (.values() page)")
    report("API filtered page", stats["api filtered"].median_ms, "ms", base, "ms (.values() page)")
    report("admin first page", stats["admin first"].median_ms, "ms", base, "ms (.values() page)")
    report("admin exact search (chat)", stats["admin search"].median_ms, "ms", base, "ms (.values() page)")
    report("page through the accounts join (before)", stats["join (before)"].median_ms, "ms",
           base, "ms (.values() page)")
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {manager.filter(account_id__in=scope_ids).order_by('-id').values(*fields)[:51].query}")
        print("# scoped page plan:", cursor.fetchall())
    save_results(args)


if __name__ == "__main__":
    main()
