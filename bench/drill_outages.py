"""Redis stopped or killed, MariaDB stopped or killed, for 30 s during a broadcast (issue 12).

A private redis-server (RDB + AOF everysec, as docs/deployment.md sets them; by default also the
Celery broker and result backend: the single-Redis deployment, where a Redis outage takes the
queue away too) and a private mariadbd (mariadb-install-db into var/, the settings of
deploy/mariadb/common.cnf.in), both on loopback ports of the drill's own, started and stopped by
the drill. A Celery worker (prefork, 2 processes) and Celery beat (the kick every 5 s), the
production claim lease (25 s) and dispatcher lease (25 s), two dispatchers per task. Each part
is one broadcast to the simulator (20 ms a request, no pacing, 4 single sends in flight per
dispatcher); when a third has been accepted the server is taken away for `--outage` seconds
and started again on the same data:

* redis-stop    -- SHUTDOWN (saves the RDB), restart: the data comes back.
* redis-kill    -- kill -9, restart: the AOF replays (at most the last second is lost).
* mariadb-stop  -- SIGTERM (a clean shutdown), restart.
* mariadb-kill  -- kill -9, restart: InnoDB crash recovery.

Counted at the simulator side: lost, sent twice, resends of a uuid (answered as duplicates);
stuck (receivers still pending or sending at the deadline); whether the counters are exact.
Timed from the restart: the first accepted send (resume), every receiver SENDING at the outage
settled, the task completed.

Run:

    .venv/bin/python bench/drill_outages.py [--parts redis-stop,redis-kill,mariadb-stop,mariadb-kill]
        [--outage 30] [--receivers 2000] [--redis-port 6392] [--mariadb-port 3391] [--broker redis|amqp://...]

The MariaDB data directory is var/drill-mariadb/ (created again each run). Results in
bench/results/drill_outages.json.
"""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drillkit import (NO_PACING, ROOT, Broadcast, Platform, PrivateMariaDB, PrivateRedis, db_call,
                      print_json)
from harness import bench_args, environment_line, report, save_results, setup_django

SETTINGS = {**NO_PACING, "DISPATCHERS_PER_TASK": 2}


