"""Pushes the outbox to the platform's webhook, in seq order, one at a time (docs/instance-
protocol.md 5.2; revision 1.2's `webhook_batch_max` is accepted in the config push, and a
runtime may still send single events): signed, retried with back-off and jitter on timeouts, 5xx, 408 and 429, then
moved past (the event stays replayable). The delivered seq is stored (at most twice a second),
so a restarted bridge goes on from about where it was; the platform deduplicates on event_id
the events of that last half second, pushed again after a crash."""

from __future__ import annotations

import json
import logging
import random
import threading
import time

import httpx

from instances import protocol

logger = logging.getLogger("bridge.delivery")


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
                events, _ = store.events_after(after, 100, config.get("instance_id") or "") if config.get("webhook_url") else ([], False)
                if not events:
                    self._wake.wait(0.5 if after != saved else 1.0)
                    continue
                for event in events:
                    if self._stop.is_set():
                        return
                    self._deliver(http, event)
                    after = event["seq"]
        finally:
            if after != saved:
                store.put("delivered_seq", after)
            http.close()

    def _deliver(self, http, event):
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            config = self.bridge.config
            url, secret = config.get("webhook_url"), config.get("webhook_secret") or ""
            headers = protocol.signature_headers(body, secret, event_id=event["event_id"], seq=event["seq"],
                                                 instance_id=event["instance_id"])
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
                logger.info("webhook delivery of seq %s failed: %s", event["seq"], type(exc).__name__)
            if status is not None and 200 <= status < 300:
                self.delivered += 1
                return True
            if status is not None and status < 500 and status not in (408, 429):
                logger.warning("webhook refused event seq=%s with HTTP %s", event["seq"], status)
                return False
            if attempt >= self.max_attempts:
                logger.warning("webhook gave up on event seq=%s after %d attempts", event["seq"], attempt)
                return False
            delay = min(self.retry_max_s, self.retry_base_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if retry_after:
                delay = max(delay, min(retry_after, self.retry_max_s))
            self._stop.wait(delay)
        return False
