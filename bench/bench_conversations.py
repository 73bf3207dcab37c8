"""Conversations and mass-send statistics on a 1,000,000-message month, against the bare queries.

Measured in one run, on the dedicated bench database (see harness.py), MariaDB:

* Data: N messages (default 1,000,000; `--rows`, `--quick` = 100,000) over October 2026 in the
  shard `messages_202610` (raw multi-row INSERTs, secondary indexes added after the load), 200
  accounts x 10,000 chats, one received message in three; one "hot" conversation (account 0 and
  `wx_hot`) holds one message in fifty (20,000 of 1,000,000).
* conversation page -- GET /messaging/conversations/<account>/wx_hot/ (an operator with object
                       grants: scoping, the history page of 30, unread per account, the reply
                       form and quick replies), first page and a deep page (`?after=` 15,000 rows
                       down), against the bare SQL of its rows (`WHERE account_id AND chat_wxid
                       [AND id < cursor] ORDER BY id DESC LIMIT 31` on the shard).
* history service   -- `conversations.history` (shards.paginate) vs the same bare SQL.
* poll              -- GET messages.json?after_id=<newest> (nothing new) vs its bare SQL.
* EXPLAIN           -- the key and the rows MariaDB expects for the page's query.
* inbox             -- every conversation's `conversation_reads` row derived from the month
                       (one in two read); GET /messaging/inbox/ (first page, 5,000 down, one
                       account) and inbox.json (nothing new) vs the bare SQL of their rows.
* task stats        -- `stats.task_stats` of a broadcast of R receivers (default 10,000) from
                       account 0 to wx0..wx{R-1}, 24 h window, vs the bare queries it runs (the
                       receivers by id, the shard's received messages of each chunk's contacts
                       in the window's id range), and vs the same statistic asked naively (one
                       query per receiver).

Run: `.venv/bin/python bench/bench_conversations.py [--quick] [--rows N] [--receivers R]`
(BENCH_DATABASE_URL defaults to mysql://root@127.0.0.1:3306/wework_bench_convo here).
"""
import os
import random
import sys
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCH_DATABASE_URL", "mysql://root@127.0.0.1:3306/wework_bench_convo")

from harness import (
    Timer, bench_args, environment_line, report, save_results, setup_django, time_interleaved,
)

ACCOUNTS = 200
CHATS = 10_000
HOT_EVERY = 50
COLUMNS = ["id", "message_uuid", "account_id", "chat_type", "chat_wxid", "message_type", "message_content",
           "send_status", "send_time", "retry_count", "is_scheduled", "task_id", "created_at", "updated_at"]


def extra_options(parser):
    parser.add_argument("--rows", type=int, default=None, help="messages (default 1,000,000; 100,000 with --quick)")
    parser.add_argument("--receivers", type=int, default=None,
                        help="receivers of the broadcast (default 10,000; 2,000 with --quick)")


def make_world():
    from accounts.models import User
    from accounts.services.permissions import grant_instance
    from contacts.models import WeworkAccount
    from instances.models import WeworkInstance
    from wework import ids

    admin = User.objects.create(username="bench-admin", email="admin@bench.example", is_superuser=True)
    instance = WeworkInstance.objects.create(instance_uuid=ids.new_uuid(), name="bench", created_by=admin)
    WeworkAccount.objects.bulk_create([WeworkAccount(instance=instance, wxid=f"acc{i}") for i in range(ACCOUNTS)])
    accounts = list(WeworkAccount.objects.order_by("pk").values_list("pk", flat=True))
    operator = User.objects.create(username="bench-operator", email="operator@bench.example")
    grant_instance(operator, instance, ["messaging.view_message", "messaging.send_message",
                                        "messaging.view_messagetask"], granted_by=admin)
    return admin, operator, instance, accounts


def load(table, start, end, rows, accounts, task_id, batch=5000):
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
                if i % HOT_EVERY == 0:
                    account, chat = accounts[0], "wx_hot"
                else:
                    account, chat = accounts[rnd.randrange(ACCOUNTS)], f"wx{rnd.randrange(CHATS)}"
                inbound = i % 3 == 0
                values.append((msg_id, str(u), account, 1, chat, "text", f"message {i}", 2, when, 0, 0,
                               None if inbound else task_id, when, when))
            cursor.executemany(sql, values)
        cursor.execute("SET SESSION unique_checks = 1, foreign_key_checks = 1")


