"""Redis lost during a broadcast: FLUSHALL of the platform's Redis (cache, Celery broker, pacing,
dispatcher leases, worker-id leases, dedupe marks) while a bulk task is being sent to the
instance simulator, with a Celery worker (2 processes) and Celery beat (the kick every 5 s)
running as in production and the production claim lease (CLAIM_LEASE_S 25 s, renewed every 5 s
in the database).

* flushall      -- FLUSHALL when a third has been accepted. The running dispatcher keeps its
                   claims (they live in the database) and goes on; beat's kick finds no
                   dispatcher lease and enqueues another.
* flushall-kill -- FLUSHALL and, at the same moment, kill -9 of the whole Celery worker
                   (restarted at once, as a supervisor does): nothing is left in Redis and the
                   worker's in-flight sends are unrecorded; only the claims' lease in the
                   database says who holds what. They are taken over after the lease.

Checked: the task completes by itself; every receiver SUCCESS; the simulator holds exactly one
message per receiver (0 lost, 0 sent twice; a re-send of a uuid the instance already holds is
answered as a duplicate and counted as a resend, not a second message). Measured: the first
accepted send after the event (resume), the longest stall of accepted sends, completion.

The drill starts its own redis-server on a free port (FLUSHALL empties every database of a
server: never run it against a shared Redis) and stops it at the end. Run:

    BENCH_DATABASE_URL=mysql://root@127.0.0.1:3306/wework_dispatch_drill \\
        .venv/bin/python bench/drill_redis_flushall.py [--quick] [--parts flushall,flushall-kill]

Results in bench/results/drill_redis_flushall.json.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drill_galera_failover import Timeline
from harness import bench_args, environment_line, report, save_results, setup_django

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "drill-token"
# No pacing (the figure is the dispatch's own resume); claim leases, dispatcher leases and
# beat's kick as in production.
WORKER_SETTINGS = {"MIN_INTERVAL_S": 0, "JITTER_S": 0, "PER_MINUTE": 0, "DAILY": 0, "CONVERSATION_INTERVAL_S": 0,
                   "CHECK_MEDIA_URLS": False, "BATCH_SEND_SIZE": 0, "CLAIM_BATCH": 100}


def _extra(parser):
    parser.add_argument("--receivers", type=int, default=None, help="broadcast size (2000; 600 with --quick)")
    parser.add_argument("--latency-ms", type=int, default=20, help="the simulator's latency per request")
    parser.add_argument("--parts", default="flushall,flushall-kill")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds a part may take")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of this drill only (no persistence)."""

    def __init__(self, directory):
        self.port = free_port()
        self.dir = directory
        self.proc = None

    def start(self):
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("drill: redis-server not found")
        self.log = open(Path(self.dir) / "redis.log", "ab")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        import redis

        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise SystemExit("drill: the private redis-server did not start")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def flushall(self):
        import redis

        redis.Redis(port=self.port).flushall()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()


class Platform:
    """A Celery worker (prefork, 2 processes) and Celery beat, as docs/deployment.md starts them."""

    def __init__(self, log_dir, redis_url):
        self.log_dir = Path(log_dir)
        self.env = dict(os.environ)
        self.env.update({
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "REDIS_URL": redis_url,
            "MESSAGING_SETTINGS": json.dumps(WORKER_SETTINGS),
            "WEWORK_DATA_DIR": str(self.log_dir / "data"),
            "LOG_LEVEL": "WARNING",
        })
        self.procs = {}

    def _start(self, name):
        py = sys.executable
        command = {
            "worker": [py, "-m", "celery", "-A", "wework", "worker", "-P", "prefork", "-c", "2",
                       "--without-gossip", "--without-mingle", "-l", "warning"],
            "beat": [py, "-m", "celery", "-A", "wework", "beat", "-l", "warning",
                     "-s", str(self.log_dir / "beat-schedule")],
        }[name]
        log = open(self.log_dir / f"{name}.log", "ab")
        self.procs[name] = (subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True), log)

    def start(self):
        self._start("worker")
        self._start("beat")

    def kill_worker(self):
        proc, log = self.procs.pop("worker")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()
        self._start("worker")

    def stop(self):
        for proc, _log in self.procs.values():
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc, log in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            log.close()

    def tracebacks(self):
        return {name: (self.log_dir / f"{name}.log").read_text(errors="replace").count("Traceback (most recent")
                for name in ("worker", "beat")}


