"""Messaging: materializing a broadcast, dispatch throughput, worker memory, pacing accuracy.

* materialize -- `messaging.services.sending.create_task()` of a broadcast to 100,000 explicit receivers
                 (10,000 with --quick): receivers checked against the account's contacts shard,
                 the template rendered for each one, then the task and its receiver rows written
                 in one transaction (multi-row INSERTs of 2,000 rows). Reported also: the write
                 alone (`materialize_receivers`). Baseline: the same rows written with raw
                 multi-row INSERTs (2,000 a statement, one transaction) into a copy of the table.
* dispatch    -- a broadcast sent by real Celery workers (prefork, 1 then 2 processes, one
                 dispatcher each) to the instance simulator (a real HTTP server in this process,
                 answering at once) with pacing off: receivers/s from start to the last receiver
                 ended, with durable per-receiver state (claim, message row, result, counters).
                 Twice: with batch sends (protocol 1.1, 100 messages a request, the default
                 against an instance that offers them) and with single sends (BATCH_SEND_SIZE=0,
                 SEND_CONCURRENCY in flight: what a revision 1.0 instance gets).
                 Baseline: one raw loop in its own process (like a worker) doing the same database
                 writes per chunk of 200 (claim: message INSERT + one receiver UPDATE of state and
                 link; results: receiver and message UPDATEs and the task counter) and the same
                 HTTP sends through the same client (InstanceClient, keep-alive http.client
                 connections), without Celery, pacing, leases or acknowledgements: with batch
                 sends of 100, with serial single sends, and with SEND_CONCURRENCY single sends
                 in flight.
* memory      -- peak RSS of a worker process during a 100,000-receiver broadcast (sampled with
                 /proc every 0.2 s), against the worker's RSS when idle.
* pacing      -- a dispatcher with MIN_INTERVAL_S set (no jitter): the achieved interval between
                 consecutive sends (simulator accept times) against the configured one. Then two
                 tasks of the same account on two worker processes at once: the mean and the
                 shortest interval between any two sends of the account (the pace is per account,
                 shared through Redis, not per task or worker).

Run: `BENCH_REDIS_URL=redis://127.0.0.1:6379/7 .venv/bin/python bench/bench_messaging.py [--quick]`
(needs Redis: the broker of the workers and the shared pacing).
"""
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Timer, bench_args, environment_line, report, save_results, setup_django

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"


def _extra(parser):
    parser.add_argument("--receivers", type=int, default=None, help="materialize size (100,000)")
    parser.add_argument("--dispatch", type=int, default=None, help="receivers per dispatch run")
    parser.add_argument("--memory", type=int, default=None, help="receivers of the memory run")
    parser.add_argument("--profile", default=None,
                        help="cProfile create_task of the materialize part into FILE")
    parser.add_argument("--compare-background", action="store_true",
                        help="dispatch: also run each case with CLAIM_AHEAD off, and with RECORD_IN_BACKGROUND too")
    parser.add_argument("--only", default="materialize,dispatch,memory,pacing",
                        help="comma-separated parts to run (materialize,dispatch,memory,pacing,alternate)")
    parser.add_argument("--alternations", type=int, default=6,
                        help="alternate: one-worker broadcasts, each between two raw loop runs (6)")


def world(n_contacts):
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from contacts.models import AccountStatus, Contact, WeworkAccount
    from instances import services as instance_services
    from simulator.server import Simulator
    from wework import shards

    sim = Simulator(port=0, token=TOKEN, accounts=1, contacts=n_contacts, rooms=1, members=3, seed=5,
                    duplicate_rate=0.0, chatter_per_min=0, history_on_login=0, heartbeat_interval_s=3600,
                    send_delay_ms=0, max_events=50_000)
    sim.start()
    User = get_user_model()
    admin = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.com", "bench-password-123")
    instance = instance_services.register_instance(name=f"bench-{time.time()}",
                                                   api_url=sim.url, token=TOKEN, created_by=admin, push=False).instance
    sim_account = next(iter(sim.accounts.values()))
    account = WeworkAccount.objects.create(instance=instance, wxid=sim_account.account_id, status=AccountStatus.ONLINE,
                                           is_logged_in=True, last_login_time=timezone.now())
    rows = [{"account_id": account.pk, "wxid": c["contact_id"], "nickname": c["name"], "contact_type": 1}
            for c in sim_account.contacts]
    shards.bulk_create(Contact, rows, instance_id=instance.pk, batch_size=2000)
    return sim, admin, account, [c["contact_id"] for c in sim_account.contacts]


