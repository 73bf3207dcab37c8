"""kill -9 of a Celery worker during a broadcast, Celery on RabbitMQ, two workers (issue 12/16).

Two Celery workers (prefork, 2 processes each, as two hosts), Celery beat (the kick every 5 s),
RabbitMQ as the broker (a vhost of the drill's own; classic queue with x-max-priority,
publisher confirms, acks late), Redis for pacing, leases and the cache, the production claim
lease (CLAIM_LEASE_S 25 s, renewed every 5 s) and dispatcher lease (LEASE_TTL_S 25 s), two
dispatchers per task. Rounds: a broadcast to the simulator (20 ms a request, no pacing, 4 single
sends in flight per dispatcher); when a third has been accepted the worker with a connection to
the simulator (a dispatcher running there) is killed with SIGKILL (its whole process group) and
started again at once, as a supervisor does; in the last round twice, and the other worker
the second time.

Counted at the simulator side: lost (a receiver never reached), sent twice (a receiver that
holds two messages), resends of a uuid the instance already held (answered as a duplicate, not
a second message); stuck (receivers still pending or sending at the end); the counters. Timed:
the first accepted send after the kill, the longest stall, when every claim held at the kill
was settled (taken over) and when the task completed.

Run (RabbitMQ on 127.0.0.1:5672; the vhost is created when rabbitmqctl is on the machine):

    BENCH_DATABASE_URL=mysql://root@127.0.0.1:3306/wework_drills \\
        .venv/bin/python bench/drill_worker_kill.py [--rounds 3] [--receivers 1500] [--redis-port 6391] \\
        [--broker amqp://guest:guest@127.0.0.1:5672/wework_drills]

Results in bench/results/drill_worker_kill.json.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drillkit import NO_PACING, Broadcast, Platform, PrivateRedis, pids_talking_to, print_json
from harness import bench_args, environment_line, report, save_results, setup_django

SETTINGS = {**NO_PACING, "DISPATCHERS_PER_TASK": 2}


def _extra(parser):
    parser.add_argument("--receivers", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--redis-port", type=int, default=6391)
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/wework_drills")
    parser.add_argument("--deadline", type=float, default=240.0, help="seconds a round may take")


def ensure_vhost(broker):
    vhost = broker.rsplit("/", 1)[-1]
    if vhost and shutil.which("rabbitmqctl"):
        subprocess.run(["rabbitmqctl", "add_vhost", vhost], capture_output=True, timeout=60)
        subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                       capture_output=True, timeout=60)


def victim(platform, sim_port, default):
    """The worker running a dispatcher: one of its processes talks to the simulator."""
    talking = pids_talking_to(sim_port)
    for name in platform.workers:
        if platform.pids(name) & talking:
            return name, True
    return default, False


def watch(b, moments, deadline):
    """Until the task completes: when every receiver SENDING at each kill had settled (the dead
    worker's claims taken over by the lease, the live worker's sent)."""
    from messaging.models import MessageReceiver, MessageTask, ReceiverSendStatus as RS, TaskStatus

    for m in moments:
        m["settled"] = None
    while time.monotonic() - b.started < deadline:
        now = time.monotonic()
        for m in moments:
            if m["settled"] is None and not MessageReceiver.objects.filter(
                    pk__in=m["held"], send_status=RS.SENDING).exists():
                m["settled"] = now - m["at"]
        if MessageTask.objects.filter(pk=b.task.pk, status=TaskStatus.COMPLETED).exists():
            b.done = time.monotonic()
            return True
        time.sleep(0.2)
    return False


def one_round(args, number, platform, kills):
    b = Broadcast(args.receivers, args.latency_ms, seed=7 + number)
    sim_port = int(b.sim.url.rsplit(":", 1)[-1].split("/")[0])
    b.start()
    moments = []
    for k in range(kills):
        b.wait_accepted(args.receivers * (k + 1) // (kills + 2), args.deadline)
        name, dispatching = victim(platform, sim_port, platform.workers[(number + k) % 2])
        if k and moments and name == moments[-1]["worker"]:  # the second kill of a round: the other one
            name = next(w for w in platform.workers if w != name)
        held = b.sending_ids()
        platform.kill(name)
        at = time.monotonic()
        moments.append({"worker": name, "had_dispatcher": dispatching, "at": at, "accepted": b.accepted(),
                        "held": held, "load": round(os.getloadavg()[0], 1)})
        print(f"# round {number}: kill -9 {name} (dispatching: {dispatching}) at {b.accepted()}/{args.receivers} "
              f"accepted, {len(held)} receivers SENDING", flush=True)
        if k + 1 < kills:
            time.sleep(8)
    completed = watch(b, moments, args.deadline)
    result = b.result()
    result["kills"] = [{
        "worker": m["worker"], "had_dispatcher": m["had_dispatcher"], "accepted_at_kill": m["accepted"],
        "sending_at_kill": len(m["held"]),
        "resumed_after_s": None if (r := b.resumed_after(m["at"])) is None else round(r, 2),
        "longest_stall_s": round(b.timeline.stall_after(m["at"], args.receivers)[0], 2),
        "claims_at_kill_settled_after_s": None if m["settled"] is None else round(m["settled"], 1),
        "completed_after_s": round(b.done - m["at"], 1) if completed else None,
        "sends_per_s_before": round(m["accepted"] / (m["at"] - b.started), 1),
        "sends_per_s_after": round((args.receivers - m["accepted"]) / (b.done - m["at"]), 1) if completed else None,
        "load_average": m["load"],
    } for m in moments]
    return result, moments


def main():
    args = bench_args(__doc__.splitlines()[0], extra=_extra)
    if "wework_bench" in args.database_url and not os.environ.get("BENCH_DATABASE_URL"):
        args.database_url = "mysql://root@127.0.0.1:3306/wework_drills"
    log_dir = Path(tempfile.mkdtemp(prefix="drill-worker-kill-"))
    redis_server = PrivateRedis(args.redis_port, log_dir / "redis", persistent=False)
    redis_server.start()
    args.redis_url = redis_server.url
    ensure_vhost(args.broker)
    os.environ["CELERY_BROKER_URL"] = args.broker
    os.environ["CELERY_RESULT_BACKEND"] = redis_server.url
    os.environ["MESSAGING_SETTINGS"] = json.dumps(SETTINGS)
    platform = None
    results = []
    try:
        setup_django(args)
        from django.conf import settings

        from wework.celery import app

        app.conf.task_always_eager = False
        settings.MESSAGING = dict(SETTINGS)
        with app.connection_for_write() as conn:  # a queue left by an earlier run
            try:
                conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)
            except Exception:  # noqa: BLE001 - not declared yet
                pass
        environment_line(args.database_url)
        print(f"# logs in {log_dir}; database {args.database_url}; broker {args.broker}; redis {redis_server.url} "
              f"(private); load average {os.getloadavg()[0]:.2f}", flush=True)
        platform = Platform(log_dir, {"REDIS_URL": redis_server.url, "CELERY_BROKER_URL": args.broker,
                                      "CELERY_RESULT_BACKEND": redis_server.url,
                                      "MESSAGING_SETTINGS": json.dumps(SETTINGS)}, workers=("w1", "w2"))
        platform.start()
        time.sleep(4)  # workers connected before the first broadcast
        for number in range(args.rounds):
            kills = 2 if number == args.rounds - 1 else 1
            result, moments = one_round(args, number, platform, kills)
            print_json(f"round {number}", result)
            results.append(result)
            for k, kill in enumerate(result["kills"]):
                label = f"round {number} kill {k + 1} ({kill['worker']}, dispatching: {kill['had_dispatcher']})"
                report(f"{label}: sending resumed after the kill", kill["resumed_after_s"] or float("nan"), "s")
                report(f"{label}: longest send stall", kill["longest_stall_s"], "s")
                if kill["claims_at_kill_settled_after_s"] is not None:
                    report(f"{label}: the {kill['sending_at_kill']} claims held at the kill settled after",
                           kill["claims_at_kill_settled_after_s"], "s")
                if kill["completed_after_s"] is not None:
                    report(f"{label}: task completed after the kill", kill["completed_after_s"], "s")
            report(f"round {number}: lost", result["lost"], "receivers", note="expected 0")
            report(f"round {number}: sent twice", result["sent_twice"], "receivers", note="expected 0")
            report(f"round {number}: stuck", result["stuck"], "receivers", note="expected 0")
            report(f"round {number}: resends of a uuid absorbed by the instance", result["resends_same_uuid"], "sends")
        print_json("tracebacks in logs", platform.tracebacks())
    finally:
        if platform:
            platform.stop()
        redis_server.close()
    save_results(args, "drill_worker_kill")
    bad = [i for i, r in enumerate(results) if r["lost"] or r["sent_twice"] or r["stuck"] or not r["counter_exact"]]
    if bad:
        raise SystemExit(f"drill: FAILED rounds {bad}")


if __name__ == "__main__":
    main()
