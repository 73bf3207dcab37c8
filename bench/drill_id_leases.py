"""Drill: 10,000 short-lived processes in a row take Snowflake ids (issue 16).

Each process leases a worker id (1,024 exist; a lease lives WEWORK_ID_LEASE_TTL_S = 30 s unless
given back at exit), makes one live id and one id for a fixed past time, keeps its lease for a
random 0-20 ms (so that up to `--live` processes hold leases at once), and exits the ordinary
way (the atexit release). Checked, per target:

* failed      -- processes that could not get a worker id or an id (expected 0: none exhausted);
* shared      -- two processes holding one worker id at the same time: the second one's lease
                 taken before the first one began to give it back (expected 0);
* ids distinct, worker ids used, processes/s, the most processes alive at once.

The processes import nothing but `wework.ids` (and its `wework.redis_conn`): no Django setup,
no `wework/__init__` (which loads Celery); REDIS_URL from the environment. Two ways to start
them: `fork` (os.fork of this drill, which imported the module once; the child's first id leases
as a new process does after a fork) and `spawn` (a new `python` interpreter each: the cold start
of a cron command; about 5x dearer on the shared box, so fewer by default).

`--flushall H,N`: Redis loses its data while H processes make ids, and N newcomers start right
after the loss (FLUSHDB of the target's database, or of every master of a cluster); all of them
make live ids in bursts for `--flush-seconds`. With 1,024 worker ids, some newcomers lease a
worker id that a holder still believes it has (its lease vanished with the data). Checked: ids
distinct over all processes (expected: all), how many newcomers took a holder's worker id, and
how long newcomers waited before their first id (`wework/ids.py`: the fence after a data loss).

Run: `.venv/bin/python bench/drill_id_leases.py --targets redis://127.0.0.1:6379/5,redis+cluster://127.0.0.1:7101
[--processes 10000] [--spawn 500] [--live 16] [--flushall 64,256]`; without --targets, REDIS_URL.
"""
import array
import tempfile
import argparse
import json
import os
import random
import select
import subprocess
import sys
import time
import types
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAST = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)

# The child of `spawn`: only wework.ids, through a stub package (wework/__init__ loads Celery).
CHILD = r"""
import atexit, json, random, sys, time, types
pkg = types.ModuleType("wework"); pkg.__path__ = [sys.argv[1] + "/wework"]; sys.modules["wework"] = pkg
from wework import ids
from datetime import datetime, timezone
out = {}
try:
    out["worker"] = ids._generator._lease.get()
    out["acquired"] = time.time()
    out["ids"] = [ids.new_id(), ids.new_id(datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc))]
    time.sleep(random.random() * float(sys.argv[2]))
except Exception as exc:
    out["error"] = repr(exc)
def leave():  # registered after the lease's release: runs before it
    out["releasing"] = time.time()
    sys.stdout.write(json.dumps(out) + "\n"); sys.stdout.flush()
atexit.register(leave)
"""


def _import_ids():
    pkg = types.ModuleType("wework")
    pkg.__path__ = [str(ROOT / "wework")]
    sys.modules.setdefault("wework", pkg)
    from wework import ids, redis_conn  # noqa: F401 - imported once, before the forks (as a worker has)

    return ids


def fork_child(ids, write_fd, hold_s):
    import atexit

    out = {}
    try:
        out["worker"] = ids._generator._lease.get()
        out["acquired"] = time.time()
        out["ids"] = [ids.new_id(), ids.new_id(PAST)]
        time.sleep(random.random() * hold_s)
    except Exception as exc:  # noqa: BLE001 - counted by the drill
        out["error"] = repr(exc)
    out["releasing"] = time.time()
    os.write(write_fd, (json.dumps(out) + "\n").encode())
    atexit._run_exitfuncs()  # the ordinary exit: the lease is given back here
    os._exit(0)