def _create(admin, start=False, **fields):
    """A task created by the service (its checks, rendering and receiver rows), not started."""
    from messaging.services import sending
    from messaging.services.requests import TaskRequest

    return sending.create_task(admin, TaskRequest(**fields), start=start)


def _retire(task):
    """Baseline tasks must never be started by beat's kick in a later measurement."""
    from messaging.models import MessageTask, TaskStatus

    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.CANCELLED)


# --- materialize -------------------------------------------------------------------------------

def bench_materialize(args, n):
    from django.db import connection, transaction

    from messaging.models import MessageReceiver
    from messaging.services import receivers as receivers_service

    sim, admin, account, contacts = world(n)
    sim.stop()
    receivers = [{"wxid": w, "variables": {"code": f"C{i}"}} for i, w in enumerate(contacts)]
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    with Timer() as t_task:
        task = _create(admin, account=account, message_type="text",
                       content="Hi {{ receiver_name }}, your code is {{ code }}", receivers=receivers)
    if profiler is not None:
        import pstats

        profiler.disable()
        profiler.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(30)
    assert task.target_count == n
    _retire(task)
    # The write alone, again into the same table (another task).
    rows = [{"type": 1, "wxid": w, "name": w, "variables": {"code": "x"}} for w in contacts]
    with Timer() as t_write:
        with transaction.atomic():
            receivers_service.materialize_receivers(task, rows)
    table = MessageReceiver._meta.db_table
    qn = connection.ops.quote_name
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_receivers_copy")
        if connection.vendor == "mysql":
            cur.execute(f"CREATE TABLE bench_receivers_copy LIKE {qn(table)}")
        else:
            cur.execute(f"CREATE TABLE bench_receivers_copy AS SELECT * FROM {qn(table)} WHERE 0")
    cols = ["task_id", "receiver_type", "receiver_wxid", "receiver_name", "send_status", "retry_count",
            "variables", "created_at", "updated_at"]
    now = connection.ops.adapt_datetimefield_value(__import__("django.utils.timezone").utils.timezone.now())
    with Timer() as t_raw:
        with transaction.atomic(), connection.cursor() as cur:
            for start in range(0, n, 2000):
                part = rows[start : start + 2000]
                params = []
                for r in part:
                    params.extend([task.pk, 1, r["wxid"], r["name"], 0, 0, json.dumps(r["variables"]), now, now])
                cur.execute(
                    f"INSERT INTO bench_receivers_copy ({', '.join(cols)}) VALUES "
                    + ", ".join(["(" + ", ".join(["%s"] * len(cols)) + ")"] * len(part)),
                    params,
                )
    with connection.cursor() as cur:
        cur.execute("DROP TABLE bench_receivers_copy")
    report(f"materialize: create_task, {n:,} receivers (checks + render + write)", t_task.seconds, "s",
           t_raw.seconds, "s raw INSERT")
    report(f"materialize: write only, {n:,} receivers", t_write.seconds, "s", t_raw.seconds, "s raw INSERT")
    report("materialize: rows/s (create_task)", n / t_task.seconds, "rows/s", n / t_raw.seconds, "rows/s raw")


# --- dispatch ------------------------------------------------------------------------------------

