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


def available(setting: str = "RECORD_IN_BACKGROUND") -> bool:
    """Whether flushes may be written in the background here (see the module's docstring)."""
    connection = connection_for("messaging")
    return (bool(conf.get(setting)) and connection.vendor != "sqlite"
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


class ClaimAhead:
    """The next claim, made on a thread of its own while the loop sends the current one.

    A claim (locking read, rendering, message INSERT, link UPDATE) was about half of a
    one-worker broadcast's time with batch sends, most of the rest waiting for the instance's
    answers; the two now overlap. The claim is the same transaction as a claim in the loop, on
    the thread's connection, and its receivers join the run's claim lease when it commits, so a
    crash at any point leaves them as a crash after a claim did before (reclaimed, re-sent with
    their uuid). The loop starts one claim ahead at a time, only after taking the previous
    one's result, so claims stay one at a time and in id order; a run that stops hands back
    the claim made ahead (`Dispatcher.hand_back_ahead`)."""

    def __init__(self, name: str):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._next: Future | None = None

    @property
    def pending(self) -> bool:
        return self._next is not None

    def start(self, claim: Callable[[], object]) -> None:
        if self._next is not None:  # pragma: no cover - the loop takes before it starts again
            raise RuntimeError("a claim is already being made ahead")
        self._next = self._pool.submit(claim)

    def take(self):
        """The claim made ahead (waiting for it); raises its failure."""
        future, self._next = self._next, None
        return future.result() if future is not None else None

    def close(self) -> None:
        """Wait for a claim still being made (its receivers join the lease, so a failing run
        hands them back with the others), then close the thread's connections and the thread."""
        try:
            if self._next is not None:
                self._next.exception()
        finally:
            self._next = None
            self._pool.submit(connections.close_all).result()
            self._pool.shutdown(wait=True)
