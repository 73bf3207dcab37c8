"""Replica health: which read replicas may serve reads right now.

Every process checks each replica at most once per `DATABASE_REPLICA_CHECK_INTERVAL_S`
(default 1 s), in the thread that asks first; other threads use the last answer meanwhile. The
check runs on a connection of its own with short timeouts, so a replica that hangs costs one
thread at most `DATABASE_REPLICA_CONNECT_TIMEOUT_S` once per interval:

- an asynchronous replica (`SHOW REPLICA STATUS` returns a row) is in rotation when its IO and
  SQL threads run and `Seconds_Behind_Master` is at most `DATABASE_REPLICA_MAX_LAG_S`
  (default 5); a stopped SQL thread or an unknown lag takes it out;
- a Galera node (the read port of HAProxy: no replication row, but wsrep status) is in
  rotation when it is Synced and ready;
- any other server (a test mirror of the primary) is in rotation when it answers.

A replica that fails a query during a pure read is taken out at once (`mark_failed`) and
checked again after one interval. With no replica in rotation, reads go to the primary.
The platform's database user needs the SLAVE MONITOR privilege (REPLICATION CLIENT before
MariaDB 10.5) on asynchronous replicas to read their status.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connections

log = logging.getLogger("wework.db.replicas")


@dataclass(frozen=True)
class ReplicaStatus:
    alias: str
    healthy: bool
    lag_s: float | None
    reason: str
    checked_at: float  # time.monotonic()
    kind: str = "unknown"  # async | galera | standalone | unknown


def max_lag_s() -> float:
    return float(getattr(settings, "DATABASE_REPLICA_MAX_LAG_S", 5))


def check_interval_s() -> float:
    return float(getattr(settings, "DATABASE_REPLICA_CHECK_INTERVAL_S", 1))


def connect_timeout_s() -> int:
    return max(1, int(getattr(settings, "DATABASE_REPLICA_CONNECT_TIMEOUT_S", 2)))


class ReplicaHealth:
    """Per-process health of every replica alias (thread-safe; reset after fork)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._checking = {}  # alias -> threading.Lock
        self._status = {}  # alias -> ReplicaStatus
        self._conns = {}  # alias -> DB-API connection used for checks
        self._forced = {}  # alias -> bool (tests, drills)
        self._pid = os.getpid()
        self._last_logged = {}  # alias -> healthy (log transitions only)

    # --- public ----------------------------------------------------------------------------

    def healthy(self, aliases):
        """The aliases among `aliases` that are in rotation now (checks the stale ones)."""
        return [alias for alias in aliases if self.status(alias).healthy]

    def status(self, alias) -> ReplicaStatus:
        self._after_fork()
        if alias in self._forced:
            return ReplicaStatus(alias, self._forced[alias], 0.0, "forced", self.clock(), "forced")
        current = self._status.get(alias)
        if current is not None and self.clock() - current.checked_at < check_interval_s():
            return current
        lock = self._alias_lock(alias)
        # The first check of an alias is waited for; later ones are done by one thread while
        # the others use the previous answer.
        if not lock.acquire(blocking=current is None):
            return current
        try:
            current = self._status.get(alias)
            if current is not None and self.clock() - current.checked_at < check_interval_s():
                return current
            fresh = self._check(alias)
            self._record(fresh)
            return fresh
        finally:
            lock.release()

    def mark_failed(self, alias, reason):
        """Take `alias` out of rotation until its next check (a query on it just failed)."""
        self._after_fork()
        self._drop_conn(alias)
        self._record(ReplicaStatus(alias, False, None, reason, self.clock()))

    def force(self, alias, healthy):
        """Tests and drills: pin the answer for `alias` (None: back to real checks)."""
        if healthy is None:
            self._forced.pop(alias, None)
        else:
            self._forced[alias] = bool(healthy)

    def reset(self):
        with self._lock:
            for alias in list(self._conns):
                self._drop_conn(alias)
            self._status.clear()
            self._forced.clear()
            self._last_logged.clear()

    # --- internals --------------------------------------------------------------------------

    def _after_fork(self):
        pid = os.getpid()
        if pid != self._pid:
            # A forked worker must not share its parent's check connections or locks.
            self._pid = pid
            self._lock = threading.Lock()
            self._checking = {}
            self._conns = {}
            self._status = {}

    def _alias_lock(self, alias):
        with self._lock:
            lock = self._checking.get(alias)
            if lock is None:
                lock = self._checking[alias] = threading.Lock()
            return lock

    def _record(self, status):
        self._status[status.alias] = status
        before = self._last_logged.get(status.alias)
        if before != status.healthy:
            self._last_logged[status.alias] = status.healthy
            if status.healthy:
                if before is not None:
                    log.warning("replica %s is back in rotation (%s)", status.alias, status.reason)
            else:
                log.warning("replica %s is out of rotation: %s", status.alias, status.reason)

    def _drop_conn(self, alias):
        conn = self._conns.pop(alias, None)
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass

    def _connection(self, alias):
        conn = self._conns.get(alias)
        if conn is not None:
            return conn
        wrapper = connections[alias]
        params = wrapper.get_connection_params()
        timeout = connect_timeout_s()
        params["connect_timeout"] = timeout
        params["read_timeout"] = timeout
        params["write_timeout"] = timeout
        conn = self._conns[alias] = wrapper.get_new_connection(params)
        return conn

    def _check(self, alias) -> ReplicaStatus:
        now = self.clock()
        if connections[alias].vendor != "mysql":
            return ReplicaStatus(alias, True, 0.0, "not a MySQL/MariaDB server", now, "standalone")
        try:
            conn = self._connection(alias)
            return self._check_mysql(alias, conn, now)
        except Exception as exc:  # noqa: BLE001 - any failure means: not usable now
            self._drop_conn(alias)
            return ReplicaStatus(alias, False, None, f"unreachable: {exc}"[:300], now)

    def _check_mysql(self, alias, conn, now):
        cursor = conn.cursor()
        try:
            row = _replication_status(cursor)
            if row is not None:
                io = row.get("Slave_IO_Running", row.get("Replica_IO_Running"))
                sql = row.get("Slave_SQL_Running", row.get("Replica_SQL_Running"))
                lag = row.get("Seconds_Behind_Master", row.get("Seconds_Behind_Source"))
                lag = None if lag is None else float(lag)
                if sql != "Yes":
                    return ReplicaStatus(alias, False, lag, "replication SQL thread is not running", now, "async")
                if io != "Yes":
                    return ReplicaStatus(alias, False, lag, f"replication IO thread is {io}", now, "async")
                if lag is None:
                    return ReplicaStatus(alias, False, None, "replication lag unknown", now, "async")
                if lag > max_lag_s():
                    return ReplicaStatus(alias, False, lag, f"lag {lag:.0f} s > {max_lag_s():g} s", now, "async")
                return ReplicaStatus(alias, True, lag, f"lag {lag:.0f} s", now, "async")
            cursor.execute("SHOW GLOBAL VARIABLES LIKE 'wsrep_on'")
            wsrep_on = cursor.fetchone()
            if wsrep_on is not None and str(wsrep_on[1]).upper() == "ON":
                cursor.execute(
                    "SHOW GLOBAL STATUS WHERE Variable_name IN "
                    "('wsrep_ready', 'wsrep_local_state', 'wsrep_cluster_status')"
                )
                wsrep = {name.lower(): value for name, value in cursor.fetchall()}
                synced = (wsrep.get("wsrep_local_state") == "4" and wsrep.get("wsrep_ready") == "ON"
                          and wsrep.get("wsrep_cluster_status") == "Primary")
                reason = "Galera node synced" if synced else f"Galera node not synced: {wsrep}"
                return ReplicaStatus(alias, synced, 0.0 if synced else None, reason, now, "galera")
            cursor.execute("SELECT 1")
            cursor.fetchall()
            return ReplicaStatus(alias, True, 0.0, "answers (not a replica)", now, "standalone")
        finally:
            cursor.close()


def _replication_status(cursor):
    """The first row of SHOW REPLICA STATUS as a dict, or None when the server replicates from
    nothing. Falls back to SHOW SLAVE STATUS on servers that only know that spelling."""
    for statement in ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):
        try:
            cursor.execute(statement)
        except Exception as exc:
            if statement == "SHOW SLAVE STATUS":
                raise
            if "syntax" not in str(exc).lower():
                raise
            continue
        row = cursor.fetchone()
        if row is None:
            return None
        names = [d[0] for d in cursor.description]
        return dict(zip(names, row))
    return None


health = ReplicaHealth()
