"""Drill: 10,000 short-lived processes in a row take Snowflake ids (issue 16).

Each process (forked, 8 alive at a time) leases a worker id, makes one live id and one id for a
fixed past time, and exits; none may fail for want of a worker id (1,024 exist, each lease lives
WEWORK_ID_LEASE_TTL_S = 30 s unless given back at exit) and all ids must be distinct.
Prints the processes, failures, distinct ids, distinct worker ids seen and processes/s.

Run: `REDIS_URL=redis://127.0.0.1:6379/7 .venv/bin/python bench/drill_id_leases.py [N]`
(or a `redis+cluster://` URL; without REDIS_URL the file locks of one host are drilled).
"""
import multiprocessing
import os
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wework.test_settings")

PAST = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


def child(queue):
    from wework import ids

    try:
        queue.put((ids._generator._lease.get(), ids.new_id(), ids.new_id(PAST), None))
    except Exception as exc:  # noqa: BLE001 - counted by the drill
        queue.put((None, None, None, repr(exc)))


def main():
    import django

    django.setup()
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    results = []
    start = time.perf_counter()
    done = 0
    while done < total:
        batch = [ctx.Process(target=child, args=(queue,)) for _ in range(min(8, total - done))]
        for p in batch:
            p.start()
        results.extend(queue.get(timeout=120) for _ in batch)
        for p in batch:
            p.join(30)
        done += len(batch)
    took = time.perf_counter() - start
    failures = [r[3] for r in results if r[3]]
    values = [v for r in results if not r[3] for v in (r[1], r[2])]
    print(f"drill_id_leases ({os.environ.get('REDIS_URL') or 'file locks'}): {total} processes, "
          f"{len(failures)} failed, {len(set(values))}/{len(values)} ids distinct, "
          f"{len({r[0] for r in results if not r[3]})} worker ids used, {total / took:.0f} processes/s")
    if failures:
        print("first failure:", failures[0])
    sys.exit(1 if failures or len(set(values)) != len(values) else 0)


if __name__ == "__main__":
    main()