def _extra(parser):
    parser.add_argument("--receivers", type=int, default=2000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the server stays away")
    parser.add_argument("--parts", default="redis-stop,redis-kill,mariadb-stop,mariadb-kill")
    parser.add_argument("--redis-port", type=int, default=6392)
    parser.add_argument("--mariadb-port", type=int, default=3391)
    parser.add_argument("--broker", default="redis", help="'redis' (the private Redis) or an amqp:// URL")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds a part may take after the restart")


def watch(b, held, since, deadline):
    """Until the task completes (or the deadline): when every receiver SENDING at the outage
    settled. Reads survive the database being away (db_call)."""
    from messaging.models import MessageReceiver, MessageTask, ReceiverSendStatus as RS, TaskStatus

    settled = None
    while time.monotonic() - since < deadline:
        if settled is None and db_call(lambda: not MessageReceiver.objects.filter(
                pk__in=held, send_status=RS.SENDING).exists()):
            settled = time.monotonic() - since
        if db_call(lambda: MessageTask.objects.filter(pk=b.task.pk, status=TaskStatus.COMPLETED).exists()):
            b.done = time.monotonic()
            return settled
        time.sleep(0.2)
    return settled


def part_drill(args, part, redis_server, mariadb, platform_env, log_dir, seed):
    server = redis_server if part.startswith("redis") else mariadb
    b = Broadcast(args.receivers, args.latency_ms, seed=seed)
    platform = Platform(log_dir, platform_env, workers=("w1",))
    platform.start()
    time.sleep(3)
    try:
        b.start()
        b.wait_accepted(args.receivers // 3, 120)
        held = b.sending_ids()
        at_event = b.accepted()
        down_at = time.monotonic()
        if part.endswith("-kill"):
            server.kill()
        else:
            server.stop()
        print(f"# {part}: server away at {at_event}/{args.receivers} accepted, {len(held)} receivers SENDING",
              flush=True)
        during = []
        while time.monotonic() - down_at < args.outage:
            during.append(b.accepted())
            time.sleep(0.5)
        restart_took = server.start()
        up_at = time.monotonic()
        print(f"# {part}: back after {up_at - down_at:.1f} s (answered {restart_took:.1f} s after its start)",
              flush=True)
        settled = watch(b, held, up_at, args.deadline)
    finally:
        platform.stop()
    result = b.result()
    accepted_during = max(during) - at_event if during else 0
    resumed = next((t - up_at for t, v in b.timeline.samples if t > up_at and v > max(during or [0])), None)
    result.update({
        "sending_at_outage": len(held), "accepted_at_outage": at_event,
        "accepted_while_away": accepted_during, "server_start_s": round(restart_took, 1),
        "resumed_after_restart_s": None if resumed is None else round(resumed, 2),
        "claims_at_outage_settled_after_restart_s": None if settled is None else round(settled, 1),
        "completed_after_restart_s": round(b.done - up_at, 1) if b.done else None,
        "tracebacks": platform.tracebacks(),
    })
    print_json(part, result)
    report(f"{part}: lost", result["lost"], "receivers", note="expected 0")
    report(f"{part}: sent twice", result["sent_twice"], "receivers", note="expected 0")
    report(f"{part}: stuck", result["stuck"], "receivers", note="expected 0")
    report(f"{part}: accepted while the server was away", accepted_during, "sends")
    report(f"{part}: sending resumed after the restart", resumed if resumed is not None else float("nan"), "s")
    if settled is not None:
        report(f"{part}: the {len(held)} claims held at the outage settled after the restart", settled, "s")
    if b.done:
        report(f"{part}: completed after the restart", result["completed_after_restart_s"], "s")
    else:
        report(f"{part}: NOT completed within the deadline", args.deadline, "s",
               note=f"{result['receivers_by_status']}")
    return result


def main():
    args = bench_args(__doc__.splitlines()[0], extra=_extra)
    args.keep_db = True  # the private server goes away with the drill
    var = ROOT / "var"
    log_dir = Path(tempfile.mkdtemp(prefix="drill-outages-"))
    redis_server = PrivateRedis(args.redis_port, log_dir / "redis", persistent=True)
    mariadb = PrivateMariaDB(args.mariadb_port, var / "drill-mariadb")
    results = {}
    try:
        redis_server.start()
        took = mariadb.init()
        print(f"# private mariadbd on {args.mariadb_port} initialised and started in {took:.1f} s", flush=True)
        args.database_url = mariadb.url("wework_outage_drill")
        args.redis_url = redis_server.url
        broker = redis_server.url if args.broker == "redis" else args.broker
        env = {"REDIS_URL": redis_server.url, "CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": redis_server.url,
               "MESSAGING_SETTINGS": json.dumps(SETTINGS)}
        os.environ.update(env)
        setup_django(args)
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        from django.conf import settings

        from wework.celery import app

        app.conf.task_always_eager = False
        settings.MESSAGING = dict(SETTINGS)
        environment_line(args.database_url)
        print(f"# logs in {log_dir}; database {args.database_url} (private); redis {redis_server.url} (private); "
              f"broker {broker}; load average {os.getloadavg()[0]:.2f}", flush=True)
        for number, part in enumerate(p.strip() for p in args.parts.split(",") if p.strip()):
            part_dir = log_dir / part
            part_dir.mkdir()
            results[part] = part_drill(args, part, redis_server, mariadb, env, part_dir, seed=11 + number)
    finally:
        from django.db import connections

        connections.close_all()
        redis_server.close()
        mariadb.close()
    save_results(args, "drill_outages")
    bad = [p for p, r in results.items() if r["lost"] or r["sent_twice"] or r["stuck"] or not r["counter_exact"]]
    if bad:
        raise SystemExit(f"drill: FAILED {bad}")


if __name__ == "__main__":
    main()