WORKER_SETTINGS = {"MIN_INTERVAL_S": 0, "JITTER_S": 0, "PER_MINUTE": 0, "DAILY": 0, "CONVERSATION_INTERVAL_S": 0,
                   "CHECK_MEDIA_URLS": False,
                   "CLAIM_BATCH": 200, "ACK_POLL_AFTER_S": 0.3, "ACK_WAIT_S": 30, "FLUSH_INTERVAL_S": 0.5,
                   "DISPATCH_SLICE_S": 600, "CLAIM_TIMEOUT_S": 120}


def start_workers(procs, dispatchers, log, overrides=None):
    env = dict(os.environ)
    env.update({"CELERY_TASK_ALWAYS_EAGER": "0",
                "MESSAGING_SETTINGS": json.dumps({**WORKER_SETTINGS, **(overrides or {}),
                                                  "DISPATCHERS_PER_TASK": dispatchers})})
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "wework", "worker", "-P", "prefork", "-c", str(procs),
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    for _i in range(100):  # worker boot, not measured
        if len(_children(proc.pid)) >= procs:
            break
        time.sleep(0.1)
    time.sleep(1)
    return proc


def stop_workers(proc, log):
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def _rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def _children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        return [int(x) for x in out]
    except OSError:
        return []


def run_broadcast(n, workers, sample_memory=False, **overrides):
    """Send a broadcast to n receivers with `workers` worker processes (messaging settings
    `overrides` on top of WORKER_SETTINGS); returns (seconds, peak_kb, idle_kb)."""
    from django.conf import settings

    from messaging.models import MessageTask, TaskStatus
    from messaging.services import lifecycle
    from wework.celery import app

    settings.MESSAGING = {**WORKER_SETTINGS, **overrides, "DISPATCHERS_PER_TASK": workers}
    sim, admin, account, contacts = world(n)
    task = _create(admin, account=account, message_type="text", content="Hello {{ receiver_name }}",
                   filters={"source": "contacts"})
    log = open(f"/tmp/bench_messaging_worker_{os.getpid()}.log", "a")
    proc = start_workers(workers, workers, log, overrides)
    idle = max([_rss_kb(p) for p in _children(proc.pid)] or [0])
    peak = 0
    app.conf.task_always_eager = False
    try:
        t0 = time.perf_counter()
        lifecycle.start_task(task.pk)
        last_kick = time.monotonic()
        while True:
            status = MessageTask.objects.filter(pk=task.pk).values_list("status", flat=True).first()
            if status == TaskStatus.COMPLETED:
                break
            if sample_memory:
                for child in _children(proc.pid):
                    peak = max(peak, _rss_kb(child))
            if time.monotonic() - last_kick > 15:
                lifecycle.kick()
                last_kick = time.monotonic()
            # finely: the poll's interval is added to the dispatcher's side only (0.2 s was
            # up to 15 % of a 5,000-receiver run); completed_at cannot serve, it keeps whole seconds
            time.sleep(0.02)
        seconds = time.perf_counter() - t0
    finally:
        app.conf.task_always_eager = True
        stop_workers(proc, log)
        sim.stop()
    task.refresh_from_db()
    assert task.success_count == n, (task.success_count, n)
    assert len(sim.messages) == n
    return seconds, peak, idle


def raw_loop(n, width=1, batch=0):
    """Baseline: the same database writes and the same HTTP sends, in a plain loop in its own
    process (like a worker; the simulator stays in this one), with the dispatcher's client
    (InstanceClient over keep-alive http.client connections). batch > 1: each chunk's messages go
    in batch sends of `batch`; otherwise one send per receiver, `width` at a time from a thread
    pool when width > 1 (as the dispatcher does without pacing)."""
    import multiprocessing

    from django.db import connections

    from messaging.models import MessageReceiver

    sim, admin, account, contacts = world(n)
    task = _create(admin, account=account, message_type="text", content="Hello", filters={"source": "contacts"})
    ids = list(MessageReceiver.objects.filter(task=task).order_by("id").values_list("id", "receiver_wxid"))
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_raw_child, args=(queue, sim.url, account.pk, account.wxid, task.pk, ids, width, batch))
    child.start()
    seconds = queue.get(timeout=1800)
    child.join()
    assert len(sim.messages) == n, (len(sim.messages), n)
    sim.stop()
    _retire(task)
    return seconds


