"""Failover drills on Galera behind HAProxy: kill -9 the write node during a broadcast and
during webhook intake, with the platform running as in production (gunicorn web server, a
Celery worker with two processes, Celery beat), its DATABASE_URL on HAProxy's write port and
DATABASE_REPLICA_URLS on the read port.

* broadcast -- a bulk task to N receivers (pacing off) sent to the instance simulator; the
               write node is killed when a third has been accepted. Checked: the task
               completes by itself; every receiver SUCCESS; the simulator holds exactly one
               message per receiver (none lost, none sent twice; a repeated send of the same
               uuid is answered as a duplicate and counted as a resend, not a second message).
               Measured: the longest stall of accepted sends around the kill, the time to
               completion.
* webhook   -- the simulator pushes E inbound messages as signed webhook events to the web
               server (retrying as instances do: back-off, Retry-After); the write node is
               killed when a third has been emitted. Checked: every answer is a 2xx or a 503
               (no 500), every event is stored exactly once and processed, one inbound message
               row per event. Measured: answers by status, the delivery stall, the time until
               every event is processed.

After each part the killed node is started again (it rejoins by IST) and the run waits
until it is synced. Run:

    BENCH_REDIS_URL=redis://127.0.0.1:6379/6 PORT=8150 .venv/bin/python bench/drill_galera_failover.py [--quick]

Needs `scripts/services up galera` (started here). Results in bench/results/drill_galera_failover.json.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import bench_args, report, save_results, setup_django

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "scripts" / "services"
TOKEN = "drill-token"
GALERA_PORTS = [3311, 3312, 3313]
WORKER_SETTINGS = {"MIN_INTERVAL_S": 0, "MAX_INTERVAL_S": 0, "JITTER_S": 0, "PER_MINUTE": 0, "PER_HOUR": 0,
                   "PER_DAY": 0, "CONVERSATION_INTERVAL_S": 0, "CLAIM_BATCH": 50, "DISPATCH_SLICE_S": 600}


def _extra(parser):
    parser.add_argument("--receivers", type=int, default=None, help="broadcast size (600; 200 with --quick)")
    parser.add_argument("--events", type=int, default=None, help="webhook events (600; 200 with --quick)")
    parser.add_argument("--rate", type=float, default=20.0, help="webhook events emitted per second")
    parser.add_argument("--parts", default="broadcast,webhook")
    parser.add_argument("--deadline", type=float, default=420.0, help="seconds a part may take")


def run_services(*args):
    result = subprocess.run([str(SERVICES), *args], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"drill: scripts/services {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def write_node():
    import MySQLdb

    conn = MySQLdb.connect(host="127.0.0.1", port=3320, user="root", connect_timeout=3)
    try:
        cur = conn.cursor()
        cur.execute("SELECT @@port")
        return GALERA_PORTS.index(cur.fetchone()[0]) + 1
    finally:
        conn.close()


def db_retry(fn, timeout=60.0):
    """Run a read of the drill itself, through the switch-over (it is not under test)."""
    from django.db import connections

    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except Exception:
            connections.close_all()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class Platform:
    """gunicorn + Celery worker + Celery beat, as docs/deployment.md starts them."""

    def __init__(self, port, log_dir, overrides):
        self.port = port
        self.log_dir = Path(log_dir)
        self.env = dict(os.environ)
        self.env.update({
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "MESSAGING_SETTINGS": json.dumps({**WORKER_SETTINGS, **overrides}),
            "WEWORK_DATA_DIR": str(self.log_dir / "data"),
            "LOG_LEVEL": "WARNING",
            "SYSTEM_LOG_REQUESTS": "0",
        })
        self.procs = {}

    def start(self):
        py = sys.executable
        commands = {
            "web": [str(Path(py).with_name("gunicorn")), "wework.wsgi", "-w", "2", "-b", f"127.0.0.1:{self.port}",
                    "--timeout", "60", "--access-logfile", str(self.log_dir / "access.log")],
            "worker": [py, "-m", "celery", "-A", "wework", "worker", "-P", "prefork", "-c", "2",
                       "--without-gossip", "--without-mingle", "-l", "warning"],
            "beat": [py, "-m", "celery", "-A", "wework", "beat", "-l", "warning",
                     "-s", str(self.log_dir / "beat-schedule")],
        }
        for name, command in commands.items():
            log = open(self.log_dir / f"{name}.log", "ab")
            self.procs[name] = (subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                 start_new_session=True), log)
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/admin/login/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        time.sleep(2)  # workers and beat boot

    def stop(self):
        # The main processes only: gunicorn and Celery stop their children themselves (a warm
        # shutdown, which lets running tasks finish).
        for proc, log in self.procs.values():
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
        counts = {}
        for name in self.procs:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
            counts[name] = text.count("Traceback (most recent call last)")
        return counts

    def access_statuses(self):
        """Status codes of the web server's answers (gunicorn access log)."""
        statuses = Counter()
        path = self.log_dir / "access.log"
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                parts = line.split('"')
                if len(parts) >= 3:
                    code = parts[2].split()[0] if parts[2].split() else "?"
                    statuses[code] += 1
        return statuses


