"""Shards: reads on a 5,000,000-message month, sharded vs one unsharded table; rotation timing.

Measured in one run, on the dedicated bench database (see harness.py), MariaDB:

* Data: N messages (default 5,000,000; `--rows` scales down, `--quick` = 200,000) spread evenly
  over October 2026, 200 accounts x 500 chats, loaded with raw multi-row INSERTs into the shard
  `messages_202610` the shard layer created (secondary indexes dropped during the load and added
  back by `sync-schema`), then copied into the plain `messages` table (the unsharded baseline,
  same rows, same indexes).
* fetch by id        -- `shards.get(Message, id)` vs `Message.objects.get(pk=id)` on the plain
                        table (and the raw SQL of the lookup as the floor).
* newest page 24h    -- `shards.paginate(Message, since, until, limit=50)` vs the plain table's
                        `filter(created_at__range).order_by("-id")[:50]`.
* account chat page  -- one account's chat with one contact, newest 50, `shards.paginate` with
                        filters vs the plain table with the same filter; then the next page by
                        keyset (cursor) on both.
* rotate             -- 24 monthly shards (2023-01 .. 2024-12, 2,000 rows each) at --now
                        2025-01-15: time of `plan` (median) and of one `rotate` apply (create 3
                        ahead, demote 11, export + drop 12).

Run: `.venv/bin/python bench/bench_shards.py [--quick] [--rows N]` (BENCH_DATABASE_URL defaults
to mysql://root@127.0.0.1:3306/wework_bench_shards here).
"""
import os
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCH_DATABASE_URL", "mysql://root@127.0.0.1:3306/wework_bench_shards")

from harness import (
    Timer, bench_args, environment_line, report, save_results, setup_django, time_call,
    time_interleaved,
)

ACCOUNTS = 200
CHATS = 500


def extra_options(parser):
    parser.add_argument("--rows", type=int, default=None,
                        help="messages in the month (default 5,000,000; 200,000 with --quick)")
    parser.add_argument("--skip-rotate", action="store_true")


def make_accounts():
    from accounts.models import User
    from contacts.models import WeworkAccount
    from instances.models import WeworkInstance
    from wework import ids

    user = User.objects.create(username="bench")
    instance = WeworkInstance.objects.create(instance_uuid=ids.new_uuid(), name="bench", created_by=user)
    WeworkAccount.objects.bulk_create(
        [WeworkAccount(instance=instance, wxid=f"acc{i}") for i in range(ACCOUNTS)]
    )
    return list(WeworkAccount.objects.order_by("pk").values_list("pk", flat=True))


COLUMNS = ["id", "message_uuid", "account_id", "chat_type", "chat_wxid", "message_type",
           "message_content", "send_status", "send_time", "retry_count", "is_scheduled",
           "created_at", "updated_at"]


def load(table, start, end, rows, accounts, batch=5000):
    """Raw multi-row INSERTs (mysqlclient batches executemany into one statement per chunk)."""
    import uuid

    from django.db import connection

    from wework import ids

    rnd = random.Random(7)
    span_ms = int((end - start).total_seconds() * 1000)
    start_ms = int(start.timestamp() * 1000)
    step = span_ms / rows
    sql = (f"INSERT INTO {connection.ops.quote_name(table)} ({', '.join(COLUMNS)}) VALUES "
           f"({', '.join(['%s'] * len(COLUMNS))})")
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        for first in range(0, rows, batch):
            values = []
            for i in range(first, min(rows, first + batch)):
                ms = start_ms + int(i * step)
                when = datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")
                msg_id = ids.SnowflakeGenerator._compose(ms, 1, i & ids.MAX_SEQUENCE)
                u = uuid.UUID(int=((ms << 80) | (0x7 << 76) | (rnd.getrandbits(12) << 64)
                                   | (0b10 << 62) | rnd.getrandbits(62)))
                values.append((msg_id, str(u), accounts[rnd.randrange(ACCOUNTS)], 1,
                               f"wx{rnd.randrange(CHATS)}", "text", f"message {i}", 2, when, 0, 0,
                               when, when))
            cursor.executemany(sql, values)
        cursor.execute("SET SESSION unique_checks = 1, foreign_key_checks = 1")


