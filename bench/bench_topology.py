"""Database topologies: API list latency through the replica router and through HAProxy in
front of Galera, against a direct primary connection, in the same run.

Four platform processes, each with its own database settings, answer the same request
(`GET /api/v1/messaging/templates/`, 50 of 2,000 templates, a logged-in superuser, the full
middleware stack, the in-process test client); the parent asks them in turn, round after
round, so that the noise of the shared machine falls on every figure alike:

* primary        DATABASE_URL on the GTID primary (3307), no replica: the baseline;
* replica router the same primary with DATABASE_REPLICA_URLS on its replica (3308): the list is
                 a pure read, served by the replica (health checked once a second);
* galera node    DATABASE_URL straight on one Galera node (3311);
* haproxy        DATABASE_URL on HAProxy's write port (3320), replicas on its read port (3321);
* haproxy write port only: the same without the read port (every read on the write node).

Also the raw cost of one round trip (`SELECT 1` through MySQLdb) on each path.
Needs `scripts/services up replica galera` (started here when not up).

Run: `.venv/bin/python bench/bench_topology.py [--quick]`
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    Stats, bench_args, create_bench_database, drop_bench_database, report, save_results,
)

ROOT = Path(__file__).resolve().parents[1]
DB = "wework_bench_topo"
CONFIGS = {
    "primary": {"DATABASE_URL": f"mysql://root@127.0.0.1:3307/{DB}"},
    "replica router": {"DATABASE_URL": f"mysql://root@127.0.0.1:3307/{DB}",
                       "DATABASE_REPLICA_URLS": f"mysql://root@127.0.0.1:3308/{DB}"},
    "galera node": {"DATABASE_URL": f"mysql://root@127.0.0.1:3311/{DB}"},
    "haproxy": {"DATABASE_URL": f"mysql://root@127.0.0.1:3320/{DB}",
                "DATABASE_REPLICA_URLS": f"mysql://root@127.0.0.1:3321/{DB}"},
    "haproxy write port only": {"DATABASE_URL": f"mysql://root@127.0.0.1:3320/{DB}"},
}
OWNERS = ("primary", "galera node")  # create, migrate and fill their database
URL = "/api/v1/messaging/templates/"  # PAGE_SIZE 50


# --- child: one configured platform process ---------------------------------------------------

def child(name, rows):
    """Serve "run N" commands on stdin with timings (seconds per request) on stdout."""
    from harness import setup_django

    os.environ.update(CONFIGS[name])
    setup_django(os.environ["DATABASE_URL"], migrate=name in OWNERS, fresh=False)
    from django.db import connections
    from django.test import Client

    from wework.testing.fixtures import login_verified
    from django.contrib.auth import get_user_model

    from messaging.models import MessageTemplate

    User = get_user_model()
    if name in OWNERS and not User.objects.filter(username="bench").exists():
        admin = User.objects.create_superuser("bench", "bench@example.com", "bench-password-123")
        batch = [MessageTemplate(template_uuid=f"t-{i}", name=f"Template {i}", message_type="text",
                                 content="Hello {{ name }}", variables=[{"name": "name"}], created_by=admin)
                 for i in range(rows)]
        MessageTemplate.objects.bulk_create(batch, batch_size=1000)
    admin = User.objects.get(username="bench")
    client = Client()
    login_verified(client, admin)

    def one():
        response = client.get(URL)
        assert response.status_code == 200, response.status_code
        assert len(response.json()["results"]) == 50

    def raw():
        conn = connections["replica_0" if "replica_0" in connections.settings else "default"]
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()

    for _ in range(5):
        one()
    print(json.dumps({"ready": name}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        fn = one if command["what"] == "list" else raw
        samples = []
        for _ in range(command["n"]):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        print(json.dumps({"samples": samples}), flush=True)


# --- parent ---------------------------------------------------------------------------------

def _services_up():
    result = subprocess.run([str(ROOT / "scripts" / "services"), "up", "replica", "galera"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"bench_topology: the topologies did not start:\n{result.stdout}{result.stderr}")


def _wait_replicated():
    import MySQLdb

    primary = MySQLdb.connect(host="127.0.0.1", port=3307, user="root")
    replica = MySQLdb.connect(host="127.0.0.1", port=3308, user="root")
    cur = primary.cursor()
    cur.execute("SELECT @@gtid_binlog_pos")
    gtid = cur.fetchone()[0]
    cur = replica.cursor()
    cur.execute("SELECT MASTER_GTID_WAIT(%s, 120)", [gtid])
    assert cur.fetchone()[0] == 0, "the replica did not catch up"
    primary.close()
    replica.close()


def main():
    args = bench_args(__doc__.splitlines()[0], extra=lambda p: p.add_argument("--rows", type=int, default=2000))
    _services_up()
    for owner in OWNERS:
        create_bench_database(CONFIGS[owner]["DATABASE_URL"], drop_first=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_REPLICA_URLS", "REDIS_URL")}
    procs = {}
    try:
        for group in (OWNERS, [n for n in CONFIGS if n not in OWNERS]):
            for name in group:
                procs[name] = subprocess.Popen(
                    [sys.executable, __file__, "--child", name, str(args.rows)], cwd=ROOT, env=env,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                )
            for name in group:
                line = procs[name].stdout.readline()
                if not line:
                    raise SystemExit(f"bench_topology: the {name} process failed to start")
            if group is OWNERS:
                _wait_replicated()
        print(f"# topologies: replica pair 3307/3308, Galera 3311-3313 behind HAProxy 3320/3321; {args.rows} rows")
        rounds = max(1, args.repeats // 10)
        for what in ("raw", "list"):
            samples = {name: [] for name in procs}
            for _ in range(rounds):
                for name, proc in procs.items():
                    proc.stdin.write(json.dumps({"what": what, "n": 10}) + "\n")
                    samples[name].extend(json.loads(proc.stdout.readline())["samples"])
            stats = {name: Stats(values) for name, values in samples.items()}
            label = "SELECT 1 round trip" if what == "raw" else "API list 50 rows"
            base = stats["primary"]
            for name, st in stats.items():
                print(f"  {label} via {name}: {st.summary()}")
            report(f"{label} via replica router", stats["replica router"].median_ms, "ms",
                   base.median_ms, "ms (direct primary)")
            report(f"{label} via HAProxy (Galera)", stats["haproxy"].median_ms, "ms",
                   stats["galera node"].median_ms, "ms (direct Galera node)")
            report(f"{label} via HAProxy (Galera) vs primary", stats["haproxy"].median_ms, "ms",
                   base.median_ms, "ms (direct primary)")
            report(f"{label} via HAProxy write port only", stats["haproxy write port only"].median_ms, "ms",
                   stats["galera node"].median_ms, "ms (direct Galera node)")
            report(f"{label} p95 via HAProxy", stats["haproxy"].p(95), "ms",
                   stats["galera node"].p(95), "ms (direct Galera node p95)")
    finally:
        for proc in procs.values():
            try:
                proc.stdin.close()
                proc.wait(timeout=10)
            except Exception:  # noqa: BLE001
                proc.kill()
        if not args.keep_db:
            for owner in OWNERS:
                drop_bench_database(CONFIGS[owner]["DATABASE_URL"])
    save_results(args)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
