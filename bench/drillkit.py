"""What the broadcast drills share: private servers on ports of their own, the platform's
processes (Celery workers, beat) started as docs/deployment.md starts them, and the count of a
broadcast at the simulator side (lost, sent twice, stuck, time to resume).

* `PrivateRedis(port, directory, persistent)` -- a redis-server of the drill only; `stop()`
  (SHUTDOWN, saving when persistent), `kill()` (kill -9), `start()` again on the same data.
* `PrivateMariaDB(port, directory)` -- a mariadbd of the drill only (mariadb-install-db into
  `directory`, the settings of deploy/mariadb/common.cnf.in), root over TCP from 127.0.0.1.
* `Platform(log_dir, env, workers)` -- named Celery workers (prefork) and beat; `kill(name)`
  kill -9 of one worker's whole process group, restarted at once as a supervisor does.
* `Broadcast` -- a broadcast to the simulator, its timeline of accepted sends, and `result()`.

Never point these at the machine's own servers: every drill here kills what it starts.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TOKEN = "drill-token"
# No pacing (the figures are the dispatch's own), claim leases, dispatcher leases and beat's kick
# as in production.
NO_PACING = {"MIN_INTERVAL_S": 0, "JITTER_S": 0, "PER_MINUTE": 0, "DAILY": 0, "CONVERSATION_INTERVAL_S": 0,
             "CHECK_MEDIA_URLS": False, "BATCH_SEND_SIZE": 0, "CLAIM_BATCH": 100}


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _run_user() -> str | None:
    """mariadbd refuses to run as root unless told: the mysql user when started by root."""
    if os.geteuid() != 0:
        return None
    try:
        import pwd

        pwd.getpwnam("mysql")
        return "mysql"
    except KeyError:
        return "root"


class PrivateRedis:
    """A redis-server of the drill only. persistent: RDB + AOF (appendfsync everysec), as
    docs/deployment.md sets them, so a restart comes back with its data."""

    def __init__(self, port: int, directory: Path, persistent: bool = True):
        if port_open(port):
            raise SystemExit(f"drill: port {port} is taken; choose another (--redis-port)")
        self.port, self.dir, self.persistent = port, Path(directory), persistent
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = None
        self.log = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> float:
        """Start (again, on the same data); returns the seconds until it answered PING."""
        import redis

        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        persistence = (["--appendonly", "yes", "--appendfsync", "everysec", "--save", "60 1"] if self.persistent
                       else ["--appendonly", "no", "--save", ""])
        self.log = open(self.dir / "redis.log", "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                                      *persistence], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        client = redis.Redis(port=self.port)
        for _ in range(400):
            try:
                if client.ping():
                    return time.monotonic() - t0
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                time.sleep(0.05)
        raise SystemExit("drill: the private redis-server did not start")

    def stop(self) -> None:
        """SHUTDOWN (SAVE when persistent), as a service stop does."""
        import redis

        try:
            redis.Redis(port=self.port).shutdown(save=self.persistent, nosave=not self.persistent)
        except redis.ConnectionError:
            pass  # answered by closing the connection
        self._reap()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self._reap()

    def _reap(self):
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self._reap()

    def flushall(self):
        import redis

        redis.Redis(port=self.port).flushall()


class PrivateMariaDB:
    """A mariadbd of the drill only, data under `directory` (created by mariadb-install-db)."""

    def __init__(self, port: int, directory: Path):
        if port_open(port):
            raise SystemExit(f"drill: port {port} is taken; choose another (--mariadb-port)")
        self.port, self.dir = port, Path(directory).resolve()
        self.user = _run_user()
        self.proc = None

    def url(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def _chown(self):
        if self.user and self.user != "root":
            subprocess.run(["chown", "-R", self.user, str(self.dir)], check=True)

    def init(self) -> float:
        t0 = time.monotonic()
        if (self.dir / "data").exists():
            shutil.rmtree(self.dir / "data")
        (self.dir / "data").mkdir(parents=True)
        (self.dir / "tmp").mkdir(exist_ok=True)
        template = (ROOT / "deploy" / "mariadb" / "common.cnf.in").read_text()
        values = {"RUN_USER": self.user or os.environ.get("USER", "root"), "BIND": "127.0.0.1",
                  "PORT": str(self.port), "DIR": str(self.dir)}
        for key, value in values.items():
            template = template.replace(f"@{key}@", value)
        (self.dir / "my.cnf").write_text(template)
        self._chown()
        user = ["--user=" + self.user] if self.user else []
        with open(self.dir / "install.log", "wb") as log:
            subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.dir / 'data'}", *user,
                            "--auth-root-authentication-method=normal", "--skip-test-db"],
                           stdout=log, stderr=subprocess.STDOUT, check=True)
        self.start()
        subprocess.run(["mariadb", "--no-defaults", "-S", str(self.dir / "mysqld.sock"), "-uroot", "-e",
                        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; "
                        "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"], check=True)
        return time.monotonic() - t0

    def start(self) -> float:
        import MySQLdb

        self._chown()
        t0 = time.monotonic()
        log = open(self.dir / "stdout.log", "ab")
        self.proc = subprocess.Popen(["mariadbd", f"--defaults-file={self.dir / 'my.cnf'}"], stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        while time.monotonic() - t0 < 120:
            if self.proc.poll() is not None:
                raise SystemExit(f"drill: mariadbd did not start (see {self.dir / 'error.log'})")
            try:
                MySQLdb.connect(unix_socket=str(self.dir / "mysqld.sock"), user="root").close()
                return time.monotonic() - t0
            except MySQLdb.OperationalError:
                time.sleep(0.2)
        raise SystemExit("drill: mariadbd did not answer within 120 s")

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (what `systemctl stop` does)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=120)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def close(self):
        self.stop()


class Platform:
    """Celery workers (prefork, `concurrency` processes each, named) and Celery beat, as
    docs/deployment.md starts them; `env` on top of this process's environment."""

    def __init__(self, log_dir: Path, env: dict, workers=("w1",), concurrency: int = 2):
        self.log_dir = Path(log_dir)
        self.env = {**os.environ, "CELERY_TASK_ALWAYS_EAGER": "0", "LOG_LEVEL": "WARNING",
                    "WEWORK_DATA_DIR": str(self.log_dir / "data"), **env}
        self.workers, self.concurrency = list(workers), concurrency
        self.procs: dict[str, tuple[subprocess.Popen, object]] = {}

    def _start(self, name):
        py = sys.executable
        if name == "beat":
            command = [py, "-m", "celery", "-A", "wework", "beat", "-l", "warning",
                       "-s", str(self.log_dir / "beat-schedule")]
        else:
            command = [py, "-m", "celery", "-A", "wework", "worker", "-P", "prefork", "-c", str(self.concurrency),
                       "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "-l", "warning"]
        log = open(self.log_dir / f"{name}.log", "ab")
        self.procs[name] = (subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True), log)

    def start(self, beat=True):
        for name in self.workers:
            self._start(name)
        if beat:
            self._start("beat")

    def pids(self, name) -> set[int]:
        """The worker's main process and its pool processes."""
        proc = self.procs[name][0]
        out = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
        return {int(x) for x in out} | {proc.pid}

    def kill(self, name, restart=True):
        proc, log = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()
        if restart:
            self._start(name)

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
                proc.wait()
            log.close()
        self.procs = {}

    def tracebacks(self) -> dict[str, int]:
        return {path.stem: path.read_text(errors="replace").count("Traceback (most recent")
                for path in sorted(self.log_dir.glob("*.log"))}