def run(mode, total, live, hold_s, ids):
    """Start `total` processes, `live` at a time; returns (results, seconds, most alive)."""
    results, running = [], {}
    started = done = most = 0
    t0 = time.perf_counter()
    while done < total:
        while started < total and len(running) < live:
            if mode == "fork":
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.close(r)
                    fork_child(ids, w, hold_s)
                os.close(w)
                running[r] = (pid, b"")
            else:
                proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT), str(hold_s)],
                                        stdout=subprocess.PIPE, env=os.environ)
                running[proc.stdout.fileno()] = (proc, b"")
            started += 1
        most = max(most, len(running))
        ready, _, _ = select.select(list(running), [], [], 30)
        for fd in ready:
            owner, buf = running[fd]
            chunk = os.read(fd, 65536)
            if chunk:
                running[fd] = (owner, buf + chunk)
                continue
            del running[fd]
            if mode == "fork":
                os.close(fd)
                os.waitpid(owner, 0)
            else:
                owner.wait()
                owner.stdout.close()
            line = buf.decode().strip()
            results.append(json.loads(line) if line else {"error": "no output (died)"})
            done += 1
    return results, time.perf_counter() - t0, most


def burst_child(ids, path, until, ready_fd=None):
    """Make live ids in bursts of 50 (one every ms or so) until `until`; save them to `path`."""
    values = array.array("q")
    started = time.time()
    worker = ids._generator._lease.get()
    first = time.time()
    values.append(ids.new_id())
    if ready_fd is not None:
        os.write(ready_fd, b"r")
    while time.time() < until:
        for _ in range(50):
            values.append(ids.new_id())
        time.sleep(0.001)
    with open(path, "wb") as handle:
        handle.write(json.dumps({"worker": worker, "first_worker": worker, "waited": first - started,
                                 "last_worker": ids._generator._lease.worker}).encode() + b"\n")
        values.tofile(handle)
    atexit_exit()


def atexit_exit():
    import atexit

    atexit._run_exitfuncs()
    os._exit(0)