def make_world(n_contacts, chatter=False):
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from contacts.models import AccountStatus, Contact, WeworkAccount
    from instances import services as instance_services
    from simulator.server import Simulator
    from wework import shards

    sim = Simulator(port=0, token=TOKEN, accounts=1, contacts=n_contacts, rooms=1, members=3, seed=7,
                    duplicate_rate=0.0, chatter_per_min=0, history_on_login=0, heartbeat_interval_s=3600,
                    send_delay_ms=0, max_events=100_000)
    sim.start()
    User = get_user_model()
    admin = User.objects.filter(username="drill").first() or User.objects.create_superuser(
        "drill", "drill@example.com", "drill-password-123")
    instance = instance_services.register_instance(
        name=f"drill-{time.time():.0f}", api_url=sim.url, token=TOKEN, created_by=admin, push=True).instance
    sim_account = next(iter(sim.accounts.values()))
    account = WeworkAccount.objects.create(instance=instance, wxid=sim_account.account_id, status=AccountStatus.ONLINE,
                                           is_logged_in=True, last_login_time=timezone.now())
    rows = [{"account_id": account.pk, "wxid": c["contact_id"], "nickname": c["name"], "contact_type": 1}
            for c in sim_account.contacts]
    shards.bulk_create(Contact, rows, instance_id=instance.pk, batch_size=2000)
    return sim, admin, instance, account


class Timeline:
    """Samples a counter every 50 ms; the longest stall after a moment is the switch-over."""

    def __init__(self, read):
        self.read = read
        self.samples = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.read()))
            time.sleep(0.05)

    def stop(self):
        self._stop.set()
        self.thread.join()

    def stall_after(self, moment, until_value):
        """(longest time without progress from `moment` until `until_value` was reached,
        seconds from `moment` to the first progress)."""
        last_change, last_value, longest, first = moment, None, 0.0, None
        for t, value in self.samples:
            if t < moment:
                last_value = value
                continue
            if value != last_value:
                if last_value is not None:
                    longest = max(longest, t - last_change)
                    if first is None:
                        first = t - moment
                last_change, last_value = t, value
            if value >= until_value:
                break
        return longest, first


