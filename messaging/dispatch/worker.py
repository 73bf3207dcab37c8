"""The dispatcher: one Celery run that claims, paces, sends and records for one task.

It loops: claim and prepare a batch (claims, preparing), send it with the strategy chosen for
the run (strategies: one at a time with pacing, concurrent single sends, or batch sends),
record outcomes at least every FLUSH_INTERVAL_S (recording), confirm acknowledgements (acks);
until the task has nothing claimable, its time slice ends, or the task or account stops.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import AccountStatus, WeworkAccount
from instances.models import WeworkInstance
from wework.db.retry import run_idempotent

from .. import conf, pacing
from ..clock import SYSTEM, Clock
from ..models import MessageReceiver, MessageTask, ReceiverSendStatus as RS, TaskStatus
from ..services import stops, transitions
from . import background, claims, leases
from .acks import Acknowledgements
from .heartbeat import ClaimLease, ClaimLeaseLost
from .outcomes import Outcome, OutcomeKind as K
from .preparing import Prepared, Preparer
from .recording import apply_outcomes
from .strategies import DEFERRED, choose_strategy
from .transport import Sender, instance_client, release

log = logging.getLogger("messaging.dispatch")

#: Empty claims while due receivers exist (rows locked for a moment by another claim) are
#: retried this many times, 0.1 s apart, before a dispatcher goes idle.
SKIPPED_CLAIM_RETRIES = 50
SKIPPED_CLAIM_WAIT_S = 0.1
#: A message waiting behind an older task's message to the same conversation looks again after this.
FIFO_RETRY_S = 2.0
#: How often a final settle looks for acknowledgements.
ACK_LOOK_INTERVAL_S = 0.05
#: Older running tasks of the account looked at for first-in-first-out per conversation.
OLDER_TASKS_LIMIT = 200
#: With pacing, a claim holds about this many seconds of sends (fewer receivers per claim).
PACED_CLAIM_S = 100.0
#: A running dispatcher hands back its task's expired claims (a dead worker's) at most this often.
TAKEOVER_EVERY_S = 2.0
#: The loop renews the dispatcher's lease in Redis (it lives LEASE_TTL_S) at most this often: two
#: renewals a claim were a tenth of a one-worker broadcast's time. The claim lease's thread
#: renews it too; a Redis outage stops the run at the loop's next renewal.
LEASE_RENEW_EVERY_S = 1.0
#: A "queued" answer is written (message SENDING) only when its acknowledgement has not come
#: within this time; usually it comes first and the send is written once, with its final state
#: (two UPDATEs of every message and receiver row were a fifth of a broadcast's statements). The
#: receiver stays SENDING and linked to its message meanwhile, and its claim is renewed by the
#: lease, so a crash in between re-sends it with the same uuid, as before.
QUEUED_HOLD_S = 1.0
#: Outcomes a background flush may hold (background.py): they settle receivers or keep them
#: SENDING. A flush that hands receivers back (retry, release, defer) is written before the next
#: claim, which must see them claimable again.
SETTLING = frozenset({K.SUCCESS, K.FAILED, K.QUEUED})
#: A flush reads the instance's event feed for acknowledgements at most this often: with claims
#: sent in tens of milliseconds, a read each claim was a tenth of the loop's time, and the
#: answers it did not confirm yet are held (QUEUED_HOLD_S) and written with the next read's.
FEED_EVERY_S = 0.1


@dataclass
class Dispatcher:
    task_id: int
    token: str | None = None
    slice_s: float | None = None
    clock: Clock = SYSTEM
    client_factory: Callable = instance_client
    stats: dict = field(default_factory=lambda: {"sent": 0, "claims": 0, "polled": 0})
    # set by run() once the task's account and instance are known to exist
    account: WeworkAccount = field(init=False, repr=False)
    instance: WeworkInstance = field(init=False, repr=False)

    # --- setup -----------------------------------------------------------------------------

    def load(self) -> MessageTask | None:
        task = MessageTask.objects.select_related("account__instance", "template").filter(pk=self.task_id).first()
        if task is None:
            return None
        self.task = task
        self.limits = pacing.Limits.default(task.send_interval)
        self.paced = self.limits.any
        self.preparer = Preparer(task)
        self.batch = self._claim_size()
        self._older_tasks: list[int] | None = None
        # the receivers this run claimed and holds, renewed while it runs (handed back if it fails)
        self.lease = ClaimLease(self.task_id, self.clock, on_renew=self._renew_dispatcher_lease)
        self._takeover_at: float | None = None
        self._lease_renewed_at: float | None = None  # by the loop's heartbeat
        # "queued" answers not written yet: {receiver_id: (Outcome, held since)}, see QUEUED_HOLD_S
        self._held_queued: dict[int, tuple[Outcome, float]] = {}
        self.recorder: background.Recorder | None = None  # see background.py; set by connect()
        self.ahead: background.ClaimAhead | None = None  # likewise
        return task

    def _claim_size(self) -> int:
        """CLAIM_BATCH, fewer with pacing: about PACED_CLAIM_S of sends per claim."""
        per = max(0.001, self.limits.min_interval_s + self.limits.jitter_s / 2) if self.paced else 0
        batch = int(conf.get("CLAIM_BATCH"))
        if per:
            batch = max(1, min(batch, int(PACED_CLAIM_S / per)))
        return batch

    def connect(self) -> None:
        """Open the instance client, the acknowledgement feed and the run's send strategy."""
        self.sender = Sender(self.client_factory(self.instance), self.task, self.account, self.stats)
        self.acks = Acknowledgements(self.sender, self.clock, self.stats)
        self.strategy = choose_strategy(self)
        self.acks.open()
        if background.available():
            self.recorder = background.Recorder(f"record-{self.task_id}")
        if not self.paced and background.available("CLAIM_AHEAD"):
            # with pacing a claim holds minutes of sends: nothing to gain, only claims held longer
            self.ahead = background.ClaimAhead(f"claim-{self.task_id}")

    # --- main loop ---------------------------------------------------------------------------

    def run(self) -> str:
        """Work until the task has nothing claimable, the slice ends, or the task stops.
        Returns a short reason string."""
        # Every way out drops this run's lease, the early ones too: a resume (beat's kick, a
        # new start) would otherwise wait up to LEASE_TTL_S for it.
        try:
            return self._run()
        finally:
            self._drop_lease()

    def _run(self) -> str:
        task = self.load()
        if task is None:
            return "missing"
        if task.status != TaskStatus.RUNNING:
            return "not-running"
        account = task.account
        instance = account.instance if account is not None else None
        if account is None or instance is None:
            transitions.fail_task(self.task_id, _("The task's account or instance no longer exists."))
            return "failed"
        self.account, self.instance = account, instance
        if self.account_in_trouble():
            return "stopped-account"
        slice_s = float(self.slice_s if self.slice_s is not None else conf.get("DISPATCH_SLICE_S"))
        self.deadline = self.clock.monotonic() + slice_s
        self.connect()
        self.lease.start()
        try:
            reason = self._loop()
            self.apply([], write_held=True)  # answers still unconfirmed: recorded as handed over
            self.recorded()
            return reason
        except ClaimLeaseLost as exc:
            # Its claims may be another dispatcher's now: send, record and hand back nothing more
            # (what it handed over is re-sent with the same uuid by the next holder).
            log.warning("%s; this run stops", exc)
            return "lease-lost"
        except BaseException:
            # Redis or the database went away, or a bug: hand this run's claims back now
            # instead of after CLAIM_LEASE_S. Re-sending keeps each message's uuid, so a
            # message already handed over is not sent twice (the instance returns its result).
            self.lease.stop()
            self._release_claims()
            raise
        finally:
            if self.ahead is not None:
                self.ahead.close()
            if self.recorder is not None:
                self.recorder.close()
            self.lease.stop()
            self.strategy.close()
            self.sender.close()

    def _drop_lease(self) -> None:
        if not self.token:
            return
        try:
            leases.lease_drop(self.task_id, self.token)
        except Exception:  # noqa: BLE001 - Redis away: the lease expires after LEASE_TTL_S
            log.warning("task %s: lease %s not dropped (Redis unavailable)", self.task_id, self.token)

    def _release_claims(self) -> None:
        if getattr(self, "ahead", None) is not None:
            self.ahead.close()  # a claim made ahead joins the lease: handed back with the others
            self.ahead = None
        if getattr(self, "recorder", None) is not None:
            self.recorder.close()  # what it writes leaves the claims; a failure was raised already
            self.recorder = None
        lease = getattr(self, "lease", None)
        ids = sorted(lease.held) if lease is not None else []
        if not ids or not lease.valid():
            return
        try:
            n = MessageReceiver.objects.filter(pk__in=ids, send_status=RS.SENDING).update(
                send_status=RS.PENDING, updated_at=self.clock.now())
            log.warning("task %s: dispatcher failed; %d claimed receivers handed back", self.task_id, n)
        except Exception:  # noqa: BLE001 - the database is away too: they expire after CLAIM_LEASE_S
            log.warning("task %s: claims not handed back (database unavailable)", self.task_id)

    def _loop(self) -> str:
        cursor = 0
        skipped_claims = 0
        while True:
            self.heartbeat()
            if self.clock.monotonic() > self.deadline:
                self.hand_back_ahead()
                self.settle_inflight(final=False)
                return self.continue_later(0)
            self.take_over_expired()
            if self.ahead is not None and self.ahead.pending:
                prepared, failed = self.ahead.take()
            else:
                prepared, failed = self.claim(cursor)
            self.stats["claims"] += 1
            if not prepared and not failed:
                if cursor:
                    cursor = 0
                    continue
                if skipped_claims < SKIPPED_CLAIM_RETRIES and self._due_receivers_left():
                    # SKIP LOCKED skipped due rows that another transaction held for a moment
                    # (a concurrent claim scanning the same index locks rows it then rejects):
                    # look again rather than go idle until beat's next kick
                    skipped_claims += 1
                    self.wait(SKIPPED_CLAIM_WAIT_S)
                    continue
                self.settle_inflight(final=True)
                return self._finish_or_wait()
            skipped_claims = 0
            cursor = max([p.row["id"] for p in prepared] + [o.receiver_id for o in failed])
            if self.ahead is not None:
                self.ahead.start(lambda after=cursor: self.claim(after))
            reason = self.strategy.process(prepared, failed)
            if not reason and not self.still_running():
                # paused, cancelled or its account stopped while this claim went out (a strategy
                # looks only between the sends of a claim, so a claim sent in one go never did)
                reason = "stopped"
            if reason:
                self.hand_back_ahead()
                self.settle_inflight(final=True)
                return reason

    def hand_back_ahead(self) -> None:
        """The run stops with a claim made ahead: its receivers go back to PENDING unsent (with
        their message rows, re-used by the next claim), its unrenderable rows are recorded."""
        if self.ahead is None or not self.ahead.pending:
            return
        prepared, failed = self.ahead.take()
        outcomes = list(failed)
        self.release(prepared, outcomes)
        self.apply(outcomes)

    def heartbeat(self) -> None:
        """The loop is alive: renew the claims when due (ClaimLeaseLost if they may have been
        taken over meanwhile) and, at most every LEASE_RENEW_EVERY_S, the dispatcher's lease in
        Redis; raise a failed background flush."""
        self.lease.ensure()
        now = self.clock.monotonic()
        if self._lease_renewed_at is None or now - self._lease_renewed_at >= LEASE_RENEW_EVERY_S:
            self._renew_dispatcher_lease()
            self._lease_renewed_at = now
        if self.recorder is not None:
            self.recorder.check()

    def _renew_dispatcher_lease(self) -> None:
        if self.token:
            leases.lease_add(self.task_id, self.token)

    def guard(self) -> None:
        """Before a send or a record: the claims are still this run's (ClaimLeaseLost if not)."""
        self.lease.ensure()

    def wait(self, seconds: float) -> None:
        """Sleep on the run's clock, renewing the claims in between."""
        step = self.lease.interval_s
        while seconds > 0:
            part = min(seconds, step)
            self.clock.sleep(part)
            seconds -= part
            self.lease.ensure()

    def take_over_expired(self) -> int:
        """Hand back the task's expired claims (a dead worker's), at most every TAKEOVER_EVERY_S,
        so that this run claims them again (with their uuid) without waiting for beat's kick."""
        now = self.clock.monotonic()
        if self._takeover_at is not None and now - self._takeover_at < TAKEOVER_EVERY_S:
            return 0
        self._takeover_at = now
        if not claims.expired(self.clock.now()).filter(task_id=self.task_id).exists():
            return 0
        n = claims.reclaim_stale(task_id=self.task_id, now=self.clock.now())
        if n:
            log.warning("task %s: %d expired claims taken over", self.task_id, n)
        return n

    def continue_later(self, countdown: float) -> str:
        """A new run of this task's dispatcher in `countdown` seconds (this one ends)."""
        self.recorded()
        return leases.continue_later(self.task, countdown)

    def _finish_or_wait(self) -> str:
        self.recorded()
        if transitions.finish_if_done(self.task_id):
            return "completed"
        # Receivers waiting for a retry time, or in flight elsewhere: come back when due.
        nxt = (
            MessageReceiver.objects.filter(task_id=self.task_id, send_status=RS.PENDING, send_time__isnull=False)
            .order_by("send_time").values_list("send_time", flat=True).first()
        )
        if nxt is not None:
            wait = max(1, min(60, (nxt - self.clock.now()).total_seconds()))
            return self.continue_later(wait)
        return "idle"

    def _due_receivers_left(self) -> bool:
        """Whether due PENDING receivers exist (a plain read: it waits on no lock)."""
        return claims.claimable(self.task_id, self.clock.now()).exists()

    # --- one claim ----------------------------------------------------------------------------

    def claim(self, after_id: int) -> tuple[list[Prepared], list[Outcome]]:
        """Claim up to `self.batch` receivers with id > after_id and create the message rows of
        those that have none, in one transaction: when it commits, every claimed receiver is
        SENDING and linked to the message (and uuid) it is sent with. Returns (Prepared items,
        Outcomes of rows that cannot be rendered); ([], []) when nothing is due."""
        claimed_at, now = self.clock.monotonic(), self.clock.now()
        self._older_tasks = None  # looked up again for each claim (see _older_message_waits)

        def claim_once():
            rows = claims.lock_claimable(self.task_id, self.batch, after_id, now)
            if not rows:
                return rows, [], []
            prepared, failed, links = self.preparer.prepare(rows, now)
            claims.mark_claimed([r["id"] for r in rows], links, now)
            return rows, prepared, failed

        # A claim that did not commit claimed nothing: a deadlock or lost connection is retried
        # at once (after a COMMIT of unknown outcome, rows it did claim come back by the reclaim).
        rows, prepared, failed = run_idempotent(claim_once, name="Dispatcher.claim")
        self.lease.add((r["id"] for r in rows), claimed_at)
        return prepared, failed

    # --- answers ------------------------------------------------------------------------------

    def record_answer(self, item: Prepared, outcome: Outcome, outcomes: list[Outcome]) -> K:
        """Add the outcome of a send of `item` to `outcomes`; returns its kind. A stop answer
        fails the receiver (its message was refused); a pause answer releases it (never handed
        over); a queued one is watched for its acknowledgement."""
        if outcome.kind == K.STOP:
            outcomes.append(Outcome(item.row["id"], item.message_id, K.FAILED, outcome.code, outcome.error))
        elif outcome.kind == K.PAUSE:
            outcomes.append(release(item))
        else:
            outcomes.append(outcome)
            if outcome.kind == K.QUEUED:
                self.acks.watch(item)
        return outcome.kind

    def end_claim(self, rest: list[Prepared], outcomes: list[Outcome], stop: Outcome | None = None,
                  pause: Outcome | None = None) -> str | None:
        """Release `rest`, record everything, then stop the account or pause the task when an
        answer said so; returns that reason, or None."""
        self.release(rest, outcomes)
        self.flush(outcomes)
        if stop is not None:
            stops.stop_account(self.account.pk, stop.code or "risk_control", stop.error)
            return "stopped-account"
        if pause is not None:
            transitions.pause_automatically(self.task_id, pause.error or pause.code or "")
            return "paused"
        return None

    def checkpoint(self, outcomes: list[Outcome], check_running: bool = True) -> bool:
        """Record `outcomes` (then empty; in the background where available), renew the lease,
        confirm acknowledgements; returns whether the task may go on (checked when
        `check_running`)."""
        self.flush(outcomes, in_background=True)
        outcomes.clear()
        self.heartbeat()
        self.settle_inflight(final=False)
        return self.still_running() if check_running else True

    # --- pacing ---------------------------------------------------------------------------

    def pace(self, remaining: list[Prepared], outcomes: list[Outcome]) -> str | None:
        """Wait for the account's next slot to send remaining[0]; DEFERRED when its
        conversation is busy (remaining[0] waits in PENDING, the caller goes on with the next),
        or the reason this run stops."""
        item = remaining[0]
        if self._older_message_waits(item):
            # first in, first out per conversation: an older running task's message to the same
            # contact or group goes first (two sends composed seconds apart arrive in order)
            outcomes.append(Outcome(item.row["id"], item.message_id, K.DEFER, delay_s=FIFO_RETRY_S))
            return DEFERRED
        res = pacing.reserve(self.account.pk, self.limits, conversation_id=item.row["receiver_wxid"],
                             clock=self.clock)
        if res.code == pacing.CONVERSATION_BUSY:
            outcomes.append(Outcome(item.row["id"], item.message_id, K.DEFER, delay_s=res.wait_s))
            return DEFERRED
        if res.code == pacing.RESERVED:
            if res.wait_s > 0:
                if res.wait_s > 1 and (outcomes or self._held_queued):
                    self.flush(outcomes, write_held=True)
                    outcomes.clear()
                self.wait(res.wait_s)
                # The operator may have paused or cancelled the task while this run waited for
                # its slot (up to the task's send interval): nothing more goes out after that.
                if not self.still_running():
                    self.release(remaining, outcomes)
                    self.flush(outcomes)
                    outcomes.clear()
                    return "stopped"
            return None
        self.release(remaining, outcomes)
        self.flush(outcomes)
        outcomes.clear()
        if res.code == pacing.BLOCKED:
            transitions.pause_automatically(
                self.task_id, _("Sending is stopped for the account after a risk-control signal."))
            return "blocked"
        if res.code == pacing.DAILY_CAP:
            MessageTask.objects.filter(pk=self.task_id).update(
                error_message=_("The account reached its daily cap; sending continues tomorrow.")
            )
            return self.continue_later(min(3600, self._seconds_to_midnight()))
        return self.continue_later(min(res.wait_s, 300))

    def _older_message_waits(self, item: Prepared) -> bool:
        """Whether a running task of the same account created before this one still has a
        message to the same conversation to send (pending or in flight)."""
        older = self._older_tasks  # a local: a claim (made ahead, on its thread) resets the field
        if older is None:
            older = self._older_tasks = list(
                MessageTask.objects.filter(account_id=self.account.pk, status=TaskStatus.RUNNING,
                                           pk__lt=self.task_id).values_list("pk", flat=True)[:OLDER_TASKS_LIMIT]
            )
        if not older:
            return False
        return MessageReceiver.objects.filter(
            task_id__in=older, receiver_wxid=item.row["receiver_wxid"],
            send_status__in=[RS.PENDING, RS.SENDING],
        ).exists()

    def _seconds_to_midnight(self) -> float:
        now = timezone.localtime(self.clock.now())
        tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
        return max(60, (tomorrow - now).total_seconds())

    # --- acknowledgements and records ------------------------------------------------------

    def settle_inflight(self, final: bool) -> None:
        """Confirm handed-over messages not confirmed by a webhook yet (acks.look). Final (the
        task has nothing left to claim): wait for all of them, up to ACK_WAIT_S, then leave the
        rest to the reclaim."""
        if not self.acks.inflight:
            return
        if not final and not self.acks.look_due(float(conf.get("FLUSH_INTERVAL_S"))):
            return
        limit = self.clock.monotonic() + float(conf.get("ACK_WAIT_S"))
        while self.acks.inflight:
            outcomes, stop = self.acks.outcomes(self.acks.look())
            self.apply(outcomes)
            if stop is not None:
                self._stop_after_ack(stop)
                return
            if not final or self.clock.monotonic() > limit:
                return
            if self.acks.inflight:
                self.wait(ACK_LOOK_INTERVAL_S)

    def _stop_after_ack(self, stop: Outcome) -> None:
        self.recorded()
        stops.stop_account(self.account.pk, stop.code or "risk_control", stop.error)
        self.acks.forget_all()

    def apply(self, outcomes: list[Outcome], write_held: bool = False, in_background: bool = False) -> None:
        """Record `outcomes`; "queued" answers wait up to QUEUED_HOLD_S for their final state
        (all of them are written when `write_held`). `in_background`: handed to the recorder
        thread where there is one (background.py); otherwise written now, after what it holds."""
        outcomes = self._hold_queued(outcomes, write_held)
        if not outcomes:
            return
        self.guard()
        now = self.clock.now()
        if in_background and self.recorder is not None and all(o.kind in SETTLING for o in outcomes):
            self.recorder.submit(lambda: self._record(outcomes, now))
            return
        self.recorded()
        self._record(outcomes, now)

    def _record(self, outcomes: list[Outcome], now) -> None:
        apply_outcomes(self.task_id, outcomes, self.account.pk, self.instance.pk, now=now)
        # settled receivers leave the lease only once written (until then it renews their claim)
        self.lease.discard(o.receiver_id for o in outcomes if o.kind != K.QUEUED)

    def recorded(self) -> None:
        """Wait until the outcomes handed to the recorder are written (raises a failed write)."""
        if self.recorder is not None:
            self.recorder.wait()

    def _hold_queued(self, outcomes: list[Outcome], write_all: bool) -> list[Outcome]:
        """`outcomes` without the "queued" answers to hold, with the held ones now due: those
        held for QUEUED_HOLD_S, or all when `write_all`. Any other outcome of a receiver (its
        acknowledgement, a retry) supersedes its held answer."""
        held = self._held_queued
        now = self.clock.monotonic()
        out = []
        for o in outcomes:
            if o.kind == K.QUEUED:
                held.setdefault(o.receiver_id, (o, now))
            else:
                held.pop(o.receiver_id, None)
                out.append(o)
        if held:
            due = [rid for rid, (_o, since) in held.items() if write_all or now - since >= QUEUED_HOLD_S]
            out.extend(held.pop(rid)[0] for rid in due)
        return out

    def flush(self, outcomes: list[Outcome], write_held: bool = False, in_background: bool = False) -> None:
        """Record outcomes. Sends answered "queued" whose acknowledgement is already in the
        instance's event feed are recorded with their final state in the same write; the
        others are held (`apply`)."""
        if not outcomes and not write_held:
            return
        stop = None
        if self._held_queued or any(o.kind == K.QUEUED for o in outcomes):
            results = self.acks.take_from_feed(0.0 if write_held else FEED_EVERY_S)
            if results:
                acked, stop = self.acks.outcomes(results)
                outcomes = list(outcomes) + acked
        self.apply(outcomes, write_held=write_held, in_background=in_background)
        if stop is not None:
            self._stop_after_ack(stop)

    @staticmethod
    def release(items: list[Prepared], outcomes: list[Outcome]) -> None:
        outcomes.extend(release(item) for item in items)

    # --- the task and its account -------------------------------------------------------------

    def still_running(self) -> bool:
        if self.account_in_trouble():
            return False
        return MessageTask.objects.filter(pk=self.task_id, status=TaskStatus.RUNNING).exists()

    def account_in_trouble(self) -> bool:
        """An account flagged abnormal or banned (by an account.* event) stops at once, as after a
        risk-control answer: its tasks pause, an alert is raised (once)."""
        status = WeworkAccount.all_objects.filter(pk=self.account.pk).values_list("status", flat=True).first()
        if status in (AccountStatus.ABNORMAL, AccountStatus.BANNED):
            reason = "account_banned" if status == AccountStatus.BANNED else "account_abnormal"
            stops.stop_account(self.account.pk, reason, _("The account was flagged by the instance."))
            return True
        return False


def run(task_id: int, token: str | None = None, **kwargs) -> str:
    """One dispatcher run for the task (the Celery task `messaging.dispatch_task`)."""
    return Dispatcher(task_id, token=token, **kwargs).run()
