"""Claim leases: a running dispatcher renews its claims in the database, so that a live worker's
claims never expire and a dead worker's are taken over after CLAIM_LEASE_S.

A claim is a receiver in SENDING; its `updated_at` is the claim's last renewal (the design has
no claim-token column). The dispatcher that claimed it renews every receiver it still holds
every CLAIM_HEARTBEAT_S (at most a third of the lease): from its loop at every safe point
(`tick()`, also between the steps of a long wait), and from a thread (`start()`, system clock
only) while the loop is blocked in a send or a poll. A receiver whose claim was not renewed for
CLAIM_LEASE_S is handed back by `claims.reclaim_stale()` (beat's kick every 5 s, and any live
dispatcher of the task before it claims) and re-sent with the same message uuid: the instance's
`client_msg_id` answers a message it already holds with its first result and sends nothing.

Fencing: a dispatcher stops acting on its claims (`ensure()` raises ClaimLeaseLost: nothing more
is sent, recorded or handed back) once its last successful renewal is older than the lease less a
margin, i.e. before anyone else may take them over; its database being away is the usual cause.
A dispatcher whose loop has not moved for CLAIM_TIMEOUT_S (a hung worker) stops renewing.
The lease lives in the database, not in Redis: losing Redis (FLUSHALL, a failover) loses no claim.
Timestamps are the workers' clocks: hosts must keep time (NTP); a skew eats into the margin.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from wework.db.layout import alias_for_app, connection_for
from wework.db.retry import run_idempotent

from .. import conf
from ..clock import Clock
from ..models import MessageReceiver, ReceiverSendStatus as RS

# Raw SQL on this app's own tables: its database (per-module databases, wework.db.layout).
connection = connection_for("messaging")

log = logging.getLogger("messaging.dispatch")

#: The shortest lease accepted (updated_at keeps whole seconds).
MIN_LEASE_S = 3.0
#: Ids per renewal statement.
RENEW_CHUNK = 1000


class ClaimLeaseLost(Exception):
    """This dispatcher's claims may have been taken over: it must not send or record for them."""


def lease_s() -> float:
    """CLAIM_LEASE_S, at least MIN_LEASE_S."""
    return max(MIN_LEASE_S, float(conf.get("CLAIM_LEASE_S")))


def interval_s(lease: float | None = None) -> float:
    """How often claims are renewed: CLAIM_HEARTBEAT_S, at most a third of the lease."""
    lease = lease_s() if lease is None else lease
    return max(0.5, min(float(conf.get("CLAIM_HEARTBEAT_S")), lease / 3))


class ClaimLease:
    """The receivers one dispatcher run holds, renewed while it runs."""

    def __init__(self, task_id: int, clock: Clock, on_renew: Callable[[], None] | None = None):
        self.task_id = task_id
        self.clock = clock
        self.on_renew = on_renew  # e.g. the dispatcher's lease in Redis (best effort)
        self.lease_s = lease_s()
        self.interval_s = interval_s(self.lease_s)
        # Renewals older than this stop the dispatcher: a margin for clock skew and whole seconds.
        self.valid_s = self.lease_s - max(1.0, min(self.interval_s, self.lease_s / 5))
        self.stall_s = float(conf.get("CLAIM_TIMEOUT_S"))
        self.held: set[int] = set()
        self.renewed_at = clock.monotonic()
        self.progress_at = self.renewed_at
        self.renewals = 0
        self.failures = 0
        self._lock = threading.Lock()
        self._renewing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what is held ----------------------------------------------------------------------

    def add(self, receiver_ids: Iterable[int], claimed_at: float) -> None:
        """Receivers just claimed (their claim stamped at monotonic `claimed_at`)."""
        ids = list(receiver_ids)
        if not ids:
            return
        with self._lock:
            if not self.held:  # the claim's own stamp is the renewal of what is held now
                self.renewed_at = max(self.renewed_at, claimed_at)
            self.held.update(ids)

    def discard(self, receiver_ids: Iterable[int]) -> None:
        """Receivers settled or handed back: no longer renewed."""
        with self._lock:
            self.held.difference_update(receiver_ids)

    # --- renewing ----------------------------------------------------------------------------

    def due(self) -> bool:
        return self.clock.monotonic() - self.renewed_at >= self.interval_s

    def valid(self) -> bool:
        """Whether nobody can have taken these claims over yet."""
        return not self.held or self.clock.monotonic() - self.renewed_at < self.valid_s

    def tick(self) -> None:
        """The loop is alive: renew when due (a failure is logged; `ensure` decides)."""
        self.progress_at = self.clock.monotonic()
        if self.due():
            self.renew_quietly()

    def ensure(self) -> None:
        """`tick()`, then raise ClaimLeaseLost if the claims may have been taken over."""
        self.tick()
        if not self.valid():
            raise ClaimLeaseLost(
                f"task {self.task_id}: claims not renewed for {self.clock.monotonic() - self.renewed_at:.1f} s")

    def renew(self) -> int:
        """Stamp every held receiver still SENDING with the clock's time; returns how many. Rows
        no longer SENDING (settled, handed back) leave the held set. One renewal at a time (the
        loop's or the thread's); a second caller meanwhile returns -1 at once."""
        if not self._renewing.acquire(blocking=False):
            return -1
        try:
            started = self.clock.monotonic()
            now = self.clock.now()
            with self._lock:
                ids = sorted(self.held)
            live: set[int] = set()
            for start in range(0, len(ids), RENEW_CHUNK):
                part = ids[start : start + RENEW_CHUNK]
                # Receivers only: a transaction on messaging's database alone (without `using`
                # it would span every module's database in a per-module layout).
                live.update(run_idempotent(lambda part=part: self._renew_part(part, now),
                                           using=alias_for_app("messaging"), name="ClaimLease.renew"))
            with self._lock:
                self.held.difference_update(set(ids) - live)
                self.renewed_at = max(self.renewed_at, started)
                self.renewals += 1
        finally:
            self._renewing.release()
        if self.on_renew is not None:
            try:
                self.on_renew()
            except Exception as exc:  # noqa: BLE001 - Redis away: the database's lease is what counts
                log.info("task %s: dispatcher lease not renewed (%s)", self.task_id, exc)
        return len(live)

    @staticmethod
    def _renew_part(part: list[int], now) -> list[int]:
        qs = MessageReceiver.objects.filter(pk__in=part, send_status=RS.SENDING)
        live = list(qs.values_list("pk", flat=True))
        if live:
            MessageReceiver.objects.filter(pk__in=live, send_status=RS.SENDING).update(updated_at=now)
        return live

    def renew_quietly(self) -> bool:
        try:
            self.renew()
            return True
        except Exception as exc:  # noqa: BLE001 - the database away: retried at the next beat, fenced by valid()
            self.failures += 1
            log.warning("task %s: claims not renewed (%s)", self.task_id, exc)
            return False

    # --- the renewing thread ---------------------------------------------------------------

    def start(self) -> None:
        """Renew from a thread while the loop is blocked (a send, a poll); system clock only
        (with a test's clock the loop renews at its safe points)."""
        if self.clock.is_fake or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"claim-lease-{self.task_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)

    def _run(self) -> None:
        stalled = False
        try:
            while not self._stop.wait(min(1.0, self.interval_s / 2)):
                if self.clock.monotonic() - self.progress_at > self.stall_s:
                    if not stalled:
                        log.warning("task %s: dispatcher stalled for %.0f s; its claims are no longer renewed",
                                    self.task_id, self.stall_s)
                    stalled = True
                    continue
                stalled = False
                if self.held and self.due():
                    self.renew_quietly()
        finally:
            connection.close()
