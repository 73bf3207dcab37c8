"""The clock dispatch and pacing read: the system's, or a test's.

Dispatch waits (pacing slots, acknowledgements, a busy claim) and compares times (flush
intervals, the run's time slice, due receivers). Tests give the dispatcher and the pacer a
`FakeClock` instead of sleeping: its `sleep()` moves its time forward at once.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from django.utils import timezone


class Clock:
    """The system clock: wall time for database timestamps, a monotonic one for intervals."""

    def now(self) -> datetime:
        return timezone.now()

    def time(self) -> float:
        """Seconds since the epoch (what pacing counts its slots in)."""
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    @property
    def is_fake(self) -> bool:
        """Whether the time is a test's (the Redis pacer then passes it instead of Redis's TIME)."""
        return False


SYSTEM = Clock()


class FakeClock(Clock):
    """A clock that moves only when told to (`advance()`) or slept on (`sleep()`); thread-safe.

    `sleep()` still yields the CPU for `yield_s` of real time, so that what a sleeper waits for in
    other threads (an instance simulator acknowledging sends) makes progress."""

    def __init__(self, start: datetime | None = None, yield_s: float = 0.002) -> None:
        self._now = start or timezone.now()
        self._monotonic = 1000.0
        self._lock = threading.Lock()
        self.yield_s = yield_s
        self.slept: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def time(self) -> float:
        return self.now().timestamp()

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._monotonic += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds > 0:
            self.advance(seconds)
        if self.yield_s:
            time.sleep(self.yield_s)

    @property
    def is_fake(self) -> bool:
        return True
