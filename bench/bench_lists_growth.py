"""Lists as their shards grow: an instance's contacts (1,000,000 rows) and a month of messages
measured at 100,000, 1,000,000 and 5,000,000 rows (issue 13: flat is the goal).

One run, on a dedicated MariaDB database (`wework_scale_growth` unless BENCH_DATABASE_URL or
--database-url says otherwise). Shards are filled by raw multi-row INSERT (5,000 rows a
statement). Every figure is a median of interleaved calls against the bare ORM page of the same
shard, measured in the same run at the same size:

contacts (one instance's shard, --contacts rows):
* values first     -- `.values()` of the API's columns, ORDER BY id DESC LIMIT 51
* api first        -- GET /api/v1/contacts/?instance=&limit=50 (keyset, no COUNT)
* api search       -- ?search=<a nickname's beginning> (LIKE 'x%' on idx nickname)
* admin first      -- the contacts changelist of the instance (count capped, accounts after)
* admin search     -- ?q=<a WeCom ID> ((account, wxid) with the instance's accounts)

messages (the month's shard, at each of --steps):
* values first / values deep (id < the 90 % row)
* api first, api deep (?after= the 90 % row), admin first, admin search (a chat's WeCom ID)

Requests go through Django's test client in this process (the full middleware stack, session
authentication, FilterSet, serializer), not through gunicorn.
Run: `.venv/bin/python bench/bench_lists_growth.py [--contacts N] [--steps 100000,1000000,5000000]
[--repeats 15] [--keep-db --reuse-db]`.
"""
import os
import random
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCH_DATABASE_URL", "mysql://root@127.0.0.1:3306/wework_scale_growth")

from bench_lists import COLUMNS, fill_month
from harness import Timer, bench_args, environment_line, save_results, setup_django, time_interleaved


def extra_options(parser):
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts in the instance's shard")
    parser.add_argument("--steps", default="100000,1000000,5000000",
                        help="sizes of the month's shard to measure at, comma-separated")