def pids_talking_to(port: int) -> set[int]:
    """Processes with an established TCP connection to 127.0.0.1:`port` (the simulator)."""
    import re

    out = subprocess.run(["ss", "-tnpH", "state", "established", "dport", f"= :{port}"],
                         capture_output=True, text=True).stdout
    return {int(p) for p in re.findall(r"pid=(\d+)", out)}


def make_world(n, latency_ms, seed=7):
    """The simulator (n contacts on one account, `latency_ms` a request), an instance and the
    account registered on the platform, the contacts stored; returns (sim, admin, account)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from contacts.models import AccountStatus, Contact, WeworkAccount
    from instances import services as instance_services
    from simulator.server import Simulator
    from wework import shards

    sim = Simulator(port=0, token=TOKEN, accounts=1, contacts=n, rooms=1, members=3, seed=seed, duplicate_rate=0.0,
                    chatter_per_min=0, history_on_login=0, heartbeat_interval_s=3600, send_delay_ms=0,
                    latency_ms=latency_ms, max_events=50_000)
    sim.start()
    User = get_user_model()
    admin = User.objects.filter(username="drill").first() or User.objects.create_superuser(
        "drill", "drill@example.com", "drill-password-123")
    instance = instance_services.register_instance(
        name=f"drill-{time.time():.3f}", api_url=sim.url, token=TOKEN, created_by=admin, push=False).instance
    sim_account = next(iter(sim.accounts.values()))
    account = WeworkAccount.objects.create(instance=instance, wxid=sim_account.account_id, status=AccountStatus.ONLINE,
                                           is_logged_in=True, last_login_time=timezone.now())
    rows = [{"account_id": account.pk, "wxid": c["contact_id"], "nickname": c["name"], "contact_type": 1}
            for c in sim_account.contacts]
    shards.bulk_create(Contact, rows, instance_id=instance.pk, batch_size=2000)
    return sim, admin, account


def db_call(fn, default=None):
    """A read of the drill's own that must survive a database outage: None while it is away."""
    from django.db import DatabaseError, close_old_connections, connection

    try:
        return fn()
    except DatabaseError:
        try:
            connection.close()
        except DatabaseError:
            pass
        close_old_connections()
        return default