def broadcast_drill(args, platform_factory, n):
    from messaging.models import MessageReceiver, MessageTask, ReceiverSendStatus as RS, TaskStatus
    from messaging.services import lifecycle, sending
    from messaging.services.requests import TaskRequest

    sim, admin, instance, account = make_world(n)
    platform = platform_factory({"CLAIM_TIMEOUT_S": 30})
    platform.start()
    timeline = Timeline(lambda: len(sim.messages))
    victim = None
    try:
        task = sending.create_task(admin, TaskRequest(account=account, message_type="text",
                                                      content="Hello {{ receiver_name }}",
                                                      filters={"source": "contacts"}), start=False)
        started = time.monotonic()
        lifecycle.start_task(task.pk)
        while len(sim.messages) < n // 3:
            if time.monotonic() - started > args.deadline:
                raise SystemExit("drill: the broadcast did not start")
            time.sleep(0.02)
        victim = write_node()
        killed = time.monotonic()
        services_out = run_services("kill", f"galera{victim}")
        print(f"# broadcast: {len(sim.messages)}/{n} accepted, {services_out.strip()}", flush=True)
        status = None
        while status != TaskStatus.COMPLETED:
            if time.monotonic() - started > args.deadline:
                break
            time.sleep(0.5)
            status = db_retry(lambda: MessageTask.objects.filter(pk=task.pk).values_list("status", flat=True).first())
        done = time.monotonic()
    finally:
        timeline.stop()
        platform.stop()
        sim.stop()
    task = db_retry(lambda: MessageTask.objects.get(pk=task.pk))
    by_status = Counter(db_retry(lambda: list(MessageReceiver.objects.filter(task_id=task.pk)
                                                .values_list("send_status", flat=True))))
    per_receiver = Counter(m["request"]["conversation_id"] for m in sim.messages.values())
    resends = sum(sim.receipts.values()) - len(sim.by_client_msg_id)
    stall, first = timeline.stall_after(killed, n)
    result = {
        "receivers": n, "task_status": TaskStatus(task.status).name, "success_count": task.success_count,
        "receivers_by_status": {RS(k).name: v for k, v in by_status.items()},
        "messages_at_instance": len(sim.messages), "receivers_reached": len(per_receiver),
        "sent_twice": sum(1 for c in per_receiver.values() if c > 1), "lost": n - len(per_receiver),
        "resends_same_uuid": resends, "killed_node": f"galera{victim}",
        "stall_s": round(stall, 2), "first_send_after_kill_s": None if first is None else round(first, 2),
        "completed_after_kill_s": round(done - killed, 1) if status == TaskStatus.COMPLETED else None,
        "tracebacks": platform.tracebacks(), "web_statuses": dict(platform.access_statuses()),
    }
    print("# broadcast drill:", json.dumps(result, ensure_ascii=False), flush=True)
    report("broadcast: receivers lost", result["lost"], "receivers", note="expected 0")
    report("broadcast: receivers sent twice", result["sent_twice"], "receivers", note="expected 0")
    report("broadcast: longest send stall around the node kill", stall, "s")
    if result["completed_after_kill_s"] is not None:
        report("broadcast: completed after the node kill", result["completed_after_kill_s"], "s")
    else:
        report("broadcast: NOT completed within the deadline", args.deadline, "s",
               note=f"task {result['task_status']}, {result['receivers_by_status']}")
    return result


