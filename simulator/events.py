"""The simulator's event stream: numbering, the outbox, signed deliveries to the platform's
webhook with retries, heartbeats and background chatter."""
from __future__ import annotations

import json
import logging
import time
import uuid

import httpx

from instances import protocol
from instances.protocol import EventType
from simulator.base import now_ms
from simulator.data import CHATTER_TEXTS

logger = logging.getLogger("simulator")


class EventsMixin:
    """Events of a :class:`simulator.server.Simulator` (state in its attributes)."""

    def emit(self, type_, account_id, data):
        """Append an event to the log (numbered per instance) and wake the deliverer."""
        with self.event_cond:
            self.last_seq += 1
            event = {
                "event_id": f"evt_{uuid.uuid4().hex}",
                "type": type_,
                "instance_id": self.instance_id,
                "account_id": account_id,
                "seq": self.last_seq,
                "ts_ms": now_ms(),
                "data": data,
            }
            self.events.append(event)
            if len(self.events) > self.max_events:
                del self.events[: len(self.events) - self.max_events]
            self.event_cond.notify_all()
            return event

    def events_since(self, after_seq, limit):
        with self.lock:
            # events are seq-ascending and contiguous: index arithmetic
            first = self.events[0]["seq"] if self.events else self.last_seq + 1
            start = max(0, after_seq + 1 - first)
            chunk = self.events[start : start + limit]
            has_more = start + limit < len(self.events)
            return [dict(e) for e in chunk], has_more

    def _event_by_seq(self, seq):
        with self.lock:
            if not self.events:
                return None
            index = seq - self.events[0]["seq"]
            if 0 <= index < len(self.events):
                return self.events[index]
            return None

    def _backlog(self):
        """The next events to push: one, or (when the platform announced ``webhook_batch_max``
        in the config push, protocol 1.2) up to that many consecutive ones of the backlog."""
        limit = max(1, int(self.config.get("webhook_batch_max") or 1))
        with self.lock:
            first = self._event_by_seq(self.deliver_seq + 1)
            if first is None or limit == 1:
                return [first] if first is not None else []
            start = first["seq"] - self.events[0]["seq"]
            return self.events[start : start + limit]

    def _deliver_loop(self):
        # one client for the loop: deliveries reuse their connection (HTTP keep-alive)
        http = httpx.Client(timeout=self.webhook_timeout_s, trust_env=False)
        try:
            while not self._stop.is_set():
                with self.event_cond:
                    while not self._stop.is_set() and (
                        not self.config["webhook_url"] or self.deliver_seq >= self.last_seq
                    ):
                        self.event_cond.wait(timeout=0.5)
                    if self._stop.is_set():
                        return
                    if self.events and self.deliver_seq < self.events[0]["seq"] - 1:
                        self.deliver_seq = self.events[0]["seq"] - 1  # trimmed: replay only
                    events = self._backlog()
                if not events:
                    with self.lock:
                        self.deliver_seq += 1
                    continue
                self._deliver(http, events)
                with self.lock:
                    self.deliver_seq = max(self.deliver_seq, events[-1]["seq"])
                if self.redeliver_rate and self.rng.random() < self.redeliver_rate:
                    self.delivery["redelivered"] += 1
                    self._deliver(http, events)
        finally:
            http.close()

    def _deliver(self, http, events):
        """Push one event, or a batch; a batch the platform refuses (4xx: too many, an item it
        does not take, batches not accepted) is pushed again one event at a time, so each event
        meets the platform's verdict on its own."""
        outcome = self._deliver_one(http, events[0]) if len(events) == 1 else \
            self._push(http, events)
        if len(events) > 1 and outcome.startswith("http_4") and outcome not in ("http_408", "http_429"):
            self.delivery["batches_split"] += 1
            for event in events:
                if self._stop.is_set():
                    break
                self._deliver_one(http, event)
        return outcome

    def _deliver_one(self, http, event):
        return self._push(http, [event])

    def _push(self, http, events):
        """Push one event (the event as the body) or a batch (``{"events": [...]}``) until
        acknowledged (2xx), refused (4xx other than 408/429), or out of attempts; back-off
        doubles from ``retry_base_s`` with jitter, honouring Retry-After."""
        batch = len(events) > 1
        first = events[0]
        document = {"events": events} if batch else first
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        what = f"batch seq={first['seq']}..{events[-1]['seq']}" if batch else f"event seq={first['seq']}"
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            url, secret = self.config["webhook_url"], self.config["webhook_secret"]
            if not url:
                return "no_webhook"
            headers = protocol.signature_headers(
                body, secret or "", event_id=first["event_id"], seq=first["seq"], instance_id=self.instance_id,
                count=len(events) if batch else None,
            )
            if not secret:
                headers.pop(protocol.SIGNATURE_HEADER)
            retry_after = None
            try:
                response = http.post(url, content=body, headers=headers)
                status = response.status_code
                outcome = "ok" if 200 <= status < 300 else f"http_{status}"
                if status == 429:
                    try:
                        retry_after = float(response.headers.get("Retry-After", ""))
                    except ValueError:
                        retry_after = None
            except httpx.TimeoutException:
                status, outcome = None, "timeout"
            except httpx.HTTPError as exc:
                status, outcome = None, f"error:{type(exc).__name__}"
            self.delivery["attempts"] += 1
            with self.lock:
                for event in events:
                    self.delivery_log.append((event["seq"], event["event_id"], attempt, outcome))
                if len(self.delivery_log) > 10_000:
                    del self.delivery_log[:5_000]
            if outcome == "ok":
                self.delivery["delivered"] += len(events)
                if batch:
                    self.delivery["batches"] += 1
                return outcome
            self.delivery["failed_attempts"] += 1
            retryable = status is None or status >= 500 or status in (408, 429)
            if not retryable:
                self.delivery["refused"] += 1
                logger.warning("webhook refused %s with HTTP %s", what, status)
                return outcome
            if attempt >= self.max_delivery_attempts:
                self.delivery["dropped"] += len(events)
                logger.warning("webhook gave up on %s after %d attempts", what, attempt)
                return outcome
            delay = min(self.retry_max_s, self.retry_base_s * 2 ** (attempt - 1)) * self.rng.uniform(0.5, 1.0)
            if retry_after:
                delay = max(delay, min(retry_after, self.retry_max_s))
            self._stop.wait(delay)
        return "stopped"

    # ================================================================= background activity

    def _reset_chatter_clock(self):
        if self.chatter_per_min > 0:
            self._next_chatter = time.monotonic() + self.rng.expovariate(self.chatter_per_min / 60.0)
        else:
            self._next_chatter = None

    def _tick_loop(self):
        while not self._stop.wait(self.tick_s):
            try:
                self._tick()
            except Exception:  # keep the simulator alive; log the bug
                logger.exception("simulator tick failed")

    def _tick(self):
        mono = time.monotonic()
        elapsed = time.time() - self.started_at
        if mono >= self._next_heartbeat:
            self._next_heartbeat = mono + self.config["heartbeat_interval_s"]
            self.heartbeat()
        if self._next_chatter is not None and mono >= self._next_chatter:
            self._reset_chatter_clock()
            self.chatter(1)
        if not self._ban_done and elapsed >= self.ban_after_s:
            self._ban_done = True
            target = self._resolve_account_ref(self.ban_account)
            if target:
                self.ban(target)
        if not self._exit_done and elapsed >= self.exit_after_s:
            self._exit_done = True
            self.client_exit("crash")
        with self.lock:
            if self._restart_due is not None and mono >= self._restart_due:
                self._restart_due = None
                self._start_client("restart")
            due = [mid for mid in self.pending_sends if self.messages[mid]["due"] <= mono]
            for mid in due:
                self.pending_sends.remove(mid)
                self._finish_send(self.messages[mid])
            for login in self.logins.values():
                if login["status"] not in protocol.LOGIN_FINAL_STATUSES and now_ms() >= login["expires_at_ms"]:
                    self._set_login(login, "expired")

    def _resolve_account_ref(self, ref):
        if ref is None:
            return None
        ref = str(ref)
        if ref in self.accounts:
            return ref
        if ref.isdigit():
            ordered = sorted(self.accounts.values(), key=lambda a: a.index)
            index = int(ref) - 1 if int(ref) >= 1 else 0
            if index < len(ordered):
                return ordered[index].account_id
        logger.warning("simulator: no account %r to ban", ref)
        return None

    def heartbeat(self):
        with self.lock:
            depth = len(self.pending_sends)
            data = {
                "uptime_s": self.uptime_s,
                "accounts": [a.brief() for a in self.accounts.values()],
                "queue_depth": depth,
                "client_version": self.client_version,
                "client_running": self.client_running,
                "metrics": {
                    "cpu": round(self.rng.uniform(3, 35), 2),
                    "memory": round(self.rng.uniform(280, 620), 1),
                    "queue_depth": depth,
                    "undelivered_events": max(0, self.last_seq - self.deliver_seq),
                },
            }
        return self.emit(EventType.INSTANCE_HEARTBEAT, None, data)

    def chatter(self, count=1, account_id=None, is_history=False, conversation_type=None):
        """Emit ``count`` inbound messages (and, with ``duplicate_rate``, copies under a new id)."""
        emitted = []
        with self.lock:
            for _ in range(int(count)):
                if account_id:
                    acc = self.accounts.get(account_id)
                else:
                    online = [a for a in self.accounts.values() if a.status == "online"]
                    acc = self.rng.choice(online) if online else None
                if acc is None or not self.client_running:
                    break
                data = self._random_inbound(acc, is_history, conversation_type)
                emitted.append(self.emit(EventType.MESSAGE_RECEIVED, acc.account_id, data))
                if not is_history and self.duplicate_rate and self.rng.random() < self.duplicate_rate:
                    copy = dict(data, message_id=f"msg_{uuid.uuid4().hex}")
                    emitted.append(self.emit(EventType.MESSAGE_RECEIVED, acc.account_id, copy))
        return emitted

    def say(self, account_id, text, contact_id=None, *, room_id=None, sender_id=None):
        """Emit one inbound text message: from a contact (default: the account's first one) in
        their one-to-one chat, or from `sender_id` in the room `room_id`."""
        with self.lock:
            acc = self._account(account_id)
            if room_id:
                conversation_id, ctype = room_id, "room"
                sender = {"id": sender_id or acc.members[room_id][0]["member_id"], "name": None}
            else:
                contact = acc.contact_index.get(contact_id) if contact_id else acc.contacts[0]
                conversation_id, ctype = contact["contact_id"], "single"
                sender = {"id": sender_id or contact["contact_id"], "name": contact["name"]}
            return self.emit(EventType.MESSAGE_RECEIVED, acc.account_id, {
                "message_id": f"msg_{uuid.uuid4().hex}", "conversation_id": conversation_id,
                "conversation_type": ctype, "sender": sender, "type": "text", "content": {"text": text},
                "mentions": [], "mentions_self": False, "quoted_message_id": None, "sent_at_ms": now_ms(),
                "is_self": False, "is_history": False,
            })

    def _random_inbound(self, acc, is_history, conversation_type):
        rng = self.rng
        room = conversation_type == "room" or (conversation_type is None and acc.rooms and rng.random() < 0.35)
        mentions, mentions_self = [], False
        if room and acc.rooms:
            room_obj = rng.choice(acc.rooms)
            conversation_id = room_obj["room_id"]
            others = [m for m in acc.members[conversation_id] if m["member_id"] != acc.account_id]
            sender = rng.choice(others) if others else acc.members[conversation_id][0]
            sender = {"id": sender["member_id"], "name": sender["name"]}
            if rng.random() < 0.2:
                mentions, mentions_self = [acc.account_id], True
            ctype = "room"
        else:
            contact = rng.choice(acc.contacts) if acc.contacts else None
            conversation_id = contact["contact_id"] if contact else acc.account_id
            sender = {"id": conversation_id, "name": contact["name"] if contact else acc.nickname}
            ctype = "single"
        is_self = rng.random() < 0.05
        if is_self:
            sender = {"id": acc.account_id, "name": acc.nickname}
        roll = rng.random()
        if roll < 0.8:
            mtype, content = "text", {"text": rng.choice(CHATTER_TEXTS)}
        elif roll < 0.9:
            mtype, content = "image", {"url": f"https://files.example.com/img/{uuid.uuid4().hex[:12]}.jpg"}
        else:
            mtype, content = "link", {
                "title": "产品手册",
                "desc": "最新版本",
                "url": "https://example.com/manual",
                "thumb_url": None,
            }
        sent_at = now_ms() - (rng.randrange(3600_000, 30 * 86400_000) if is_history else rng.randrange(0, 1500))
        return {
            "message_id": f"msg_{uuid.uuid4().hex}",
            "conversation_id": conversation_id,
            "conversation_type": ctype,
            "sender": sender,
            "type": mtype,
            "content": content,
            "mentions": mentions,
            "mentions_self": mentions_self,
            "quoted_message_id": None,
            "sent_at_ms": sent_at,
            "is_self": is_self,
            "is_history": bool(is_history),
        }
