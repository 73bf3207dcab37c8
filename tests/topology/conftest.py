"""Tests on real database topologies, started by `scripts/services` and run by
`scripts/test-topology` (CI: its own sections). Never collected by the ordinary suite.

WEWORK_TOPOLOGY=replica: DATABASE_URL names the primary of the GTID pair (3307) and
  DATABASE_REPLICA_URLS its replica (3308); the test database is created on the primary and
  reaches the replica by replication (the replica alias mirrors its name).
WEWORK_TOPOLOGY=galera: DATABASE_URL names HAProxy's write port (3320) and DATABASE_REPLICA_URLS
  its read port (3321) in front of three Galera nodes (3311-3313).

A server that cannot be reached fails the session; nothing is skipped.
"""
from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services"
TOPOLOGY = os.environ.get("WEWORK_TOPOLOGY", "")

PRIMARY_PORT = int(os.environ.get("SERVICES_REPLICA_PRIMARY_PORT", 3307))
REPLICA_PORT = int(os.environ.get("SERVICES_REPLICA_PORT", 3308))
GALERA_PORTS = [int(p) for p in os.environ.get("SERVICES_GALERA_PORTS", "3311 3312 3313").split()]
HAPROXY_WRITE_PORT = int(os.environ.get("SERVICES_HAPROXY_WRITE_PORT", 3320))
HAPROXY_READ_PORT = int(os.environ.get("SERVICES_HAPROXY_READ_PORT", 3321))


def connect(port, db=None, **kwargs):
    import MySQLdb

    return MySQLdb.connect(host="127.0.0.1", port=port, user="root", passwd="", db=db or "",
                           autocommit=True, connect_timeout=3, charset="utf8mb4", **kwargs)


def sql(port, statement, params=None, db=None, causal=False):
    """One statement on one server. `causal`: on a Galera node, first wait until the node has
    applied everything committed anywhere in the cluster (wsrep_sync_wait)."""
    conn = connect(port, db=db)
    try:
        cursor = conn.cursor()
        if causal:
            cursor.execute("SET SESSION wsrep_sync_wait = 7")
        cursor.execute(statement, params)
        return cursor.fetchall()
    finally:
        conn.close()


def haproxy(command):
    """One command on HAProxy's admin socket (scripts/services keeps it under its directory)."""
    import socket

    base = Path(os.environ.get("SERVICES_DIR", ROOT / "var" / "services"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(base / "haproxy" / "admin.sock"))
        sock.sendall(command.encode() + b"\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer.decode()


def services(*args, check=True):
    result = subprocess.run([str(SERVICES), *args], capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"scripts/services {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def pytest_collection_modifyitems(config, items):
    ours = [item for item in items if item.path.parent == Path(__file__).parent]
    if not ours:
        return
    expected = {"replica": "test_replica_pair.py", "galera": "test_galera.py"}.get(TOPOLOGY)
    if expected is None:
        raise pytest.UsageError(f"WEWORK_TOPOLOGY must be 'replica' or 'galera', not {TOPOLOGY!r}.")
    for item in ours:
        if item.path.name != expected:
            item.add_marker(pytest.mark.skip(reason=f"runs in the {item.path.stem} topology session"))


@pytest.fixture(scope="session", autouse=True)
def topology_reachable():
    ports = {"replica": [PRIMARY_PORT, REPLICA_PORT],
             "galera": [*GALERA_PORTS, HAPROXY_WRITE_PORT, HAPROXY_READ_PORT]}[TOPOLOGY]
    for port in ports:
        try:
            sql(port, "SELECT 1")
        except Exception as exc:  # noqa: BLE001
            pytest.exit(f"the {TOPOLOGY} topology is not up (port {port}: {exc}); "
                        f"run scripts/services up {TOPOLOGY}", returncode=3)


# --- replica pair ---------------------------------------------------------------------------

def database_name():
    from django.db import connections

    return connections["default"].settings_dict["NAME"]


def wait_replica_caught_up(timeout=30):
    """Wait until the replica applied everything the primary has written."""
    gtid = sql(PRIMARY_PORT, "SELECT @@gtid_binlog_pos")[0][0]
    waited = sql(REPLICA_PORT, "SELECT MASTER_GTID_WAIT(%s, %s)", [gtid, timeout])[0][0]
    assert waited == 0, f"the replica did not reach {gtid} within {timeout} s"


@contextmanager
def sql_thread_stopped():
    """The replica keeps receiving the primary's changes but applies none: it lags."""
    wait_replica_caught_up()
    sql(REPLICA_PORT, "STOP SLAVE SQL_THREAD")
    try:
        yield
    finally:
        sql(REPLICA_PORT, "START SLAVE SQL_THREAD")
        wait_replica_caught_up()


@contextmanager
def replica_server_stopped():
    wait_replica_caught_up()
    services("stop", "replica")
    try:
        yield
    finally:
        services("up", "replica")
        wait_replica_caught_up(timeout=60)


def eventually(predicate, timeout=15.0, interval=0.1, message="condition"):
    """Poll `predicate` until true; returns the seconds it took."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{message} not reached within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def replica_health():
    from wework.db.replicas import health

    health.reset()
    yield health
    health.reset()
