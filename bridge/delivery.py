"""Pushes the outbox to the platform's webhook in seq order (docs/instance-protocol.md 5.2):
signed, retried with back-off and jitter on timeouts, 5xx, 408 and 429, then moved past (the
event stays replayable). When the platform announced `webhook_batch_max` in its config push
(revision 1.2, section 5.3), a backlog goes in batches of up to that many consecutive events,
one request each; a batch refused with another 4xx is pushed again one event at a time, so each
event meets the platform's verdict on its own. The delivered seq is stored (at most twice a
second), so a restarted bridge goes on from about where it was; the platform deduplicates on
event_id the events of that last half second, pushed again after a crash. A delivery cut short
by a stop is not counted as delivered: the next start pushes it again."""

from __future__ import annotations

import json
import logging
import random
import threading
import time

import httpx

from instances import protocol

logger = logging.getLogger("bridge.delivery")

#: Events read from the outbox at a time (at least one batch).
READ_AHEAD = 100

# what one push came to
DELIVERED, REFUSED, GAVE_UP, STOPPED = "delivered", "refused", "gave_up", "stopped"


def batch_limit(config) -> int:
    """Events a request may carry: the platform's `webhook_batch_max` (revision 1.2), else 1."""
    value = config.get("webhook_batch_max")
    if isinstance(value, bool) or not isinstance(value, int):
        return 1
    return max(1, min(protocol.MAX_WEBHOOK_BATCH, value))


class Deliverer:
    def __init__(self, bridge, *, retry_base_s=0.5, retry_max_s=30.0, max_attempts=8, timeout_s=10.0):
        self.bridge = bridge
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self.delivered = 0
        self.batches = 0  # requests that carried more than one event
        self.batches_split = 0  # batches refused and pushed again one event at a time

    def start(self):
        self._thread = threading.Thread(target=self._loop, name="bridge-delivery", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)

    def wake(self):
        self._wake.set()

    def _loop(self):
        store = self.bridge.store
        http = httpx.Client(timeout=self.timeout_s, trust_env=False)
        after = store.get("delivered_seq", 0)
        saved, saved_at = after, time.monotonic()
        try:
            while not self._stop.is_set():
                config = self.bridge.config
                # stored at most twice a second: after a crash the events of that
                # last half second are pushed again, which the platform deduplicates on event_id
                if after != saved and (time.monotonic() - saved_at > 0.5):
                    store.put("delivered_seq", after)
                    saved, saved_at = after, time.monotonic()
                self._wake.clear()  # before reading: an event appended from here on wakes the wait
                limit = batch_limit(config)
                events = (store.events_after(after, max(READ_AHEAD, limit), config.get("instance_id") or "")[0]
                          if config.get("webhook_url") else [])
                if not events:
                    self._wake.wait(0.5 if after != saved else 1.0)
                    continue
                for start in range(0, len(events), limit):
                    chunk = events[start : start + limit]
                    if self._stop.is_set() or self._deliver(http, chunk) == STOPPED:
                        return
                    after = chunk[-1]["seq"]
        finally:
            if after != saved:
                store.put("delivered_seq", after)
            http.close()

    def _deliver(self, http, events):
        """Push `events` (one, or a batch); a batch refused is pushed again one at a time."""
        outcome = self._push(http, events)
        if outcome != REFUSED or len(events) == 1:
            return outcome
        self.batches_split += 1
        logger.warning("webhook refused the batch seq=%s..%s: pushing its events one at a time",
                       events[0]["seq"], events[-1]["seq"])
        for event in events:
            if self._push(http, [event]) == STOPPED:
                return STOPPED
        return DELIVERED

    def _push(self, http, events):
        """One request until acknowledged (2xx), refused (4xx but 408 and 429), out of attempts
        or stopped: the event as the body, or `{"events": [...]}` for a batch, with the first
        event's id and seq in the signed headers and the batch's size in X-Event-Count."""
        batch = len(events) > 1
        first = events[0]
        body = json.dumps({"events": events} if batch else first, ensure_ascii=False, separators=(",", ":")).encode()
        what = f"seq={first['seq']}..{events[-1]['seq']}" if batch else f"seq={first['seq']}"
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            config = self.bridge.config
            url, secret = config.get("webhook_url"), config.get("webhook_secret") or ""
            headers = protocol.signature_headers(body, secret, event_id=first["event_id"], seq=first["seq"],
                                                 instance_id=first["instance_id"],
                                                 count=len(events) if batch else None)
            retry_after = None
            try:
                response = http.post(url, content=body, headers=headers)
                status = response.status_code
                if status == 429:
                    try:
                        retry_after = float(response.headers.get("Retry-After", ""))
                    except ValueError:
                        retry_after = None
            except httpx.HTTPError as exc:
                status = None
                logger.info("webhook delivery of %s failed: %s", what, type(exc).__name__)
            if status is not None and 200 <= status < 300:
                self.delivered += len(events)
                self.batches += batch
                return DELIVERED
            if status is not None and status < 500 and status not in (408, 429):
                logger.warning("webhook refused %s with HTTP %s", what, status)
                return REFUSED
            if attempt >= self.max_attempts:
                logger.warning("webhook gave up on %s after %d attempts", what, attempt)
                return GAVE_UP
            delay = min(self.retry_max_s, self.retry_base_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if retry_after:
                delay = max(delay, min(retry_after, self.retry_max_s))
            self._stop.wait(delay)
        return STOPPED
