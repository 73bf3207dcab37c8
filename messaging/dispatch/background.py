"""Recording a claim's outcomes on a thread of its own while the loop claims and sends the next.

A flush (one transaction of conditional UPDATEs, recording.apply_outcomes) was about a third of
a broadcast's time with batch sends, and the loop waited for it before claiming again. The
dispatcher now hands the flush that ends a claim to a recorder thread (its own database
connections) and goes on, when that flush only settles receivers or keeps them SENDING (a flush
that hands receivers back, a retry, release or deferral, is written before the next claim, which
must find them claimable): the next claim's receivers are other rows, so the two transactions
meet no lock of each other's (the documented lock order holds within each). Flushes are written
one at a time in the order they were handed over, so the task's counters grow as before.

What does not change: a receiver is SENDING and linked to its message (and uuid) from its claim
on, and its claim is renewed by the lease until its outcome is written (the lease drops it only
after the commit). A crash with flushes not written yet leaves those receivers SENDING, and the
reclaim re-sends them with the same uuid: the instance answers with its first result and sends
nothing (as for a crash between a send and its flush before). The loop waits for what is pending
(`wait`) before anything that reads or ends the task's state: every synchronous record, the
task's completion, a stop or pause, the end of the run; a failed write is raised there, and the
run fails as a synchronous write would have made it fail.

Not used inside a transaction (a second connection cannot see its rows: tests under `db`) nor on
SQLite (one writer at a time: no gain, only lock waits); `RECORD_IN_BACKGROUND` turns it off.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from django.db import connections

from wework.db.layout import connection_for

from .. import conf

log = logging.getLogger("messaging.dispatch")


def available() -> bool:
    """Whether flushes may be written in the background here (see the module's docstring)."""
    connection = connection_for("messaging")
    return (bool(conf.get("RECORD_IN_BACKGROUND")) and connection.vendor != "sqlite"
            and not connection.in_atomic_block)


class Recorder:
    """One thread writing the flushes handed to it, in order."""

    def __init__(self, name: str):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._pending: deque[Future] = deque()

    def submit(self, write: Callable[[], object]) -> None:
        """Hand a flush over (after `check`)."""
        self.check()
        self._pending.append(self._pool.submit(write))

    def check(self) -> None:
        """Raise the failure of a flush written meanwhile: the loop checks before each claim,
        so a run stops one claim after a failed write, not at its end."""
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()

    def wait(self) -> None:
        """Until every flush handed over is written; raises the first one that failed."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """Wait, then close the thread's database connections and the thread. A failed write
        is only logged here: the run's end (`wait`) raised it already, or the run is failing
        for its own error, which is the one to raise."""
        try:
            self.wait()
        except Exception:
            log.warning("a background flush failed: its receivers are handed back or reclaimed", exc_info=True)
        finally:
            self._pending.clear()
            self._pool.submit(connections.close_all).result()
            self._pool.shutdown(wait=True)
