"""A logging handler that stores structured records in `system_logs` (daily shards).

`emit()` runs in the caller's thread and only builds a small dict and puts it on a bounded queue
(`put_nowait`): it never blocks, never touches the database and never raises. A daemon thread
drains the queue in batches (up to `batch_size` records, or whatever arrived within
`flush_interval` seconds) and hands each batch to the sinks: the database (through the shard
layer) and, when configured, Elasticsearch. When the queue is full the record is dropped and
counted; the writer reports the count as one WARNING record every `report_interval` seconds
(and `stats()` exposes it). The queue is flushed at interpreter exit. Celery's prefork children
start their own writer on first use (the thread is per process id).

Configured in settings.LOGGING (see docs/monitoring.md); switched off with SYSTEM_LOG_DB=0.
"""
import atexit
import itertools
import logging
import os
import queue
import sys
import threading
import time
import traceback
from datetime import UTC, datetime

from wework.ids import new_uuid

from . import context

# Design levels: DEBUG, INFO, WARN, ERROR, FATAL.
LEVEL_NAMES = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "FATAL",
}
# Records of these loggers are never stored (the writer's own database, HTTP and export
# traffic would feed back into the queue).
IGNORED_LOGGER_PREFIXES = (
    "django.db.backends",
    "monitoring.logging_handler",
    "elastic_transport",
    "elasticsearch",
    "urllib3",
    "influxdb_client",
    "httpx",
    "httpcore",
)
# Attributes every LogRecord has; anything else passed through `extra=` is context.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None).__dict__
) | {"message", "asctime", "taskName"}
# Extras that map onto columns rather than into `context`.
_COLUMN_EXTRAS = ("action", "module_name", "instance_id", "response_code", "response_time",
                  "service")

MAX_MESSAGE = 60_000
MAX_STACK = 60_000
_log = logging.getLogger("monitoring.logging_handler")


def level_name(levelno):
    if levelno >= logging.CRITICAL:
        return "FATAL"
    for threshold in (logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= threshold:
            return LEVEL_NAMES[threshold]
    return "DEBUG"


def _json_safe(value, depth=0):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value if not isinstance(value, str) else value[:2000]
    if depth > 3:
        return repr(value)[:200]
    if isinstance(value, dict):
        return {str(k)[:100]: _json_safe(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v, depth + 1) for v in list(value)[:50]]
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)[:500]


def _peek_user_id(actor):
    """The user id if the request's user is already loaded (never runs a query here)."""
    if actor is None:
        return None
    user = actor.user
    if user is None and actor.request is not None:
        user = actor.request.__dict__.get("user")
        wrapped = getattr(user, "_wrapped", None) if user is not None else None
        if user is not None and wrapped is not None:
            from django.utils.functional import empty

            if wrapped is empty:
                return None
            user = wrapped
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return getattr(user, "pk", None)


def build_entry(record, service):
    """The column dict for one LogRecord (called in the logging thread: cheap, no I/O)."""
    actor = context.current()
    extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}
    ctx = {k: _json_safe(v) for k, v in extras.items() if k not in _COLUMN_EXTRAS}
    ctx["logger"] = record.name
    ctx["location"] = f"{record.pathname}:{record.lineno}"
    if actor is not None and actor.source:
        ctx["source"] = actor.source
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not lose the record
        message = f"{record.msg!r} % {record.args!r}"
    stack = None
    if record.exc_info:
        stack = "".join(traceback.format_exception(*record.exc_info))[:MAX_STACK]
    elif record.stack_info:
        stack = record.stack_info[:MAX_STACK]
    module = extras.get("module_name") or record.name.split(".", 1)[0]
    instance_id = extras.get("instance_id")
    if instance_id is None and actor is not None:
        instance_id = actor.instance_id
    return {
        "log_uuid": None,  # assigned by the writer (time-ordered)
        "level": level_name(record.levelno),
        "service": str(extras.get("service") or service)[:50],
        "module": str(module)[:50],
        "action": str(extras.get("action") or record.funcName or "")[:100] or None,
        "message": message[:MAX_MESSAGE],
        "context": ctx,
        "trace_id": actor.request_id if actor is not None else None,
        "span_id": actor.span_id if actor is not None else None,
        "user_id": _peek_user_id(actor),
        "instance_id": instance_id,
        "ip_address": actor.ip if actor is not None else None,
        "user_agent": actor.user_agent if actor is not None else None,
        "request_url": actor.request_url if actor is not None else None,
        "request_method": actor.request_method if actor is not None else None,
        "response_code": extras.get("response_code"),
        "response_time": extras.get("response_time"),
        "error_stack": stack,
        "created_at": datetime.fromtimestamp(record.created, tz=UTC),
    }