def make_world(n, latency_ms):
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from contacts.models import AccountStatus, Contact, WeworkAccount
    from instances import services as instance_services
    from simulator.server import Simulator
    from wework import shards

    sim = Simulator(port=0, token=TOKEN, accounts=1, contacts=n, rooms=1, members=3, seed=7, duplicate_rate=0.0,
                    chatter_per_min=0, history_on_login=0, heartbeat_interval_s=3600, send_delay_ms=0,
                    latency_ms=latency_ms)
    sim.start()
    User = get_user_model()
    admin = User.objects.filter(username="drill").first() or User.objects.create_superuser(
        "drill", "drill@example.com", "drill-password-123")
    instance = instance_services.register_instance(
        name=f"drill-{time.time():.0f}", api_url=sim.url, token=TOKEN, created_by=admin, push=False).instance
    sim_account = next(iter(sim.accounts.values()))
    account = WeworkAccount.objects.create(instance=instance, wxid=sim_account.account_id, status=AccountStatus.ONLINE,
                                           is_logged_in=True, last_login_time=timezone.now())
    rows = [{"account_id": account.pk, "wxid": c["contact_id"], "nickname": c["name"], "contact_type": 1}
            for c in sim_account.contacts]
    shards.bulk_create(Contact, rows, instance_id=instance.pk, batch_size=2000)
    return sim, admin, account