def flushall(ids, url, holders, newcomers, seconds):
    """The drill of `--flushall`: returns its figures."""
    from wework import redis_conn

    folder = Path(tempfile.mkdtemp(prefix="drill-ids-"))
    client = redis_conn.client(url)
    if hasattr(ids, "DATA_SINCE_KEY"):  # (absent before the fence: the drill runs on older trees too)
        seconds_now, micros = client.time()  # the holders' data is an hour old: no fence for them
        client.set(ids.DATA_SINCE_KEY, int(seconds_now) * 1000 + int(micros) // 1000 - 3_600_000)
    pids, until = [], time.time() + 3 + seconds
    ready_r, ready_w = os.pipe()
    for n in range(holders):
        pid = os.fork()
        if pid == 0:
            burst_child(ids, folder / f"holder-{n}", until, ready_w)
        pids.append(pid)
    got = 0
    while got < holders:
        got += len(os.read(ready_r, holders))
    time.sleep(0.2)
    client.flushdb() if not url.startswith("redis+cluster://") else client.flushall()
    lost_at = time.time()
    for n in range(newcomers):
        pid = os.fork()
        if pid == 0:
            burst_child(ids, folder / f"newcomer-{n}", lost_at + seconds)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    everything, holder_workers, newcomer_workers, waits = [], set(), [], []
    for path in sorted(folder.iterdir()):
        with open(path, "rb") as handle:
            head = json.loads(handle.readline())
            values = array.array("q")
            values.frombytes(handle.read())
        everything.extend(values)
        if path.name.startswith("holder"):
            holder_workers.add(head["first_worker"])
        else:
            newcomer_workers.append(head["first_worker"])
            waits.append(head["waited"])
        path.unlink()
    folder.rmdir()
    return {"target": url, "holders": holders, "newcomers": newcomers, "ids": len(everything),
            "ids_distinct": len(set(everything)),
            "newcomers_on_a_holders_worker_id": sum(1 for w in newcomer_workers if w in holder_workers),
            "newcomer_wait_s_max": round(max(waits), 2) if waits else 0.0,
            "newcomer_wait_s_min": round(min(waits), 2) if waits else 0.0}


def check(results):
    failed = [r for r in results if "error" in r]
    values = [v for r in results if "ids" in r for v in r["ids"]]
    by_worker = defaultdict(list)
    for r in results:
        if "worker" in r and "releasing" in r:
            by_worker[r["worker"]].append((r["acquired"], r["releasing"]))
    shared = 0
    for spans in by_worker.values():
        spans.sort()
        held_until = -1.0
        for acquired, releasing in spans:
            if acquired < held_until:
                shared += 1
            held_until = max(held_until, releasing)
    return {"failed": len(failed), "first_failure": failed[0]["error"] if failed else None,
            "ids": len(values), "ids_distinct": len(set(values)), "shared": shared,
            "worker_ids_used": len(by_worker)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=os.environ.get("REDIS_URL", ""), help="comma-separated Redis URLs")
    parser.add_argument("--processes", type=int, default=10000, help="forked processes per target")
    parser.add_argument("--spawn", type=int, default=500, help="new interpreters per target")
    parser.add_argument("--live", type=int, default=16, help="processes alive at once")
    parser.add_argument("--hold-ms", type=float, default=20.0)
    parser.add_argument("--flushall", default="", help="H,N: Redis loses its data under H holders; N newcomers")
    parser.add_argument("--flush-seconds", type=float, default=4.0)
    args = parser.parse_args()
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)  # minimal: ids reads REDIS_URL from the environment
    os.environ.pop("WEWORK_WORKER_ID", None)
    ids = _import_ids()
    # Targets split on the commas between URLs (a cluster URL lists its seeds with commas too).
    targets = [t for t in (args.targets or "").replace(",redis", " redis").split() if t]
    if not targets:
        raise SystemExit("drill_id_leases: set --targets or REDIS_URL")
    print(f"# load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpu (shared box)", flush=True)
    failures = 0
    summary = []
    for url in targets:
        os.environ["REDIS_URL"] = url
        if args.flushall:
            holders, newcomers = (int(v) for v in args.flushall.split(","))
            figures = flushall(ids, url, holders, newcomers, args.flush_seconds)
            summary.append(figures)
            print(f"drill_id_leases ({url}, flushall): {holders} holders, {newcomers} newcomers, "
                  f"{figures['newcomers_on_a_holders_worker_id']} newcomers leased a holder's worker id, "
                  f"{figures['ids_distinct']}/{figures['ids']} ids distinct, newcomers waited "
                  f"{figures['newcomer_wait_s_min']}-{figures['newcomer_wait_s_max']} s before their first id",
                  flush=True)
            failures += figures["ids"] - figures["ids_distinct"]
        for mode, total in (("fork", args.processes), ("spawn", args.spawn)):
            if not total:
                continue
            results, took, most = run(mode, total, args.live, args.hold_ms / 1000, ids)
            figures = check(results)
            figures.update({"target": url, "mode": mode, "processes": total, "seconds": round(took, 1),
                            "processes_per_s": round(total / took, 1), "most_alive": most})
            summary.append(figures)
            print(f"drill_id_leases ({url}, {mode}): {total} processes, {figures['failed']} failed, "
                  f"{figures['shared']} shared a worker id while alive, {figures['ids_distinct']}/{figures['ids']} "
                  f"ids distinct, {figures['worker_ids_used']} worker ids used, up to {most} alive at once, "
                  f"{total / took:.0f} processes/s ({took:.0f} s)", flush=True)
            if figures["failed"]:
                print("  first failure:", figures["first_failure"])
            failures += figures["failed"] + figures["shared"] + (figures["ids"] - figures["ids_distinct"])
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "drill_id_leases.json").write_text(json.dumps(summary, indent=2))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