def make_task(admin, account_id, receivers, start):
    """A completed broadcast of `receivers` contacts wx0.., sent one a second from `start`."""
    from django.db import connection

    from messaging.models import MessageReceiver, MessageTask, TaskStatus
    from wework import ids

    task = MessageTask.objects.create(task_uuid=ids.new_uuid(), task_name="bench", task_type="broadcast",
                                      account_id=account_id, message_type="text", message_content="Sale",
                                      target_count=receivers, success_count=receivers,
                                      status=TaskStatus.COMPLETED, created_by=admin)
    table = connection.ops.quote_name(MessageReceiver._meta.db_table)
    with connection.cursor() as cursor:
        for first in range(0, receivers, 5000):
            values = []
            for i in range(first, min(receivers, first + 5000)):
                when = (start + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S")
                values.append((task.pk, 1, f"wx{i}", f"name {i}", 2, when, 0, when, when))
            cursor.executemany(
                f"INSERT INTO {table} (task_id, receiver_type, receiver_wxid, receiver_name, send_status, "
                f"send_time, retry_count, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                values)
    return task


def main():
    args = bench_args(__doc__.splitlines()[0], extra=extra_options)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    receivers = args.receivers or (2_000 if args.quick else 10_000)
    setup_django(args)
    print(environment_line(args.database_url))

    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from bench_shards import add_back_indexes, drop_secondary_indexes
    from messaging.models import Message
    from messaging.services import conversations, stats
    from wework.ids import id_bounds
    from wework.shards import router
    from wework.shards.conf import period_of, shard_timezone

    tz = shard_timezone()
    start, end = datetime(2026, 10, 1, tzinfo=tz), datetime(2026, 11, 1, tzinfo=tz)
    admin, operator, instance, accounts = make_world()
    task_start = start + timedelta(days=3)
    task = make_task(admin, accounts[0], receivers, task_start)
    shard = router.ensure_time_shard(Message, period_of("month", start), check_range=False)
    table = shard._meta.db_table
    drop_secondary_indexes(shard)
    with Timer() as t:
        load(table, start, end, rows, accounts, task.pk)
    report(f"load {rows:,} messages (raw multi-row INSERT)", rows / t.seconds, "rows/s")
    with Timer() as t:
        add_back_indexes(shard)
    report("indexes added back", t.seconds, "s")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE TABLE {table}, message_receivers")
        cursor.fetchall()

    repeats = args.repeats
    conv = conversations.open_conversation(operator, accounts[0], "wx_hot")
    deep, depth = None, 0
    while depth < 15_000:  # the cursor 15,000 messages down (or the oldest page)
        page = conversations.history(conv, after=deep, limit=1000)
        if page.next_after is None:
            break
        deep, depth = page.next_after, depth + len(page.items)
    page_sql = (f"SELECT id, account_id, chat_type, chat_wxid, message_type, message_content, media_url, file_name, "
                f"message_metadata, send_status, send_time, error_code, error_message, task_id, parent_message_id, "
                f"created_at FROM {table} WHERE account_id = %s AND chat_wxid = %s {{cursor}} ORDER BY id DESC "
                f"LIMIT 31")

    def bare(after=None):
        with connection.cursor() as cursor:
            cursor.execute(page_sql.format(cursor="AND id < %s"),
                           [accounts[0], "wx_hot", after or conversations.NO_CURSOR])
            return cursor.fetchall()

    def bare_unbounded():
        with connection.cursor() as cursor:
            cursor.execute(page_sql.format(cursor=""), [accounts[0], "wx_hot"])
            return cursor.fetchall()

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + page_sql.format(cursor="AND id < %s"), [accounts[0], "wx_hot", deep])
        cols = [c[0] for c in cursor.description]
        plan = dict(zip(cols, cursor.fetchone()))
    print(f"EXPLAIN deep page: key={plan.get('key')} type={plan.get('type')} rows={plan.get('rows')} "
          f"extra={plan.get('Extra')}")
    for label, cond, params in (("first page, no bound on id", "", []),
                                ("first page, id < 2^63-1 (what the service asks)", "AND id < %s",
                                 [conversations.NO_CURSOR])):
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + page_sql.format(cursor=cond), [accounts[0], "wx_hot", *params])
            cols = [c[0] for c in cursor.description]
            plan = dict(zip(cols, cursor.fetchone()))
        print(f"EXPLAIN {label}: key={plan.get('key')} type={plan.get('type')} rows={plan.get('rows')} "
              f"extra={plan.get('Extra')}")

    client = Client()
    client.force_login(operator)
    url = reverse("messaging:conversation", args=[accounts[0], "wx_hot"])
    assert client.get(url).status_code == 200
    poll_url = reverse("messaging:conversation_poll", args=[accounts[0], "wx_hot"])
    newest = conversations.newest_id(conv)
    s = time_interleaved({
        "page": lambda: client.get(url),
        "page deep": lambda: client.get(url, {"after": deep}),
        "service": lambda: conversations.history(conv, limit=30),
        "service deep": lambda: conversations.history(conv, after=deep, limit=30),
        "poll": lambda: client.get(poll_url, {"after_id": newest}),
        "bare": bare,
        "bare deep": lambda: bare(deep),
        "bare unbounded": bare_unbounded,
    }, repeats=repeats)
    report("first page's bare SQL with id < 2^63-1", s["bare"].median_ms, "ms", s["bare unbounded"].median_ms,
           "ms (the same without a bound on id: ref + filesort)")
    report("conversation page, first (GET, rendered)", s["page"].median_ms, "ms", s["bare"].median_ms,
           "ms (bare SQL of its rows)")
    report(f"conversation page, {depth:,} messages down (GET ?after=)", s["page deep"].median_ms, "ms",
           s["bare deep"].median_ms, "ms (bare SQL)")
    report("history service, first page (shards.paginate)", s["service"].median_ms, "ms", s["bare"].median_ms,
           "ms (bare SQL)")
    report("history service, deep page", s["service deep"].median_ms, "ms", s["bare deep"].median_ms,
           "ms (bare SQL)")
    report("poll messages.json (nothing new, with unread)", s["poll"].median_ms, "ms", s["bare"].median_ms,
           "ms (bare SQL of a page)")

    inbox_bench(client, table, accounts, repeats)

    # --- statistics -------------------------------------------------------------------------
    wxids = [f"wx{i}" for i in range(receivers)]
    low, high = id_bounds(task_start, task_start + timedelta(seconds=receivers) + timedelta(hours=24))

    def bare_stats():
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, receiver_type, receiver_wxid, send_status, send_time FROM message_receivers "
                           "WHERE task_id = %s ORDER BY id", [task.pk])
            got = cursor.fetchall()
            for first in range(0, len(wxids), stats.CHUNK):
                chunk = wxids[first:first + stats.CHUNK]
                cursor.execute(f"SELECT chat_wxid, id FROM {table} WHERE account_id = %s AND chat_wxid IN "
                               f"({', '.join(['%s'] * len(chunk))}) AND id >= %s AND id < %s AND task_id IS NULL",
                               [accounts[0], *chunk, low, high])
                cursor.fetchall()
            return got

    def naive_stats():
        with connection.cursor() as cursor:
            cursor.execute("SELECT receiver_wxid, send_time FROM message_receivers WHERE task_id = %s", [task.pk])
            for wxid, _sent in cursor.fetchall():
                cursor.execute(f"SELECT 1 FROM {table} WHERE account_id = %s AND chat_wxid = %s AND id >= %s "
                               f"AND id < %s AND task_id IS NULL LIMIT 1", [accounts[0], wxid, low, high])
                cursor.fetchall()

    figures = stats.task_stats(task, 24, use_cache=False)
    print(f"task stats: {figures['totals']}")
    s = time_interleaved({
        "stats": lambda: stats.task_stats(task, 24, use_cache=False),
        "bare": bare_stats,
        "naive": naive_stats,
    }, repeats=max(3, repeats // 20))
    report(f"task stats, {receivers:,} receivers, 24 h window", s["stats"].median_ms, "ms", s["bare"].median_ms,
           "ms (its bare queries)")
    report(f"task stats, {receivers:,} receivers", s["stats"].median_ms, "ms", s["naive"].median_ms,
           "ms (naive: one query per receiver)")
    report_page = reverse("messaging:task_report", args=[task.pk])
    csv_url = reverse("messaging:task_report_csv", args=[task.pk])

    def csv_export():
        response = client.get(csv_url)
        return sum(len(chunk) for chunk in response.streaming_content)

    s = time_interleaved({"report": lambda: client.get(report_page), "csv": csv_export, "bare": bare_stats},
                         repeats=max(3, repeats // 20))
    report("report page (stats cached for a minute after the first)", s["report"].median_ms, "ms",
           s["bare"].median_ms, "ms (bare queries of the stats)")
    report(f"CSV export, {receivers:,} rows streamed", s["csv"].median_ms, "ms", s["bare"].median_ms,
           "ms (bare queries of the stats)")
    save_results(args, "conversations")


def inbox_bench(client, table, accounts, repeats):
    """The inbox: every conversation of the loaded month gets its `conversation_reads` row (as
    the inbound handler keeps it: its newest received message), one in two read; the page
    (all 200 accounts of the operator's instance: the walk of `idx_unread`; one account: its
    `idx_account_unread` range), a page 5,000 conversations down and the poll, against the bare
    SQL of their rows."""
    from django.db import connection
    from django.urls import reverse

    with Timer() as t, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO conversation_reads (account_id, chat_wxid, chat_type, last_read_message_id, "
            "last_inbound_message_id, last_inbound_at, last_inbound_preview, has_unread, updated_at) "
            "SELECT account_id, chat_wxid, 1, IF(MAX(id) % 2 = 0, MAX(id), 0), MAX(id), MAX(created_at), "
            f"'message', IF(MAX(id) % 2 = 0, 0, 1), NOW() FROM {table} WHERE task_id IS NULL "
            "GROUP BY account_id, chat_wxid")
        cursor.execute("SELECT COUNT(*), SUM(has_unread) FROM conversation_reads")
        total, unread = cursor.fetchone()
        cursor.execute("ANALYZE TABLE conversation_reads")
        cursor.fetchall()
    print(f"inbox: {total:,} conversations, {int(unread):,} unread ({t.seconds:.1f} s to derive)")
    sql = ("SELECT id, account_id, chat_wxid, chat_type, last_inbound_message_id, last_inbound_at, "
           "last_inbound_preview, last_read_message_id FROM conversation_reads WHERE has_unread = 1 {cond} "
           "ORDER BY last_inbound_message_id DESC LIMIT 31")

    def bare(cond="", params=()):
        with connection.cursor() as cursor:
            cursor.execute(sql.format(cond=cond), list(params))
            return cursor.fetchall()

    with connection.cursor() as cursor:
        cursor.execute("SELECT last_inbound_message_id FROM conversation_reads WHERE has_unread = 1 "
                       "ORDER BY last_inbound_message_id DESC LIMIT 1 OFFSET 5000")
        deep = cursor.fetchone()[0]
        cursor.execute("SELECT MAX(last_inbound_message_id) FROM conversation_reads")
        newest = cursor.fetchone()[0]
        for label, cond, params in (("all accounts", "", []), ("one account", "AND account_id = %s", [accounts[1]])):
            cursor.execute("EXPLAIN " + sql.format(cond=cond), params)
            cols = [c[0] for c in cursor.description]
            plan = dict(zip(cols, cursor.fetchone()))
            print(f"EXPLAIN inbox, {label}: key={plan.get('key')} type={plan.get('type')} rows={plan.get('rows')} "
                  f"extra={plan.get('Extra')}")
    url, poll = reverse("messaging:inbox"), reverse("messaging:inbox_poll")
    assert client.get(url).status_code == 200
    s = time_interleaved({
        "inbox": lambda: client.get(url),
        "inbox deep": lambda: client.get(url, {"before": deep}),
        "inbox account": lambda: client.get(url, {"account": accounts[1]}),
        "poll": lambda: client.get(poll, {"after": newest}),
        "bare": bare,
        "bare deep": lambda: bare("AND last_inbound_message_id < %s", [deep]),
        "bare account": lambda: bare("AND account_id = %s", [accounts[1]]),
        "bare poll": lambda: bare("AND last_inbound_message_id > %s", [newest]),
    }, repeats=repeats)
    report(f"inbox page, {int(unread):,} unread conversations (GET, rendered)", s["inbox"].median_ms, "ms",
           s["bare"].median_ms, "ms (bare SQL of its rows)")
    report("inbox page, 5,000 conversations down (GET ?before=)", s["inbox deep"].median_ms, "ms",
           s["bare deep"].median_ms, "ms (bare SQL)")
    report("inbox page, one account (GET ?account=)", s["inbox account"].median_ms, "ms",
           s["bare account"].median_ms, "ms (bare SQL)")
    report("inbox poll inbox.json (nothing new)", s["poll"].median_ms, "ms", s["bare poll"].median_ms,
           "ms (bare SQL)")


if __name__ == "__main__":
    main()