def _raw_child(queue, url, account_pk, account_wxid, task_pk, ids, width, batch):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection, transaction
    from django.utils import timezone

    from instances.client import InstanceClient
    from messaging.models import Message, MessageReceiver
    from wework import shards

    msg_table = shards.model_for(Message)._meta.db_table
    rec = MessageReceiver._meta.db_table
    client = InstanceClient(url, token=TOKEN, max_retries=1, validate_responses=False, stdlib_http=True)
    pool = ThreadPoolExecutor(width) if width > 1 else None

    def send(item):
        mid, muuid, c = item
        return client.send_message(account_wxid, client_msg_id=muuid, conversation_id=c[1],
                                   conversation_type="single", type="text", content={"text": "Hello"})

    def send_batch(part):
        return client.send_messages(account_wxid, [
            client.message_body(muuid, c[1], "single", "text", {"text": "Hello"}) for _mid, muuid, c in part
        ])

    t0 = time.perf_counter()
    for start in range(0, len(ids), 200):
        chunk = ids[start : start + 200]
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        rid = [c[0] for c in chunk]
        marks = ", ".join(["%s"] * len(rid))
        msgs = [(shards.new_id(), shards.new_uuid(), c) for c in chunk]
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                f"INSERT INTO {msg_table} (id, message_uuid, account_id, chat_type, chat_wxid, message_type, "
                "message_content, send_status, retry_count, is_scheduled, task_id, created_at, updated_at) VALUES "
                + ", ".join(["(%s, %s, %s, 1, %s, 'text', 'Hello', 0, 0, 0, %s, %s, %s)"] * len(msgs)),
                [v for mid, muuid, c in msgs for v in (mid, muuid, account_pk, c[1], task_pk, now, now)],
            )
            cur.execute(
                f"UPDATE {rec} SET send_status=1, updated_at=%s, message_id = CASE id "
                f"{' '.join(['WHEN %s THEN %s'] * len(msgs))} END WHERE id IN ({marks})",
                [now] + [v for mid, _u, c in msgs for v in (c[0], mid)] + rid,
            )
        if batch > 1:
            answers = [a for i in range(0, len(msgs), batch) for a in send_batch(msgs[i : i + batch])]
        else:
            answers = list(pool.map(send, msgs)) if pool else [send(m) for m in msgs]
        assert all(a.get("status") in ("queued", "sent") for a in answers)
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(f"UPDATE {rec} SET send_status=2, send_time=%s WHERE id IN ({marks}) AND send_status=1",
                        [now, *rid])
            cur.execute(f"UPDATE {msg_table} SET send_status=2, send_time=%s WHERE id IN ({', '.join(['%s'] * len(msgs))})",
                        [now, *[m[0] for m in msgs]])
            cur.execute("UPDATE message_tasks SET success_count = success_count + %s WHERE id=%s", [len(chunk), task_pk])
    seconds = time.perf_counter() - t0
    if pool:
        pool.shutdown()
    client.close()
    connection.close()
    queue.put(seconds)


