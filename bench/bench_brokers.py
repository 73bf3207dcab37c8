"""Dispatch throughput with RabbitMQ as Celery's broker against Redis as the broker, same run.

The dispatch part of bench_messaging.py (a broadcast sent by real prefork Celery workers to the
instance simulator, pacing off, batch sends of 100, durable per-receiver state), with two worker
processes (two dispatchers), once per broker in turn, `--rounds` times each, interleaved (Redis,
RabbitMQ, Redis, ...) so that the load of the shared machine falls on both. Only the broker
differs: Redis stays the cache, pacing and lease store and the result backend in both. Each
measurement runs in a child process (Celery's broker is fixed when the app is configured).
Baseline: the Redis broker.

Run: `BENCH_REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/bench_brokers.py
[--dispatch 5000] [--rounds 2] [--amqp amqp://guest:guest@127.0.0.1:5672/wework_bench]`
(the vhost is created when rabbitmqctl is on the machine).
"""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import bench_args, environment_line, report, save_results, setup_django


def _extra(parser):
    parser.add_argument("--dispatch", type=int, default=None, help="receivers per broadcast (5,000; 1,000 quick)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/wework_bench")
    parser.add_argument("--child", default=None, help=argparse_hidden())


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


def child(args):
    """One broadcast with the broker of CELERY_BROKER_URL; prints its seconds as JSON."""
    args.reuse_db = True
    args.keep_db = True
    setup_django(args)
    import bench_messaging

    seconds, _peak, _idle = bench_messaging.run_broadcast(args.dispatch, args.workers)
    print(json.dumps({"seconds": seconds}), flush=True)


def main():
    args = bench_args(__doc__.splitlines()[0], extra=_extra)
    args.dispatch = args.dispatch or (1000 if args.quick else 5000)
    if not args.redis_url:
        raise SystemExit("bench_brokers: set BENCH_REDIS_URL (the Redis broker, cache and pacing).")
    if args.child:
        os.environ["CELERY_BROKER_URL"] = args.child
        os.environ["CELERY_RESULT_BACKEND"] = args.redis_url
        return child(args)
    vhost = args.amqp.rsplit("/", 1)[-1]
    if vhost:
        subprocess.run(["rabbitmqctl", "add_vhost", vhost], capture_output=True, timeout=60)
        subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                       capture_output=True, timeout=60)
    setup_django(args)  # the database, created and migrated once
    environment_line(args.database_url)
    print(f"# load average {os.getloadavg()[0]:.2f} (2 cores shared with other sessions)", flush=True)
    rates = {"redis": [], "rabbitmq": []}
    brokers = {"redis": args.redis_url, "rabbitmq": args.amqp}
    for _round in range(args.rounds):
        for name, url in brokers.items():
            command = [sys.executable, __file__, "--child", url, "--dispatch", str(args.dispatch), "--workers",
                       str(args.workers), "--database-url", args.database_url, "--redis-url", args.redis_url]
            out = subprocess.run(command, capture_output=True, text=True, env=os.environ)
            if out.returncode:
                sys.stderr.write(out.stderr[-3000:])
                raise SystemExit(f"bench_brokers: the {name} run failed")
            seconds = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
            rates[name].append(args.dispatch / seconds)
            print(f"# {name}: {args.dispatch / seconds:,.0f} receivers/s ({seconds:.1f} s), "
                  f"load average {os.getloadavg()[0]:.2f}", flush=True)
    redis_rate = statistics.median(rates["redis"])
    amqp_rate = statistics.median(rates["rabbitmq"])
    report(f"dispatch, {args.workers} workers, {args.dispatch:,} receivers, batch sends, RabbitMQ broker (median of "
           f"{args.rounds})", amqp_rate, "receivers/s", redis_rate, "receivers/s (Redis broker)")
    save_results(args)


if __name__ == "__main__":
    main()
