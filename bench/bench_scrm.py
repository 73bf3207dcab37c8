"""Private-domain operations: tagging 100,000 contacts in bulk, and a segment's live count.

Measured in one run on a dedicated bench database (see harness.py), MariaDB by default
(BENCH_DATABASE_URL defaults to mysql://root@127.0.0.1:3306/wework_scrm_bench here):

* Data: one instance, one account, N contacts (default 100,000; `--quick` 10,000) in the
  instance's shard.
* bulk tag        -- `services.tags.tag_contacts` of every contact with one tag (join rows
                     written, the design's `tags` column rewritten, audited), against the raw
                     floor: the same join rows by multi-row INSERT and one UPDATE of the column
                     (raw SQL, same driver), with another tag.
* segment count   -- `services.segments.count` of "tagged vip, not opted out" (capped at
                     10,000: LIMIT 10,001 ids) against the bare `SELECT COUNT(*)` of the same
                     condition (EXISTS subqueries), and uncapped (cap = N).

Run: `.venv/bin/python bench/bench_scrm.py [--quick] [--rows N]`.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCH_DATABASE_URL", "mysql://root@127.0.0.1:3306/wework_scrm_bench")

from harness import Timer, bench_args, environment_line, report, save_results, setup_django, time_call


def _extra(parser):
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--profile", default="", help="write a cProfile of the bulk tagging to this file")


def main():
    args = bench_args("scrm: bulk tagging and segment counts",
                      extra=_extra)
    url = setup_django(args)
    rows = args.rows or (10_000 if args.quick else 100_000)
    print(environment_line(url))

    from django.db import connection

    from contacts.models import Contact, WeworkAccount
    from instances.models import WeworkInstance
    from scrm.models import Segment, Tag, TagGroup
    from scrm.services import segments, tags
    from wework import shards

    from accounts.models import User
    from wework.ids import new_uuid

    owner = User.objects.create_superuser("bench", "bench@example.com", "pw-bench-123456")
    instance = WeworkInstance.objects.create(instance_uuid=new_uuid(), name="bench", api_url="http://127.0.0.1:9",
                                             created_by=owner)
    account = WeworkAccount.objects.create(instance=instance, wxid="wxid_bench_account")
    for start in range(0, rows, 5000):
        shards.bulk_create(Contact, [{"account_id": account.pk, "wxid": f"wxid_c{n:07d}", "nickname": f"C{n}",
                                      "tags": ["synced"]} for n in range(start, min(rows, start + 5000))],
                           instance_id=instance.pk)
    table = shards.for_instance(Contact, instance.pk).model._meta.db_table
    wxids = [f"wxid_c{n:07d}" for n in range(rows)]
    group = TagGroup.objects.create(name="bench")
    vip, raw_tag = Tag.objects.create(group=group, name="vip"), Tag.objects.create(group=group, name="raw")

    # raw floor: join rows by multi-row INSERT, one UPDATE of the column
    with Timer() as raw:
        with connection.cursor() as cur:
            for start in range(0, rows, 1000):
                part = wxids[start:start + 1000]
                cur.execute("INSERT INTO scrm_contact_tags (tag_id, account_id, contact_wxid, source, created_at) "
                            "VALUES " + ",".join(["(%s, %s, %s, 'manual', NOW())"] * len(part)),
                            [v for w in part for v in (raw_tag.pk, account.pk, w)])
            cur.execute(f"UPDATE {connection.ops.quote_name(table)} SET tags = %s WHERE account_id = %s",
                        ['["synced", "raw"]', account.pk])
    profiler = None
    if args.profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    with Timer() as service:
        added = tags.tag_contacts(None, account, wxids, [vip])
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    assert added == rows
    report(f"bulk tag {rows} contacts", service.seconds, "s", raw.seconds, "s (raw SQL)")

    segment = Segment.objects.create(name="vip", instance=instance, tags_any=["vip"], opted_out=False)
    capped = time_call(lambda: segments.count(segment), repeats=args.repeats if args.quick else 10, warmup=1)
    full = time_call(lambda: segments.count(segment, cap=rows), repeats=5, warmup=1)
    qt = connection.ops.quote_name(table)
    bare_sql = (f"SELECT COUNT(*) FROM {qt} c WHERE EXISTS (SELECT 1 FROM scrm_contact_tags t JOIN scrm_tags g "
                f"ON g.id = t.tag_id WHERE t.account_id = c.account_id AND t.contact_wxid = c.wxid AND "
                f"g.name = 'vip') AND NOT EXISTS (SELECT 1 FROM scrm_opt_outs o WHERE o.account_id = c.account_id "
                f"AND o.contact_wxid = c.wxid AND o.is_opted_out)")

    def bare():
        with connection.cursor() as cur:
            cur.execute(bare_sql)
            return cur.fetchone()[0]

    assert bare() == rows
    bare_stats = time_call(bare, repeats=5, warmup=1)
    report("segment count (capped at 10,000)", capped.median_ms, "ms", bare_stats.median_ms, "ms (bare COUNT(*))")
    report(f"segment count (uncapped, {rows})", full.median_ms, "ms", bare_stats.median_ms, "ms (bare COUNT(*))")
    save_results(args, "scrm")


if __name__ == "__main__":
    main()