class Broadcast:
    """One broadcast of n receivers to a fresh simulator; `events` are the moments of the
    faults; `result()` counts at the simulator side."""

    def __init__(self, n, latency_ms, seed=7):
        from drill_galera_failover import Timeline
        from messaging.services import sending
        from messaging.services.requests import TaskRequest

        self.n = n
        self.sim, self.admin, self.account = make_world(n, latency_ms, seed)
        self.task = sending.create_task(self.admin, TaskRequest(
            account=self.account, message_type="text", content="Hello {{ receiver_name }}",
            filters={"source": "contacts"}), start=False)
        self.timeline = Timeline(lambda: len(self.sim.messages))
        self.events: list[tuple[str, float]] = []
        self.started = self.done = None

    def start(self):
        from messaging.services import lifecycle

        self.started = time.monotonic()
        lifecycle.start_task(self.task.pk)

    def accepted(self) -> int:
        return len(self.sim.messages)

    def wait_accepted(self, count, deadline):
        while self.accepted() < count:
            if time.monotonic() - self.started > deadline:
                raise SystemExit(f"drill: only {self.accepted()} of {count} sends accepted within {deadline} s")
            time.sleep(0.01)

    def sending_ids(self) -> set[int]:
        from messaging.models import MessageReceiver, ReceiverSendStatus as RS

        return set(MessageReceiver.objects.filter(task_id=self.task.pk, send_status=RS.SENDING)
                   .values_list("pk", flat=True))

    def settle_time(self, ids, since, deadline):
        """Seconds from `since` until none of `ids` is SENDING (None past the deadline)."""
        from messaging.models import MessageReceiver, ReceiverSendStatus as RS

        while time.monotonic() - since < deadline:
            left = db_call(lambda: MessageReceiver.objects.filter(pk__in=ids, send_status=RS.SENDING).count())
            if left == 0:
                return time.monotonic() - since
            time.sleep(0.2)
        return None

    def wait_done(self, deadline):
        from messaging.models import MessageTask, TaskStatus

        while time.monotonic() - self.started < deadline:
            status = db_call(lambda: MessageTask.objects.filter(pk=self.task.pk)
                             .values_list("status", flat=True).first())
            if status == TaskStatus.COMPLETED:
                self.done = time.monotonic()
                return True
            time.sleep(0.2)
        return False

    def resumed_after(self, moment, quiet_s=0.5):
        """Seconds from `moment` to the first send accepted after those in flight at it (those
        that landed within `quiet_s`)."""
        landed = max((v for t, v in self.timeline.samples if t <= moment + quiet_s), default=0)
        return next((t - moment for t, v in self.timeline.samples if t > moment + quiet_s and v > landed), None)

    def result(self):
        from messaging.models import MessageReceiver, MessageTask, ReceiverSendStatus as RS, TaskStatus

        self.timeline.stop()
        self.sim.stop()
        task = MessageTask.objects.get(pk=self.task.pk)
        by_status = Counter(MessageReceiver.objects.filter(task_id=task.pk).values_list("send_status", flat=True))
        per_receiver = Counter(m["request"]["conversation_id"] for m in self.sim.messages.values())
        stuck = by_status.get(RS.PENDING, 0) + by_status.get(RS.SENDING, 0)
        return {
            "receivers": self.n, "task_status": TaskStatus(task.status).name, "success_count": task.success_count,
            "receivers_by_status": {RS(k).name: v for k, v in by_status.items()},
            "messages_at_instance": len(self.sim.messages), "receivers_reached": len(per_receiver),
            "lost": self.n - len(per_receiver), "sent_twice": sum(1 for c in per_receiver.values() if c > 1),
            "stuck": stuck, "failed": by_status.get(RS.FAILED, 0),
            "counter_exact": task.success_count == by_status.get(RS.SUCCESS, 0),
            "resends_same_uuid": sum(self.sim.receipts.values()) - len(self.sim.by_client_msg_id),
            "seconds": round((self.done or time.monotonic()) - self.started, 1),
        }


def print_json(label, payload):
    print(f"# {label}:", json.dumps(payload, ensure_ascii=False), flush=True)
