"""What a database error means for the caller: a conflict worth retrying, a lost or refused
connection, or neither.

MariaDB/MySQL report the reason as an error code (`exc.args[0]`, also on Django's wrapped
errors); SQLite only as text. The classes:

- CONFLICT: the transaction was rolled back and nothing of it committed: a deadlock (on a
  Galera cluster also a certification conflict, reported at COMMIT), a lock wait timeout,
  SQLite's "database is locked". Retrying the whole transaction is safe when the work inside
  it touches nothing but the database.
- UNAVAILABLE: the server cannot be reached, went away, is shutting down, or is a Galera node
  outside the primary component. When it happens at COMMIT, whether the transaction committed
  is unknown: only an idempotent operation may be retried then.
"""
from __future__ import annotations

import logging
import time

from django.db import DatabaseError

log = logging.getLogger("wework.db")

CONFLICT = "conflict"
UNAVAILABLE = "unavailable"

CONFLICT_CODES = frozenset({
    1205,  # ER_LOCK_WAIT_TIMEOUT
    1213,  # ER_LOCK_DEADLOCK (also Galera certification failures and brute-force aborts)
    1180,  # ER_ERROR_DURING_COMMIT (Galera: "Got error 6 'Deadlock' during COMMIT")
    1637,  # ER_TOO_MANY_CONCURRENT_TRXS
})
UNAVAILABLE_CODES = frozenset({
    1040,  # ER_CON_COUNT_ERROR: too many connections
    1047,  # ER_UNKNOWN_COM_ERROR: "WSREP has not yet prepared node for application use"
    1053,  # ER_SERVER_SHUTDOWN
    1077,  # ER_NORMAL_SHUTDOWN
    1078,  # ER_GOT_SIGNAL
    1079,  # ER_SHUTDOWN_COMPLETE
    1152,  # ER_ABORTING_CONNECTION
    1158, 1159, 1160, 1161,  # network read/write errors and timeouts
    1290,  # ER_OPTION_PREVENTS_STATEMENT: a read-only server (a demoted primary)
    1836,  # ER_READ_ONLY_MODE
    1927,  # ER_CONNECTION_KILLED
    2002,  # CR_CONNECTION_ERROR (socket)
    2003,  # CR_CONN_HOST_ERROR: cannot connect
    2005,  # CR_UNKNOWN_HOST
    2006,  # CR_SERVER_GONE_ERROR
    2013,  # CR_SERVER_LOST: lost connection during query
    2026,  # CR_SSL_CONNECTION_ERROR
    2055,  # CR_SERVER_LOST_EXTENDED
    4031,  # ER_CLIENT_INTERACTION_TIMEOUT: disconnected by the server
})
NO_SUCH_TABLE = 1146  # a table that has not reached a lagging replica yet
#: The statement ran out of the time the web process allows (DATABASE_STATEMENT_TIMEOUT_S):
#: MariaDB's max_statement_time (1969), MySQL's max_execution_time (3024). Never retried.
STATEMENT_TIMEOUT_CODES = frozenset({1969, 3024})


def error_code(exc: BaseException) -> int | None:
    """The server's error code of a database error (Django's wrapper or the driver's own)."""
    for candidate in (exc, getattr(exc, "__cause__", None)):
        args = getattr(candidate, "args", None)
        if args and isinstance(args[0], int):
            return args[0]
    return None


def _is_database_error(exc: BaseException) -> bool:
    # Django's wrapped errors, and the drivers' own (raw cursors, health checks, drills).
    return isinstance(exc, DatabaseError) or type(exc).__module__.split(".")[0] in ("MySQLdb", "sqlite3")


def _kind(exc: BaseException, *names: str) -> bool:
    return any(cls.__name__ in names for cls in type(exc).__mro__)


def classify(exc: BaseException) -> str | None:
    """CONFLICT, UNAVAILABLE or None (an error that a retry would only repeat)."""
    if not _is_database_error(exc):
        return None
    code = error_code(exc)
    if code in CONFLICT_CODES:
        return CONFLICT
    if code in UNAVAILABLE_CODES:
        return UNAVAILABLE
    if code is None and _kind(exc, "OperationalError"):
        text = str(exc).lower()
        if "database is locked" in text or "database table is locked" in text:
            return CONFLICT
        if "server has gone away" in text or "lost connection" in text or "can't connect" in text:
            return UNAVAILABLE
    if code is None and _kind(exc, "InterfaceError"):
        # The driver's "connection already closed" and the like.
        return UNAVAILABLE
    return None


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "the database cannot serve this now; retry later" (503)."""
    return classify(exc) is not None


def replica_read_failed(exc: BaseException) -> bool:
    """True when a pure read on a replica should be repeated on the primary: the replica is
    unreachable or lagging (a table not there yet)."""
    if classify(exc) is not None:
        return True
    return _kind(exc, "ProgrammingError") and error_code(exc) == NO_SUCH_TABLE


_last_logged = [0.0]


def log_unavailable(exc: BaseException, request=None) -> None:
    """One warning line (no traceback) per answer of 503, a traceback at most once a minute."""
    now = time.monotonic()
    path = getattr(request, "path", "") or getattr(getattr(request, "_request", None), "path", "")
    with_trace = now - _last_logged[0] > 60
    if with_trace:
        _last_logged[0] = now
    log.warning("database unavailable (%s, error %s) for %s: answered 503", classify(exc),
                error_code(exc), path or "-", exc_info=exc if with_trace else None)


def is_statement_timeout(exc: BaseException) -> bool:
    """The server interrupted the statement at the web process's time limit."""
    return error_code(exc) in STATEMENT_TIMEOUT_CODES