def drop_secondary_indexes(model):
    from django.db import connection

    with connection.schema_editor() as editor:
        for index in model._meta.indexes:
            editor.remove_index(model, index)
        for constraint in model._meta.constraints:
            editor.remove_constraint(model, constraint)


def add_back_indexes(model):
    from django.db import connection

    with connection.schema_editor() as editor:
        for index in model._meta.indexes:
            editor.add_index(model, index)
        for constraint in model._meta.constraints:
            editor.add_constraint(model, constraint)


def bench_reads(args, rows):
    from django.db import connection

    from messaging.models import Message
    from wework import shards
    from wework.shards import ddl, router
    from wework.shards.conf import period_of, shard_timezone

    tz = shard_timezone()
    start, end = datetime(2026, 10, 1, tzinfo=tz), datetime(2026, 11, 1, tzinfo=tz)
    accounts = make_accounts()
    shard = router.ensure_time_shard(Message, period_of("month", start), check_range=False)
    table = shard._meta.db_table
    drop_secondary_indexes(shard)
    with Timer() as t:
        load(table, start, end, rows, accounts)
    report(f"load {rows:,} rows (raw multi-row INSERT, no secondary indexes)", rows / t.seconds, "rows/s")
    with Timer() as t:
        changes = ddl.sync_schema(shard)
    report(f"sync-schema adds back {len(changes)} indexes on the shard", t.seconds, "s")
    drop_secondary_indexes(Message)
    with Timer() as t, connection.cursor() as cursor:
        cols = ", ".join(connection.ops.quote_name(f.column) for f in Message._meta.local_fields)
        cursor.execute(f"INSERT INTO messages ({cols}) SELECT {cols} FROM {table}")
    report("copy into the unsharded table", rows / t.seconds, "rows/s")
    with Timer() as t:
        add_back_indexes(Message)
    report("indexes on the unsharded table", t.seconds, "s")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE TABLE {table}, messages")
        cursor.fetchall()

    rnd = random.Random(11)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table} ORDER BY RAND(3) LIMIT 2000")
        sample_ids = [r[0] for r in cursor.fetchall()]
    repeats = args.repeats
    plain = Message.objects

    def pick():
        return sample_ids[rnd.randrange(len(sample_ids))]

    def raw_by_id():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pick()])
            cursor.fetchall()

    stats = time_interleaved({
        "sharded": lambda: shards.get(Message, pick()),
        "plain": lambda: plain.get(pk=pick()),
        "raw": raw_by_id,
    }, repeats=repeats * 5)
    report("fetch by id, sharded (shards.get)", stats["sharded"].median_ms, "ms",
           stats["plain"].median_ms, "ms (unsharded ORM get)")
    report("fetch by id, unsharded ORM get", stats["plain"].median_ms, "ms",
           stats["raw"].median_ms, "ms (raw SQL on the shard)")
    p95 = {k: v.p(95) for k, v in stats.items()}

    now = end - timedelta(hours=1)
    since = now - timedelta(hours=24)
    low, high = shards.id_bounds(since, now)
    stats = time_interleaved({
        "sharded": lambda: shards.paginate(Message, since=since, until=now, limit=50).items,
        "plain": lambda: list(plain.filter(created_at__gte=since, created_at__lt=now).order_by("-id")[:50]),
        "plain ids": lambda: list(plain.filter(id__gte=low, id__lt=high).order_by("-id")[:50]),
    }, repeats=repeats)
    report("newest page of the last 24 h, sharded (keyset on id bounds)", stats["sharded"].median_ms, "ms",
           stats["plain"].median_ms, "ms (unsharded, created_at range)")
    # The gain above comes from the time-ordered ids, not from the split: the same id-bounds
    # query on the unsharded table.
    report("newest page of the last 24 h, sharded", stats["sharded"].median_ms, "ms",
           stats["plain ids"].median_ms, "ms (unsharded, id bounds)")
    p95.update({f"24h {k}": v.p(95) for k, v in stats.items()})

    first_page = shards.paginate(Message, filters={"account_id": accounts[7], "chat_wxid": "wx42"}, limit=50)
    cursor_id = first_page.next_after

    def chat_sharded(after=None):
        return shards.paginate(Message, filters={"account_id": accounts[7], "chat_wxid": "wx42"},
                               after=after, limit=50).items

    def chat_plain(after=None):
        qs = plain.filter(account_id=accounts[7], chat_wxid="wx42")
        if after:
            qs = qs.filter(id__lt=after)
        return list(qs.order_by("-id")[:50])

    assert [m.id for m in chat_sharded()] == [m.id for m in chat_plain()]
    stats = time_interleaved({
        "sharded": chat_sharded, "plain": chat_plain,
        "sharded next": lambda: chat_sharded(cursor_id), "plain next": lambda: chat_plain(cursor_id),
    }, repeats=repeats)
    report("account chat page (newest 50), sharded", stats["sharded"].median_ms, "ms",
           stats["plain"].median_ms, "ms (unsharded)")
    report("account chat next page (keyset), sharded", stats["sharded next"].median_ms, "ms",
           stats["plain next"].median_ms, "ms (unsharded)")
    for name, value in p95.items():
        print(f"  p95 {name}: {value:.3f} ms")


