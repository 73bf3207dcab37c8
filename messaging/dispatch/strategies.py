"""How a dispatcher sends one claim, chosen once per run:

- with any pacing (interval, jitter, per-minute, daily or per-conversation cap, i.e. the
  defaults): one `send_message` at a time, each after its reservation (SerialSending);
- without pacing, to an instance offering batches (protocol 1.1, `batch_send_max`):
  `send_messages` of up to BATCH_SEND_SIZE messages a request (BatchSending);
- without pacing, to an instance without batches: SEND_CONCURRENCY single sends in flight from a
  thread pool, outcomes recorded in receiver order (ConcurrentSending).

Each records outcomes at least every FLUSH_INTERVAL_S (`Dispatcher.checkpoint`) and stops at an
answer that concerns the account (risk control, offline) with exactly the messages handed over
before it sent.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from .. import conf
from .outcomes import Outcome, OutcomeKind as K
from .preparing import Prepared

#: `Dispatcher.pace` answers this when the receiver waits for its conversation (the next goes on).
DEFERRED = "deferred"

if TYPE_CHECKING:  # the dispatcher drives its strategy; only its type is needed here
    from .worker import Dispatcher


class FlushTimer:
    """When the next checkpoint is due (FLUSH_INTERVAL_S on the dispatcher's clock)."""

    def __init__(self, dispatcher: Dispatcher):
        self.clock = dispatcher.clock
        self.every = float(conf.get("FLUSH_INTERVAL_S"))
        self.last = self.clock.monotonic()

    def due(self) -> bool:
        return self.clock.monotonic() - self.last >= self.every

    def reset(self) -> None:
        self.last = self.clock.monotonic()


class Strategy:
    def __init__(self, dispatcher: Dispatcher):
        self.d = dispatcher

    def process(self, prepared: list[Prepared], outcomes: list[Outcome]) -> str | None:
        """Send `prepared` (and record `outcomes`, the claim's unrenderable rows); returns the
        reason the run stops, or None to claim again."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class SerialSending(Strategy):
    """One send at a time (with pacing, each after its reservation)."""

    def process(self, prepared, outcomes):
        d = self.d
        timer = FlushTimer(d)
        for index, item in enumerate(prepared):
            if d.paced:
                reason = d.pace(prepared[index:], outcomes)
                if reason == DEFERRED:
                    continue
                if reason:
                    return reason
            d.guard()
            outcome = d.sender.send(item)
            kind = d.record_answer(item, outcome, outcomes)
            if kind in (K.STOP, K.PAUSE):
                return d.end_claim(prepared[index + 1 :], outcomes, stop=outcome if kind == K.STOP else None,
                                   pause=outcome if kind == K.PAUSE else None)
            if timer.due():
                running = d.checkpoint(outcomes)
                timer.reset()
                if not running:
                    d.release(prepared[index + 1 :], outcomes)
                    d.flush(outcomes)
                    return "stopped"
        d.flush(outcomes)
        d.settle_inflight(final=False)
        return None


class ConcurrentSending(Strategy):
    """Unpaced sending: up to SEND_CONCURRENCY sends in flight (one keep-alive connection each),
    outcomes recorded in receiver order. A stop or pause answer submits nothing more: the sends
    already in flight (at most SEND_CONCURRENCY - 1) were answered by the instance and are
    recorded as answered; everything after them is released."""

    def __init__(self, dispatcher, concurrency: int):
        super().__init__(dispatcher)
        self.concurrency = concurrency
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"send-{dispatcher.task_id}")

    def process(self, prepared, outcomes):
        d = self.d
        timer = FlushTimer(d)
        window = deque()
        submitted = 0
        stop = pause = None
        stopped = False

        def fill():
            nonlocal submitted
            while len(window) < self.concurrency and submitted < len(prepared):
                d.guard()
                item = prepared[submitted]
                window.append((item, self.pool.submit(d.sender.send, item)))
                submitted += 1

        fill()
        while window:
            item, future = window.popleft()
            outcome = future.result()
            kind = d.record_answer(item, outcome, outcomes)
            if kind == K.STOP:
                stop = stop or outcome
            elif kind == K.PAUSE:
                pause = pause or outcome
            if stop is not None or pause is not None or stopped:
                continue  # drain what is in flight, submit nothing more
            if timer.due():
                running = d.checkpoint(outcomes)
                timer.reset()
                if not running:
                    stopped = True
                    continue
            fill()
        if stop is not None or pause is not None or stopped:
            return d.end_claim(prepared[submitted:], outcomes, stop, pause) or "stopped"
        d.flush(outcomes, in_background=True)
        d.settle_inflight(final=False)
        return None

    def close(self):
        self.pool.shutdown(wait=True)


class BatchSending(Strategy):
    """Unpaced sending in batches (one request each). The instance stops a batch itself at an
    item that concerns the account (risk control, offline, rate limited): the items after it
    come back not_attempted and are released, so a stop bound is exact, as with single sends.
    A batch refused as a whole sends it one by one, and the rest of the run as SerialSending."""

    def __init__(self, dispatcher, size: int):
        super().__init__(dispatcher)
        self.size = size

    def process(self, prepared, outcomes):
        d = self.d
        timer = FlushTimer(d)
        index = 0
        while index < len(prepared):
            if d.sender.batches_refused:
                d.strategy = SerialSending(d)
                return d.strategy.process(prepared[index:], outcomes)
            chunk = prepared[index : index + self.size]
            d.guard()
            index += len(chunk)
            stop = pause = limited = None
            for item, outcome in zip(chunk, d.sender.send_batch(chunk)):
                kind = d.record_answer(item, outcome, outcomes)
                if kind == K.STOP:
                    stop = stop or outcome
                elif kind == K.PAUSE:
                    pause = pause or outcome
                elif outcome.code == "rate_limited":
                    limited = limited or outcome
            if stop is not None or pause is not None or limited is not None:
                return self._held_back(prepared[index:], outcomes, stop, pause, limited)
            if timer.due() or index >= len(prepared):
                more = index < len(prepared)
                running = d.checkpoint(outcomes, check_running=more)
                timer.reset()
                if not running:
                    d.release(prepared[index:], outcomes)
                    d.flush(outcomes)
                    return "stopped"
        d.flush(outcomes)
        return None

    def _held_back(self, rest, outcomes, stop, pause, limited) -> str:
        """An answer concerning the account ended the batch: stop, pause, or (rate limited) hand
        the rest back and come back after the instance's retry time."""
        d = self.d
        reason = d.end_claim(rest, outcomes, stop, pause)
        if reason:
            return reason
        d.settle_inflight(final=False)
        return d.continue_later(min(max(1.0, limited.delay_s), 300))


def choose_strategy(dispatcher: Dispatcher) -> Strategy:
    """The run's way of sending: paced → serial; unpaced → batches when the instance offers them,
    else concurrent single sends (SEND_CONCURRENCY > 1), else serial."""
    if dispatcher.paced:
        return SerialSending(dispatcher)
    concurrency = max(1, int(conf.get("SEND_CONCURRENCY")))
    batch_size = dispatcher.sender.batch_send_max()
    if batch_size > 1:
        return BatchSending(dispatcher, batch_size)
    if concurrency > 1:
        return ConcurrentSending(dispatcher, concurrency)
    return SerialSending(dispatcher)