def fill_contacts(model, accounts, rows, start=0, batch=5000):
    from django.db import connection
    from django.utils import timezone

    table = connection.ops.quote_name(model._meta.db_table)
    cols = ["account_id", "wxid", "nickname", "remark", "contact_type", "created_at", "updated_at"]
    head = f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
    mark = "(" + ", ".join(["%s"] * len(cols)) + ")"
    now = timezone.now().replace(tzinfo=None)
    rnd = random.Random(7)
    names = ["Li", "Wang", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu"]
    done = 0
    with connection.cursor() as cursor:
        while done < rows:
            n = min(batch, rows - done)
            values = []
            for i in range(start + done, start + done + n):
                values.extend([accounts[i % len(accounts)], f"wxid_g{i}", f"{rnd.choice(names)} {i}",
                               f"r{i}" if i % 3 == 0 else None, 1, now, now])
            cursor.execute(head + ", ".join([mark] * n), values)
            done += n
        cursor.execute(f"ANALYZE TABLE {table}")


def ratio_line(name, stats, base):
    s = stats[name]
    return f"{name:14s} median {s.median_ms:8.2f} ms  p95 {s.p(95):8.2f} ms  ratio {s.median_ms / base:6.2f}"


def main():
    args = bench_args(__doc__.splitlines()[0], extra=extra_options)
    url = setup_django(args)
    steps = [int(x) for x in args.steps.split(",") if x]

    from django.test import Client
    from django.utils import timezone
    from django_otp import DEVICE_ID_SESSION_KEY

    from accounts.models import User
    from accounts.services.otp import create_confirmed_totp
    from contacts.models import Contact, WeworkAccount
    from instances.models import WeworkInstance
    from messaging.models import Message
    from wework import shards
    from wework.shards.conf import period_of

    environment_line(url)
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser(
        "bench-admin", "bench-admin@example.com", "x")
    instance = WeworkInstance.objects.filter(name="bench-g").first() or WeworkInstance.objects.create(
        name="bench-g", instance_uuid=str(uuid.uuid4()), created_by=admin)
    accounts = []
    for i in range(20):
        account, _ = WeworkAccount.objects.get_or_create(instance=instance, wxid=f"wxid_gbench_{i}",
                                                         defaults={"status": 1})
        accounts.append(account.pk)
    client = Client()
    client.force_login(admin)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = create_confirmed_totp(admin).persistent_id
    session.save()

    def get(path, query):
        def call():
            response = client.get(path, query)
            assert response.status_code == 200, (path, response.status_code, response.content[:300])
            return response
        return call

    # --- contacts --------------------------------------------------------------------------------
    shards.create_instance_shards(instance.pk)
    cmodel = shards.model_for(Contact, instance_id=instance.pk)
    cman = cmodel._default_manager
    present = cman.count()
    if present < args.contacts:
        with Timer() as fill:
            fill_contacts(cmodel, accounts, args.contacts - present, start=present)
        print(f"# filled {cmodel._meta.db_table} with {args.contacts - present:,} contacts in {fill.seconds:.1f} s")
    ccols = ["id", "account_id", "wxid", "nickname", "remark", "contact_type", "created_at"]
    calls = {
        "values first": lambda: list(cman.order_by("-id").values(*ccols)[:51]),
        "api first": get("/api/v1/contacts/", {"instance": instance.pk, "limit": 50}),
        "api search": get("/api/v1/contacts/", {"instance": instance.pk, "limit": 50, "search": "Zhou 12"}),
        "admin first": get("/admin/contacts/contact/", {"instance": instance.pk}),
        "admin search": get("/admin/contacts/contact/", {"instance": instance.pk, "q": "wxid_g4242"}),
    }
    for call in calls.values():
        call()
    stats = time_interleaved(calls, repeats=args.repeats)
    print(f"\n## contacts shard {cmodel._meta.db_table}: {cman.count():,} rows")
    for name in calls:
        print("#   " + ratio_line(name, stats, stats["values first"].median_ms))

    # --- messages, growing -------------------------------------------------------------------------
    now = timezone.now()
    period = period_of("month", now)
    model = shards.model_for(Message, when=now)
    manager = model._default_manager
    fields = [f for f in COLUMNS if f != "updated_at"]
    table_rows = []
    for size in steps:
        present = manager.count()
        if present < size:
            with Timer() as fill:
                fill_month(model, accounts, period.start, now, size - present)
            print(f"# filled {size - present:,} messages in {fill.seconds:.1f} s "
                  f"({(size - present) / fill.seconds:,.0f} rows/s)")
        total = manager.count()
        deep = manager.order_by("-id").values_list("id", flat=True)[int(total * 0.9)]
        chat = manager.filter(account_id=accounts[0]).order_by("-id").values_list("chat_wxid", flat=True).first()
        calls = {
            "values first": lambda: list(manager.order_by("-id").values(*fields)[:51]),
            "values deep": lambda deep=deep: list(manager.filter(id__lt=deep).order_by("-id").values(*fields)[:51]),
            "api first": get("/api/v1/messaging/messages/", {"limit": 50}),
            "api deep": get("/api/v1/messaging/messages/", {"limit": 50, "after": deep}),
            "admin first": get("/admin/messaging/message/", {}),
            "admin search": get("/admin/messaging/message/", {"q": chat}),
        }
        for call in calls.values():
            call()
        stats = time_interleaved(calls, repeats=args.repeats)
        print(f"\n## messages shard {model._meta.db_table}: {total:,} rows")
        for name in calls:
            base = stats["values deep" if "deep" in name else "values first"].median_ms
            print("#   " + ratio_line(name, stats, base))
        table_rows.append((total, {name: s.median_ms for name, s in stats.items()}))
    print("\n| rows | values page | API first | API deep | admin first | admin search |")
    print("|---|---|---|---|---|---|")
    for total, m in table_rows:
        print(f"| {total:,} | {m['values first']:.2f} ms | {m['api first']:.1f} ms | {m['api deep']:.1f} ms "
              f"| {m['admin first']:.1f} ms | {m['admin search']:.1f} ms |")
    save_results(args)


if __name__ == "__main__":
    main()