def bench_rotate(args):
    from django.db import connection

    from messaging.models import Message
    from wework.shards import router, services
    from wework.shards.conf import period_of, shard_timezone

    tz = shard_timezone()
    period = period_of("month", datetime(2023, 1, 10, tzinfo=tz))
    per_shard = 200 if args.quick else 2000
    accounts = list(__import__("contacts.models", fromlist=["WeworkAccount"]).WeworkAccount.objects
                    .values_list("pk", flat=True)) or make_accounts()
    with Timer() as t:
        for _ in range(24):
            shard = router.ensure_time_shard(Message, period, check_range=False)
            load(shard._meta.db_table, period.start, period.end, per_shard, accounts)
            period = period.next()
    report("create + fill 24 monthly shards", t.seconds, "s")
    now = datetime(2025, 1, 15, 12, tzinfo=tz)
    labels = ["messaging.Message"]
    # Only the 24 test shards count: hide the 5M-row month from this plan by its period
    # (it is in 2026 and untouched at this --now anyway).
    stats = time_call(lambda: services.plan(now=now, labels=labels), repeats=20)
    steps = services.plan(now=now, labels=labels)
    kinds = {k: sum(s.action == k for s in steps) for k in ("create", "demote", "export", "drop")}
    report(f"rotate plan over 24 monthly shards ({kinds})", stats.median_ms, "ms")
    with Timer() as t:
        services.rotate(now=now, labels=labels)
    report(f"rotate apply ({len(steps)} steps, {per_shard:,} rows exported per dropped shard)",
           t.seconds * 1000, "ms")
    stats = time_call(lambda: services.plan(now=now, labels=labels), repeats=20)
    report("rotate plan again (nothing to do)", stats.median_ms, "ms")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def main():
    args = bench_args("Shards: sharded vs unsharded reads on 5M messages; rotation", extra=extra_options)
    rows = args.rows or (200_000 if args.quick else 5_000_000)
    setup_django(args)
    import tempfile

    from django.conf import settings

    settings.SHARDING_EXPORT_DIR = tempfile.mkdtemp(prefix="bench-shards-")
    print(environment_line())
    started = time.perf_counter()
    bench_reads(args, rows)
    if not args.skip_rotate:
        bench_rotate(args)
    print(f"total {time.perf_counter() - started:.0f} s")
    save_results(args)


if __name__ == "__main__":
    main()