def webhook_drill(args, platform_factory, e):
    from django.utils import timezone

    from instances.models import EventState, InstanceEvent
    from messaging.models import Message
    from wework import shards

    sim, admin, instance, account = make_world(1000)  # many conversations: few look-alike messages
    platform = platform_factory({})
    platform.start()
    # The events of the simulator's start (delivered while the web server was booting) are
    # not part of the drill.
    for _ in range(200):
        if sim.deliver_seq >= sim.last_seq:
            break
        time.sleep(0.1)
    with sim.lock:
        sim.delivery_log.clear()
    timeline = Timeline(lambda: sim.delivery["delivered"])
    events, emitted = [], []
    try:
        started = time.monotonic()
        killed = None
        victim = None
        interval = 1.0 / args.rate
        for i in range(e):
            events.extend(sim.chatter(1, account_id=account.wxid, conversation_type="single"))
            emitted = [ev["event_id"] for ev in events]
            if killed is None and i + 1 >= e // 3:
                victim = write_node()
                killed = time.monotonic()
                run_services("kill", f"galera{victim}")
                print(f"# webhook: {i + 1}/{e} emitted, {sim.delivery['delivered']} delivered, galera{victim} killed",
                      flush=True)
            time.sleep(interval)
        while sim.deliver_seq < sim.last_seq and time.monotonic() - started < args.deadline:
            time.sleep(0.2)
        delivered = time.monotonic()

        def processed():
            return InstanceEvent.objects.filter(instance_id=instance.pk, event_id__in=emitted,
                                                state=EventState.DONE).count()

        while db_retry(processed) < len(emitted) and time.monotonic() - started < args.deadline:
            time.sleep(1)
        all_processed = time.monotonic()
    finally:
        timeline.stop()
        platform.stop()
        sim.stop()
    rows = db_retry(lambda: list(InstanceEvent.objects.filter(instance_id=instance.pk)
                                 .values_list("event_id", "state")))
    stored = Counter(event_id for event_id, _state in rows)
    emitted_set = set(emitted)
    states = Counter(EventState(state).name for event_id, state in rows if event_id in emitted_set)
    inbound = db_retry(lambda: sum(
        1 for m in shards.iterate(Message, since=timezone.now() - timezone.timedelta(days=1),
                                  filters={"account_id": account.pk})
        if (m.message_metadata or {}).get("direction") == "in"))
    # The platform stores one row per distinct message: two events of the same conversation,
    # sender and content within DEDUPE_WINDOW_S are one message delivered twice (inbound.py).
    distinct = len({(ev["data"]["conversation_id"], ev["data"]["sender"]["id"], ev["data"]["type"],
                     json.dumps(ev["data"]["content"], sort_keys=True)) for ev in events})
    outcomes = Counter(o if not o.startswith("error:") else "connection error" for *_x, o in sim.delivery_log)
    stall, first = timeline.stall_after(killed, len(emitted))
    result = {
        "events": len(emitted), "stored": sum(1 for ev in emitted if stored.get(ev)),
        "stored_twice": sum(1 for c in stored.values() if c > 1), "states": dict(states),
        "inbound_messages": inbound, "distinct_messages_emitted": distinct,
        "delivery_attempt_outcomes": dict(outcomes),
        "killed_node": f"galera{victim}", "delivery_stall_s": round(stall, 2),
        "first_delivery_after_kill_s": None if first is None else round(first, 2),
        "all_delivered_after_kill_s": round(delivered - killed, 1),
        "all_processed_after_kill_s": (round(all_processed - killed, 1)
                                       if states.get("DONE", 0) == len(emitted) else None),
        "tracebacks": platform.tracebacks(), "web_statuses": dict(platform.access_statuses()),
    }
    print("# webhook drill:", json.dumps(result, ensure_ascii=False), flush=True)
    report("webhook: events lost", len(emitted) - result["stored"], "events", note="expected 0")
    report("webhook: answers 500", outcomes.get("http_500", 0), "answers", note="expected 0")
    report("webhook: answers 503 during the switch", outcomes.get("http_503", 0), "answers")
    report("webhook: longest delivery stall around the node kill", stall, "s")
    report("webhook: inbound message rows", inbound, "rows", distinct, "distinct messages emitted")
    if result["all_processed_after_kill_s"] is not None:
        report("webhook: every event processed after the node kill", result["all_processed_after_kill_s"], "s")
    else:
        report("webhook: events NOT processed within the deadline", len(emitted) - states.get("DONE", 0), "events",
               note=f"states {dict(states)} after {args.deadline:.0f} s")
    return result


def main():
    args = bench_args(__doc__.splitlines()[0], extra=_extra)
    if not args.redis_url:
        raise SystemExit("drill: set BENCH_REDIS_URL (the Celery broker and the platform's cache).")
    run_services("up", "galera")
    port = int(os.environ.get("PORT", "8150"))
    os.environ["DATABASE_REPLICA_URLS"] = "mysql://root@127.0.0.1:3321/wework_drill"
    os.environ["PLATFORM_BASE_URL"] = f"http://127.0.0.1:{port}"
    if "3306" in args.database_url or "wework_bench" in args.database_url:
        args.database_url = "mysql://root@127.0.0.1:3320/wework_drill"
    setup_django(args)
    from wework.celery import app

    app.conf.task_always_eager = False
    log_dir = Path(tempfile.mkdtemp(prefix="drill-galera-"))
    print(f"# logs in {log_dir}; database {args.database_url}", flush=True)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    results = {}
    for part in parts:
        part_dir = log_dir / part
        part_dir.mkdir()

        def factory(overrides, _dir=part_dir):
            return Platform(port, _dir, overrides)

        try:
            if part == "broadcast":
                results[part] = broadcast_drill(args, factory, args.receivers or (200 if args.quick else 600))
            elif part == "webhook":
                results[part] = webhook_drill(args, factory, args.events or (200 if args.quick else 600))
        finally:
            from django.db import connections

            connections.close_all()
            t0 = time.monotonic()
            run_services("up", "galera")
            report(f"{part}: killed node rejoined and synced (IST)", time.monotonic() - t0, "s")
    (log_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    save_results(args)


if __name__ == "__main__":
    main()
