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


class Target:
    """One Redis (single or cluster): its pacer on 200 accounts and a bare INCR on the same client."""

    def __init__(self, url):
        from messaging import pacing
        from wework import redis_conn

        self.client = redis_conn.make_client(url)
        self.pacer = pacing._RedisPacer(self.client)
        self.limits = pacing.Limits(min_interval_s=0, jitter_s=0, per_minute=0, daily=0)
        self.accounts = [900000 + i for i in range(200)]
        self.clean()
        self.decision_s = self.incr_s = 0.0
        self.decisions = self.incrs = 0

    def clean(self):
        for a in self.accounts:
            self.pacer.reset(a)
            self.client.delete(f"wework:bench:{{{a}}}:n")

    def run(self, n):
        accounts, pacer, limits, client = self.accounts, self.pacer, self.limits, self.client
        start = time.perf_counter()
        for i in range(n):
            pacer.reserve(accounts[i % len(accounts)], limits, 30.0, conversation_id=f"c{i % 50}")
        self.decision_s += time.perf_counter() - start
        start = time.perf_counter()
        for i in range(n):
            client.incr(f"wework:bench:{{{accounts[i % len(accounts)]}}}:n")
        self.incr_s += time.perf_counter() - start
        self.decisions += n
        self.incrs += n


def main():
    import django

    django.setup()
    n = 2000 if "--quick" in sys.argv else 20000
    targets = [("single Redis", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"))]
    if os.environ.get("BENCH_REDIS_CLUSTER_URL"):
        targets.append(("Redis Cluster", os.environ["BENCH_REDIS_CLUSTER_URL"]))
    # Interleaved in 10 rounds (each target, then the next), so that the load of the shared
    # machine falls on both alike.
    measured = [(name, Target(url)) for name, url in targets]
    for _round in range(10):
        for _name, target in measured:
            target.run(n // 10)
    for name, target in measured:
        target.clean()
        decisions, raw = target.decisions / target.decision_s, target.incrs / target.incr_s
        print(f"pacing decisions/s ({name}): {decisions:.0f} /s | baseline INCR: {raw:.0f} /s | "
              f"ratio: {decisions / raw:.2f}")
    if len(measured) == 2:
        (_n1, single), (_n2, cluster) = measured
        print(f"pacing decisions/s, cluster vs single Redis: {cluster.decisions / cluster.decision_s:.0f} /s | "
              f"baseline: {single.decisions / single.decision_s:.0f} /s (single Redis) | ratio: "
              f"{(cluster.decisions / cluster.decision_s) / (single.decisions / single.decision_s):.2f}")
    print(f"# load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpu (shared with other sessions)")


if __name__ == "__main__":
    main()