def part_drill(args, part, n, log_dir, redis_server):
    from messaging.models import MessageReceiver, MessageTask, ReceiverSendStatus as RS, TaskStatus
    from messaging.services import lifecycle, sending
    from messaging.services.requests import TaskRequest

    redis_server.flushall()
    sim, admin, account = make_world(n, args.latency_ms)
    platform = Platform(log_dir, redis_server.url)
    platform.start()
    timeline = Timeline(lambda: len(sim.messages))
    event_at = held = taken_over = settled = None
    status = None
    try:
        task = sending.create_task(admin, TaskRequest(account=account, message_type="text",
                                                      content="Hello {{ receiver_name }}",
                                                      filters={"source": "contacts"}), start=False)
        started = time.monotonic()
        lifecycle.start_task(task.pk)
        while len(sim.messages) < n // 3:
            if time.monotonic() - started > args.deadline:
                raise SystemExit(f"drill: the broadcast did not start ({part})")
            time.sleep(0.01)
        redis_server.flushall()
        event_at = time.monotonic()
        if part == "flushall-kill":
            platform.kill_worker()
        held_ids = set(MessageReceiver.objects.filter(task_id=task.pk, send_status=RS.SENDING)
                       .values_list("pk", flat=True))
        held = len(held_ids)
        print(f"# {part}: {len(sim.messages)}/{n} accepted at the event, {held} receivers held (SENDING)", flush=True)
        while status != TaskStatus.COMPLETED and time.monotonic() - started < args.deadline:
            time.sleep(0.2)
            status = MessageTask.objects.filter(pk=task.pk).values_list("status", flat=True).first()
            moved = MessageReceiver.objects.filter(pk__in=held_ids).exclude(send_status=RS.SENDING).count()
            if moved and taken_over is None:
                taken_over = time.monotonic() - event_at
            if moved == held and settled is None:
                settled = time.monotonic() - event_at
        done = time.monotonic()
    finally:
        timeline.stop()
        platform.stop()
        sim.stop()
    task = MessageTask.objects.get(pk=task.pk)
    by_status = Counter(MessageReceiver.objects.filter(task_id=task.pk).values_list("send_status", flat=True))
    per_receiver = Counter(m["request"]["conversation_id"] for m in sim.messages.values())
    stall, _first = timeline.stall_after(event_at, n)
    # Resumed: the first send accepted after those in flight at the event (landed within 0.5 s).
    landed = max((v for t, v in timeline.samples if t <= event_at + 0.5), default=0)
    resumed = next((t - event_at for t, v in timeline.samples if t > event_at + 0.5 and v > landed), None)
    result = {
        "receivers": n, "task_status": TaskStatus(task.status).name, "success_count": task.success_count,
        "receivers_by_status": {RS(k).name: v for k, v in by_status.items()},
        "held_at_event": held, "messages_at_instance": len(sim.messages), "receivers_reached": len(per_receiver),
        "sent_twice": sum(1 for c in per_receiver.values() if c > 1), "lost": n - len(per_receiver),
        "resends_same_uuid": sum(sim.receipts.values()) - len(sim.by_client_msg_id),
        "resumed_after_event_s": None if resumed is None else round(resumed, 2), "longest_stall_s": round(stall, 2),
        "held_first_settled_after_s": None if taken_over is None else round(taken_over, 1),
        "held_all_settled_after_s": None if settled is None else round(settled, 1),
        "completed_after_event_s": round(done - event_at, 1) if status == TaskStatus.COMPLETED else None,
        "tracebacks": platform.tracebacks(),
    }
    print(f"# {part}:", json.dumps(result, ensure_ascii=False), flush=True)
    report(f"{part}: receivers lost", result["lost"], "receivers", note="expected 0")
    report(f"{part}: receivers sent twice", result["sent_twice"], "receivers", note="expected 0")
    report(f"{part}: sending resumed after the event", resumed if resumed is not None else float("nan"), "s")
    if settled is not None:
        report(f"{part}: the {held} claims held at the event all settled after", settled, "s")
    report(f"{part}: longest send stall after the event", stall, "s")
    if result["completed_after_event_s"] is not None:
        report(f"{part}: completed after the event", result["completed_after_event_s"], "s")
    else:
        report(f"{part}: NOT completed within the deadline", args.deadline, "s",
               note=f"task {result['task_status']}, {result['receivers_by_status']}")
    return result


def main():
    args = bench_args(__doc__.splitlines()[0], extra=_extra)
    if "wework_bench" in args.database_url and not os.environ.get("BENCH_DATABASE_URL"):
        args.database_url = "mysql://root@127.0.0.1:3306/wework_dispatch_drill"
    log_dir = Path(tempfile.mkdtemp(prefix="drill-redis-flushall-"))
    redis_server = PrivateRedis(log_dir)
    redis_server.start()
    args.redis_url = redis_server.url  # the drill's own start_task enqueues on it too
    try:
        setup_django(args)
        from django.conf import settings

        from wework.celery import app

        app.conf.task_always_eager = False
        settings.MESSAGING = dict(WORKER_SETTINGS)
        environment_line(args.database_url)
        print(f"# logs in {log_dir}; database {args.database_url}; redis {redis_server.url} (private)", flush=True)
        n = args.receivers or (600 if args.quick else 2000)
        results = {}
        for part in [p.strip() for p in args.parts.split(",") if p.strip()]:
            part_dir = log_dir / part
            part_dir.mkdir()
            results[part] = part_drill(args, part, n, part_dir, redis_server)
    finally:
        redis_server.stop()
    save_results(args, "drill_redis_flushall")
    failed = [p for p, r in results.items() if r["lost"] or r["sent_twice"] or r["completed_after_event_s"] is None]
    if failed:
        raise SystemExit(f"drill: FAILED {failed}")


if __name__ == "__main__":
    main()
