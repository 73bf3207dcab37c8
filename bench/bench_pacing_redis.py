"""Pacing decisions per second on single Redis and on a Redis Cluster, in the same run.

Each decision is one `reserve()` of messaging.pacing (the Lua script over one account's keys,
under one hash tag on the cluster), for 200 accounts in turn, no limit reached. Baseline: a bare
`INCR` round trip on the same client (what one Redis command costs there).

Run: `BENCH_REDIS_URL=redis://127.0.0.1:6379/7 BENCH_REDIS_CLUSTER_URL=redis+cluster://127.0.0.1:7001
.venv/bin/python bench/bench_pacing_redis.py [--quick]` (needs no database; the cluster of
`scripts/services up redis-cluster`). Without BENCH_REDIS_CLUSTER_URL only single Redis is measured.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wework.test_settings")


def measure(url, n):
    from messaging import pacing
    from wework import redis_conn

    client = redis_conn.make_client(url)
    pacer = pacing._RedisPacer(client)
    limits = pacing.Limits(min_interval_s=0, jitter_s=0, per_minute=0, daily=0)
    accounts = [900000 + i for i in range(200)]
    for a in accounts:
        pacer.reset(a)
    start = time.perf_counter()
    for i in range(n):
        pacer.reserve(accounts[i % len(accounts)], limits, 30.0, conversation_id=f"c{i % 50}")
    decisions = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(n):
        client.incr(f"wework:bench:{{{accounts[i % len(accounts)]}}}:n")
    raw = n / (time.perf_counter() - start)
    for a in accounts:
        pacer.reset(a)
        client.delete(f"wework:bench:{{{a}}}:n")
    return decisions, raw


def main():
    import django

    django.setup()
    n = 2000 if "--quick" in sys.argv else 20000
    targets = [("single Redis", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"))]
    if os.environ.get("BENCH_REDIS_CLUSTER_URL"):
        targets.append(("Redis Cluster", os.environ["BENCH_REDIS_CLUSTER_URL"]))
    for name, url in targets:
        decisions, raw = measure(url, n)
        print(f"pacing decisions/s ({name}): {decisions:.0f} /s | baseline INCR: {raw:.0f} /s | "
              f"ratio: {decisions / raw:.2f}")


if __name__ == "__main__":
    main()