def bench_dispatch(args, n):
    """Each group of dispatcher runs sits between two runs of its raw loop, and is reported against
    their mean: the raw loop alone moved by a third between runs minutes apart (6,170 and
    8,215 receivers/s), more than the differences measured."""
    from messaging import conf

    width = int(WORKER_SETTINGS.get("SEND_CONCURRENCY", conf.DEFAULTS["SEND_CONCURRENCY"]))
    size = int(conf.DEFAULTS["BATCH_SEND_SIZE"])
    variants = [({}, "")]
    if args.compare_background:  # the same without claims made ahead, then also flushes in the loop
        variants.append(({"CLAIM_AHEAD": False}, ", no claim ahead"))
        variants.append(({"CLAIM_AHEAD": False, "RECORD_IN_BACKGROUND": False}, ", no claim ahead, flushes in the loop"))

    def group(raw, label, baseline_label, overrides, extra_baseline=None):
        before = raw()
        runs = [(workers, suffix, run_broadcast(n, workers, **overrides, **more)[0])
                for workers in (1, 2) for more, suffix in variants]
        after = raw()
        mean = (before + after) / 2
        for workers, suffix, seconds in runs:
            report(f"dispatch: {workers} worker(s), {n:,} receivers, {label}{suffix}", n / seconds, "receivers/s",
                   n / mean, f"receivers/s raw loop ({baseline_label}; {n / before:,.0f} before, {n / after:,.0f} after)")
            if extra_baseline is not None and not suffix:
                report(f"dispatch: {workers} worker(s), {n:,} receivers, {label}, vs serial raw loop", n / seconds,
                       "receivers/s", n / extra_baseline, "receivers/s raw loop (serial single sends)")

    group(lambda: raw_loop(n, batch=size), f"batch sends of {size}", f"batch sends of {size}", {})
    serial = raw_loop(n)
    group((lambda: raw_loop(n, width)) if width > 1 else (lambda: serial), f"single sends ({width} in flight)",
          f"{width} single sends in flight", {"BATCH_SEND_SIZE": 0}, extra_baseline=serial)


def bench_dispatch_alternating(args, n):
    """One worker with batch sends, the case whose ratio spreads most from run to run: raw loop,
    broadcast, raw loop, broadcast, ..., raw loop. Each broadcast is reported against the mean
    of the two raw runs around it; the median, the lowest and the highest ratio are printed."""
    from messaging import conf

    size = int(conf.DEFAULTS["BATCH_SEND_SIZE"])
    raws = [raw_loop(n, batch=size)]
    ratios = []
    for round_ in range(args.alternations):
        seconds = run_broadcast(n, 1)[0]
        raws.append(raw_loop(n, batch=size))
        mean = (raws[-2] + raws[-1]) / 2
        ratios.append(mean / seconds)
        print(f"  round {round_ + 1}: broadcast {n / seconds:,.0f}/s, raw loop {n / raws[-2]:,.0f} / "
              f"{n / raws[-1]:,.0f}/s, ratio {mean / seconds:.2f}", flush=True)
    ratios.sort()
    median = statistics.median(ratios)
    report(f"dispatch, alternating: 1 worker, batch sends of {size}, {n:,} receivers, median of "
           f"{len(ratios)} ratios (lowest {ratios[0]:.2f}, highest {ratios[-1]:.2f})", median, "x raw loop",
           1.0, "x (the raw loop itself)")


def bench_memory(args, n):
    seconds, peak, idle = run_broadcast(n, 1, sample_memory=True)
    report(f"memory: worker peak RSS, {n:,}-receiver broadcast ({n / seconds:,.0f}/s)", peak / 1024, "MiB",
           idle / 1024, "MiB idle worker")


# --- pacing ----------------------------------------------------------------------------------------

def bench_pacing(args, n=40, interval=0.25):
    from django.conf import settings

    from messaging import pacing
    from messaging.dispatch import worker

    settings.MESSAGING = {**WORKER_SETTINGS, "MIN_INTERVAL_S": interval, "JITTER_S": 0, "PER_MINUTE": 0,
                          "DAILY": 0, "ACK_POLL_AFTER_S": 1.0}
    sim, admin, account, contacts = world(n)
    pacing.pacer().reset(account.pk)
    task = _create(admin, account=account, message_type="text", content="x", filters={"source": "contacts"})
    from messaging.models import MessageTask

    MessageTask.objects.filter(pk=task.pk).update(status=1)
    worker.run(task.pk)
    _retire(task)
    dues = sorted(m["due"] for m in sim.messages.values())
    sim.stop()
    achieved = (dues[-1] - dues[0]) / (len(dues) - 1)
    report(f"pacing: achieved interval over {n} sends (configured {interval} s)", achieved, "s", interval,
           "s configured")