class SystemLogHandler(logging.Handler):
    """Queue-backed, batching, never-blocking handler (see the module docstring)."""

    _instances = []

    def __init__(self, level=logging.NOTSET, service=None, queue_size=10_000, batch_size=500,
                 flush_interval=1.0, report_interval=10.0, sinks=None, enabled=True):
        super().__init__(level)
        self.service = service or os.environ.get("SYSTEM_LOG_SERVICE") or _guess_service()
        self.queue_size = int(queue_size)
        self.batch_size = int(batch_size)
        self.flush_interval = float(flush_interval)
        self.report_interval = float(report_interval)
        self.enabled = enabled if isinstance(enabled, bool) else str(enabled).lower() in (
            "1", "true", "yes", "on")
        self._sinks = sinks  # None: built from settings on first write
        self._queue = queue.Queue(maxsize=self.queue_size)
        self._lock = threading.Lock()
        self._thread = None
        self._pid = None
        self._stopping = threading.Event()
        self._dropped = 0           # total since start
        self._dropped_reported = 0  # part of it already written as a WARNING record
        self._written = 0
        self._failed = 0
        self._last_report = time.monotonic()
        self._uuid_seq = itertools.count()
        self._complained = {}
        SystemLogHandler._instances.append(self)

    # --- producer side (any thread) --------------------------------------------------------
    def emit(self, record):
        if not self.enabled or record.name.startswith(IGNORED_LOGGER_PREFIXES):
            return
        if self._thread is not None and threading.current_thread() is self._thread:
            return
        try:
            entry = build_entry(record, self.service)
        except Exception:  # noqa: BLE001
            self.handleError(record)
            return
        self._ensure_writer()
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def stats(self):
        """Counters: queued now, written, dropped (queue full), failed (sink errors)."""
        return {
            "queued": self._queue.qsize(),
            "capacity": self.queue_size,
            "written": self._written,
            "dropped": self._dropped,
            "failed": self._failed,
        }

    def flush(self, timeout=10.0):
        """Wait until everything queued so far has been handed to the sinks."""
        if self._thread is None or not self._thread.is_alive():
            self._drain_now()
            return
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self):
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            thread.join(timeout=5.0)
        self._drain_now()
        super().close()

    # --- writer side ------------------------------------------------------------------------
    def _ensure_writer(self):
        pid = os.getpid()
        if self._thread is not None and self._pid == pid and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._pid == pid and self._thread.is_alive():
                return
            if self._pid not in (None, pid):
                # Forked child: the parent's queue content and counters are not ours.
                self._queue = queue.Queue(maxsize=self.queue_size)
                self._dropped = self._dropped_reported = 0
            self._pid = pid
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name="system-log-writer", daemon=True
            )
            self._thread.start()

    def _run(self):
        while not self._stopping.is_set():
            batch = self._take_batch(block=True)
            if batch:
                self._write(batch)
            self._maybe_report()
        self._close_db()

    def _take_batch(self, block):
        batch = []
        try:
            if block:
                batch.append(self._queue.get(timeout=self.flush_interval))
            while len(batch) < self.batch_size:
                batch.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return batch

    def _drain_now(self):
        while True:
            batch = self._take_batch(block=False)
            if not batch:
                break
            self._write(batch)
        self._maybe_report(force=True)

    def _write(self, batch):
        try:
            for entry in batch:
                if entry["log_uuid"] is None:
                    entry["log_uuid"] = new_uuid()
            for sink in self._get_sinks():
                try:
                    sink.write(batch)
                except Exception as exc:  # noqa: BLE001 - a sink failure is counted, not raised
                    self._failed += len(batch)
                    self._complain(sink, exc)
                    close = getattr(sink, "reset", None)
                    if close:
                        close()
            self._written += len(batch)
        finally:
            for _ in batch:
                try:
                    self._queue.task_done()
                except ValueError:
                    break

    def _complain(self, sink, exc):
        """stderr, at most once a minute per sink (a missing table during the first migrate,
        a database restart: one line, not one per batch)."""
        name = type(sink).__name__
        now = time.monotonic()
        last = self._complained.get(name)
        if last is not None and now - last < 60:
            return
        self._complained[name] = now
        _stderr(f"system log sink {name} failed ({self._failed} records lost so far): {exc!r}"[:1000])

    def _maybe_report(self, force=False):
        pending = self._dropped - self._dropped_reported
        if pending <= 0:
            return
        now = time.monotonic()
        if not force and now - self._last_report < self.report_interval:
            return
        self._last_report = now
        self._dropped_reported += pending
        entry = {
            "log_uuid": new_uuid(), "level": "WARN", "service": self.service,
            "module": "monitoring", "action": "log_overflow",
            "message": (f"{pending} log records dropped: the system log queue "
                        f"({self.queue_size}) was full; {self._dropped} dropped since start."),
            "context": {"dropped": pending, "dropped_total": self._dropped,
                        "capacity": self.queue_size},
            "trace_id": None, "span_id": None, "user_id": None, "instance_id": None,
            "ip_address": None, "user_agent": None, "request_url": None,
            "request_method": None, "response_code": None, "response_time": None,
            "error_stack": None, "created_at": datetime.now(UTC),
        }
        for sink in self._get_sinks():
            try:
                sink.write([entry])
            except Exception as exc:  # noqa: BLE001
                _stderr(f"system log overflow report failed: {exc!r}")

    def _get_sinks(self):
        if self._sinks is None:
            from .sinks import sinks_from_settings

            self._sinks = sinks_from_settings()
        return self._sinks

    def _close_db(self):
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001
            pass


def _stderr(message):
    try:
        sys.stderr.write(message + "\n")
    except Exception:  # noqa: BLE001
        pass


def _guess_service():
    argv = " ".join(sys.argv[:3])
    if "celery" in argv:
        return "beat" if " beat" in argv else "worker"
    if "manage.py" in argv and "runserver" not in argv:
        return "command"
    return "web"


def handlers():
    """The SystemLogHandler instances of this process."""
    return list(SystemLogHandler._instances)


@atexit.register
def _flush_at_exit():
    for handler in handlers():
        try:
            handler.close()
        except Exception:  # noqa: BLE001
            pass