def bench_pacing_shared(args, n=40, interval=0.25):
    """Two tasks of one account sent at once by two real worker processes: the account's pace
    is shared through Redis, so the interval between any two of its sends stays the configured
    one (a per-task or per-worker pace would halve it)."""
    from django.conf import settings

    from messaging import pacing
    from messaging.models import MessageTask, TaskStatus
    from messaging.services import lifecycle
    from wework.celery import app

    pace = {"MIN_INTERVAL_S": interval, "JITTER_S": 0, "PER_MINUTE": 0, "DAILY": 0, "CONVERSATION_INTERVAL_S": 0,
            "ACK_POLL_AFTER_S": 1.0}
    settings.MESSAGING = {**WORKER_SETTINGS, **pace, "DISPATCHERS_PER_TASK": 1}
    sim, admin, account, contacts = world(n)
    pacing.pacer().reset(account.pk)
    tasks = [_create(admin, account=account, message_type="text", content=f"task {i}", receivers=part)
             for i, part in enumerate((contacts[: n // 2], contacts[n // 2 :]))]
    log = open(f"/tmp/bench_messaging_worker_{os.getpid()}.log", "a")
    proc = start_workers(2, 1, log, pace)
    app.conf.task_always_eager = False
    try:
        for task in tasks:
            lifecycle.start_task(task.pk)
        deadline = time.monotonic() + n * interval * 3 + 60
        last_kick = time.monotonic()
        while time.monotonic() < deadline:
            if MessageTask.objects.filter(pk__in=[t.pk for t in tasks], status=TaskStatus.COMPLETED).count() == 2:
                break
            if time.monotonic() - last_kick > 15:
                lifecycle.kick()  # what beat does
                last_kick = time.monotonic()
            time.sleep(0.2)
    finally:
        app.conf.task_always_eager = True
        stop_workers(proc, log)
    records = list(sim.messages.values())
    sim.stop()
    states = list(MessageTask.objects.filter(pk__in=[t.pk for t in tasks]).values_list("status", "success_count", "fail_count", "target_count", "error_message"))
    assert len(records) == n, (len(records), n, states)
    by_task = {r["request"]["content"]["text"] for r in records}
    assert by_task == {"task 0", "task 1"}, by_task  # both tasks really sent
    dues = sorted(r["due"] for r in records)
    gaps = [b - a for a, b in zip(dues, dues[1:])]
    achieved = (dues[-1] - dues[0]) / (len(dues) - 1)
    report(f"pacing, shared: 2 tasks of one account on 2 workers, {n} sends, mean interval", achieved, "s",
           interval, "s configured")
    report("pacing, shared: shortest interval between two sends of the account", min(gaps), "s", interval,
           "s configured")


def main():
    args = bench_args(__doc__.splitlines()[0], extra=_extra)
    if not args.redis_url:
        raise SystemExit("bench_messaging: set BENCH_REDIS_URL (workers need the Redis broker).")
    setup_django(args)
    print(environment_line())
    quick = args.quick
    parts = {p.strip() for p in args.only.split(",")}
    if "materialize" in parts:
        bench_materialize(args, args.receivers or (10_000 if quick else 100_000))
    if "dispatch" in parts:
        bench_dispatch(args, args.dispatch or (2_000 if quick else 20_000))
    if "alternate" in parts:
        bench_dispatch_alternating(args, args.dispatch or (2_000 if quick else 20_000))
    if "memory" in parts:
        bench_memory(args, args.memory or (5_000 if quick else 100_000))
    if "pacing" in parts:
        bench_pacing(args, 20 if quick else 40)
        bench_pacing_shared(args, 20 if quick else 40)
    save_results(args)


if __name__ == "__main__":
    main()
