"""The instance simulator: a real HTTP server speaking instance protocol v1.

Routes are built from :data:`instances.protocol.COMMANDS`; each command is served by the
``cmd_<name>`` method of :class:`Simulator`. Simulator-only endpoints live under ``/sim/``
(no token: they stand for what a phone or the WeCom servers would do):

``GET /sim/scan/<login_id>``, ``GET|POST /sim/confirm/<login_id>[?account_id=&need_verify=1]``,
``GET /sim/stats``, ``POST /sim/inject`` (JSON: latency_ms, error_rate, rate_limit_per_min,
risk_control_after, chatter_per_min, duplicate_rate, redeliver_rate),
``POST /sim/chatter`` (JSON: count, account_id?, is_history?), ``POST /sim/accounts/<id>/ban``,
``POST /sim/accounts/<id>/abnormal``, ``POST /sim/client-exit``, ``POST /sim/heartbeat``,
``POST /sim/accounts/<id>/contacts`` (adds a contact, emits contact.added),
``POST /sim/accounts/<id>/changes`` (one contact added/updated/removed, a room renamed, a member
joined and one left).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import math
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from instances import protocol
from instances.protocol import ErrorCode, EventType
from instances.simulator.data import CHATTER_TEXTS, build_account, person_name

logger = logging.getLogger("instances.simulator")

RUNTIME = "wework-simulator"
RUNTIME_VERSION = "1.0"
DEFAULT_CLIENT_VERSION = "4.1.22.6019"


def now_ms():
    return int(time.time() * 1000)


class SimError(Exception):
    """A protocol error answered by the simulator."""

    def __init__(self, code, message, retry_after_s=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.status = protocol.ERROR_HTTP_STATUS.get(code, 500)


def _encode_cursor(offset):
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor):
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, value = raw.split(":", 1)
        offset = int(value)
        if kind != "o" or offset < 0:
            raise ValueError
        return offset
    except (ValueError, UnicodeDecodeError):
        raise SimError(ErrorCode.INVALID_REQUEST, "cursor: not a cursor from this instance") from None


_ROUTES = []
for _command in protocol.COMMAND_LIST:
    _pattern = re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", protocol.PATH_PREFIX + _command.path)
    _ROUTES.append((re.compile(f"^{_pattern}$"), _command))


class Simulator:
    """An in-process instance: ``url = Simulator(...).start()``; ``.stop()`` when done.

    All knobs are keyword arguments (see the management command ``run_instance_simulator``
    for their meaning). The simulator is thread-safe; state changes hold ``self.lock``.
    """

    def __init__(
        self,
        *,
        host="127.0.0.1",
        port=0,
        token="sim-token",
        accounts=3,
        contacts=200,
        rooms=20,
        members=30,
        seed=1,
        latency_ms=0,
        error_rate=0.0,
        rate_limit_per_min=0,
        risk_control_after=0,
        ban_account=None,
        ban_after_s=0.0,
        exit_after_s=0.0,
        chatter_per_min=0.0,
        duplicate_rate=0.1,
        redeliver_rate=0.0,
        webhook_url=None,
        webhook_secret=None,
        instance_id=None,
        heartbeat_interval_s=protocol.DEFAULT_HEARTBEAT_INTERVAL_S,
        login_ttl_s=protocol.DEFAULT_LOGIN_TTL_S,
        send_delay_ms=50,
        history_on_login=5,
        restart_delay_s=0.5,
        client_version=DEFAULT_CLIENT_VERSION,
        webhook_timeout_s=5.0,
        retry_base_s=0.5,
        retry_max_s=30.0,
        max_delivery_attempts=8,
        max_events=200_000,
        tick_s=0.05,
        batch_send_max=protocol.MAX_BATCH_SEND,
    ):
        self.host = host
        self.port = port
        self.token = token
        self.seed = seed
        self.sizes = {"contacts": int(contacts), "rooms": int(rooms), "members": int(members)}
        self.latency_ms = float(latency_ms)
        self.error_rate = float(error_rate)
        self.rate_limit_per_min = int(rate_limit_per_min)
        self.risk_control_after = int(risk_control_after)
        self.chatter_per_min = float(chatter_per_min)
        self.duplicate_rate = float(duplicate_rate)
        self.redeliver_rate = float(redeliver_rate)
        self.ban_account = ban_account
        self.ban_after_s = float(ban_after_s)
        self.exit_after_s = float(exit_after_s)
        self.instance_id = instance_id or f"sim-{seed}-{uuid.uuid4().hex[:8]}"
        self.config = {
            "webhook_url": webhook_url,
            "webhook_secret": webhook_secret,
            "heartbeat_interval_s": int(heartbeat_interval_s),
            "proxy": None,
            "rate_limits": dict(protocol.DEFAULT_RATE_LIMITS),
        }
        self.login_ttl_s = float(login_ttl_s)
        self.send_delay_ms = float(send_delay_ms)
        self.history_on_login = int(history_on_login)
        self.restart_delay_s = float(restart_delay_s)
        self.client_version = client_version
        self.webhook_timeout_s = float(webhook_timeout_s)
        self.retry_base_s = float(retry_base_s)
        self.retry_max_s = float(retry_max_s)
        self.max_delivery_attempts = int(max_delivery_attempts)
        self.max_events = int(max_events)
        self.tick_s = float(tick_s)
        # 0: behave like a revision 1.0 instance (no batch send: capability 0, route unknown)
        self.batch_send_max = max(0, min(protocol.MAX_BATCH_SEND, int(batch_send_max)))

        self.lock = threading.RLock()
        self.rng = random.Random(f"runtime:{seed}")
        self.started_at = time.time()
        created = now_ms()
        self.accounts = {}
        for i in range(int(accounts)):
            acc = build_account(seed, i, created_ms=created, **self.sizes)
            self.accounts[acc.account_id] = acc
        self.client_running = True
        self.logins = {}
        self.messages = {}  # message_id -> record
        self.by_client_msg_id = {}  # client_msg_id -> message_id
        self.receipts = Counter()  # client_msg_id -> times received
        self.pending_sends = []  # message ids waiting for their status
        self.requests = Counter()
        self.batch_sizes = []  # messages per batch send received
        self.restart_count = 0
        self._restart_due = None

        # events
        self.events = []  # retained events, seq ascending
        self.last_seq = 0
        self.event_cond = threading.Condition(self.lock)
        self.deliver_seq = 0  # highest seq pushed or given up on
        self.delivery = Counter()
        self.delivery_log = []  # (seq, event_id, attempt, outcome)

        self._stop = threading.Event()
        self._threads = []
        self._server = None
        self._connections = set()
        self._next_heartbeat = 0.0
        self._next_chatter = None
        self._ban_done = ban_account is None
        self._exit_done = not self.exit_after_s
        self.url = None

    # ================================================================= lifecycle

    def start(self):
        """Start serving; returns the base URL (``http://host:port``)."""
        sim = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def process_request(self, request, client_address):
                with sim.lock:
                    sim._connections.add(request)
                super().process_request(request, client_address)

            def shutdown_request(self, request):
                with sim.lock:
                    sim._connections.discard(request)
                super().shutdown_request(request)

        self._server = Server((self.host, self.port), _Handler)
        self._server.sim = self
        self.port = self._server.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self.started_at = time.time()
        self._next_heartbeat = time.monotonic() + self.config["heartbeat_interval_s"]
        self._reset_chatter_clock()
        self.emit(EventType.INSTANCE_STARTED, None, {"reason": "start", "client_version": self.client_version})
        for target, name in (
            (lambda: self._server.serve_forever(poll_interval=0.1), "sim-http"),
            (self._tick_loop, "sim-tick"),
            (self._deliver_loop, "sim-deliver"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("instance simulator %s listening on %s", self.instance_id, self.url)
        return self.url

    def stop(self):
        """Stop serving and close every open connection (the instance disappears)."""
        self._stop.set()
        with self.event_cond:
            self.event_cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            with self.lock:
                conns = list(self._connections)
            for conn in conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    conn.close()
                except OSError:
                    pass
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self._threads = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def uptime_s(self):
        return max(0, int(time.time() - self.started_at))

    # ================================================================= events

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

    def _deliver_loop(self):
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
                    event = self._event_by_seq(self.deliver_seq + 1)
                if event is None:
                    with self.lock:
                        self.deliver_seq += 1
                    continue
                self._deliver_one(http, event)
                with self.lock:
                    self.deliver_seq = max(self.deliver_seq, event["seq"])
                if self.redeliver_rate and self.rng.random() < self.redeliver_rate:
                    self.delivery["redelivered"] += 1
                    self._deliver_one(http, event)
        finally:
            http.close()

    def _deliver_one(self, http, event):
        """Push one event until acknowledged (2xx), refused (4xx other than 408/429), or out of
        attempts; back-off doubles from ``retry_base_s`` with jitter, honouring Retry-After."""
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            url, secret = self.config["webhook_url"], self.config["webhook_secret"]
            if not url:
                return "no_webhook"
            headers = protocol.signature_headers(
                body, secret or "", event_id=event["event_id"], seq=event["seq"], instance_id=self.instance_id
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
                self.delivery_log.append((event["seq"], event["event_id"], attempt, outcome))
                if len(self.delivery_log) > 10_000:
                    del self.delivery_log[:5_000]
            if outcome == "ok":
                self.delivery["delivered"] += 1
                return outcome
            self.delivery["failed_attempts"] += 1
            retryable = status is None or status >= 500 or status in (408, 429)
            if not retryable:
                self.delivery["refused"] += 1
                logger.warning("webhook refused event seq=%s with HTTP %s", event["seq"], status)
                return outcome
            if attempt >= self.max_delivery_attempts:
                self.delivery["dropped"] += 1
                logger.warning("webhook gave up on event seq=%s after %d attempts", event["seq"], attempt)
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

    def ban(self, account_id, detail="Account banned by WeCom (simulated)."):
        with self.lock:
            acc = self.accounts[account_id]
            acc.status = "banned"
            acc.was_online = False
            return self.emit(
                EventType.ACCOUNT_BANNED,
                account_id,
                {"account_id": account_id, "reason": "banned", "detail": detail, "until_ms": None},
            )

    def mark_abnormal(self, account_id, reason="risk_control", detail="Sending restricted (simulated).", until_ms=None):
        with self.lock:
            acc = self.accounts[account_id]
            if acc.status == "abnormal":
                return None
            acc.status = "abnormal"
            return self.emit(
                EventType.ACCOUNT_ABNORMAL,
                account_id,
                {"account_id": account_id, "reason": reason, "detail": detail, "until_ms": until_ms},
            )

    def client_exit(self, reason="crash"):
        """The WeCom client exits: accounts go offline; the runtime keeps answering."""
        with self.lock:
            if not self.client_running:
                return
            self.client_running = False
            self.emit(EventType.INSTANCE_CLIENT_EXITED, None, {"reason": reason, "exit_code": 1 if reason == "crash" else 0})
            for acc in self.accounts.values():
                acc.was_online = acc.status == "online"
                if acc.status == "online":
                    acc.status = "offline"
                    self.emit(EventType.ACCOUNT_OFFLINE, acc.account_id, {"account_id": acc.account_id, "reason": "client_exit"})

    def _start_client(self, reason):
        with self.lock:
            self.client_running = True
            self.emit(EventType.INSTANCE_STARTED, None, {"reason": reason, "client_version": self.client_version})
            for acc in self.accounts.values():
                if acc.was_online and acc.status == "offline":
                    acc.status = "online"
                    acc.was_online = False
                    self.emit(EventType.ACCOUNT_ONLINE, acc.account_id, {"account_id": acc.account_id, "profile": acc.as_dict()})

    def add_contact(self, account_id, name=None):
        with self.lock:
            acc = self._account(account_id)
            cid = f"{acc.account_id}_n{uuid.uuid4().hex[:8]}"
            contact = {
                "contact_id": cid,
                "name": name or person_name(self.rng),
                "kind": "friend",
                "remark": None,
                "avatar": None,
                "is_external": True,
                "added_at_ms": now_ms(),
            }
            acc.contacts.append(contact)
            acc.contact_index[cid] = contact
            self.emit(EventType.CONTACT_ADDED, acc.account_id, {"contact": dict(contact)})
            return contact

    def update_contact(self, account_id, contact_id=None, **changes):
        """Change a contact (default: its remark) and emit contact.updated."""
        with self.lock:
            acc = self._account(account_id)
            contact = acc.contact_index.get(contact_id) if contact_id else (acc.contacts[0] if acc.contacts else None)
            if contact is None:
                raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No contact {contact_id}.")
            contact.update(changes or {"remark": f"备注{self.rng.randrange(1000)}"})
            return self.emit(EventType.CONTACT_UPDATED, acc.account_id, {"contact": dict(contact)})

    def remove_contact(self, account_id, contact_id=None):
        """Delete a contact (default: the last one) and emit contact.removed."""
        with self.lock:
            acc = self._account(account_id)
            contact = acc.contact_index.get(contact_id) if contact_id else (acc.contacts[-1] if acc.contacts else None)
            if contact is None:
                raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No contact {contact_id}.")
            acc.contacts.remove(contact)
            del acc.contact_index[contact["contact_id"]]
            return self.emit(EventType.CONTACT_REMOVED, acc.account_id, {"contact": {"contact_id": contact["contact_id"]}})

    def _room(self, acc, room_id):
        room = acc.room_index.get(room_id) if room_id else (acc.rooms[0] if acc.rooms else None)
        if room is None:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No room {room_id}.")
        return room

    def rename_room(self, account_id, room_id=None, topic=None):
        with self.lock:
            acc = self._account(account_id)
            room = self._room(acc, room_id)
            room["topic"] = topic or f"{room['topic'].split('·')[0]}·{self.rng.randrange(100)}"
            return self.emit(
                EventType.ROOM_UPDATED,
                acc.account_id,
                {"room_id": room["room_id"], "topic": room["topic"], "room": dict(room)},
            )

    def member_join(self, account_id, room_id=None, name=None):
        with self.lock:
            acc = self._account(account_id)
            room = self._room(acc, room_id)
            member = {
                "member_id": f"wxid_j{uuid.uuid4().hex[:10]}",
                "name": name or person_name(self.rng),
                "role": "member",
                "room_alias": None,
                "avatar": None,
                "joined_at_ms": now_ms(),
                "invited_by": acc.account_id,
            }
            acc.members[room["room_id"]].append(member)
            room["member_count"] = len(acc.members[room["room_id"]])
            return self.emit(EventType.ROOM_MEMBER_JOINED, acc.account_id, {"room_id": room["room_id"], "members": [dict(member)]})

    def member_leave(self, account_id, room_id=None, member_id=None):
        with self.lock:
            acc = self._account(account_id)
            room = self._room(acc, room_id)
            members = acc.members[room["room_id"]]
            others = [m for m in members if m["member_id"] != acc.account_id and m["role"] != "owner"]
            member = next((m for m in members if m["member_id"] == member_id), None) if member_id else (others[-1] if others else None)
            if member is None:
                raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No member {member_id} to remove.")
            members.remove(member)
            room["member_count"] = len(members)
            return self.emit(EventType.ROOM_MEMBER_LEFT, acc.account_id, {"room_id": room["room_id"], "member_ids": [member["member_id"]]})

    def churn(self, account_id):
        """One of each incremental change: contact added/updated/removed, room renamed,
        member joined and left. Returns the events."""
        with self.lock:
            self.add_contact(account_id)
            added = self.events[-1]
            return [
                added,
                self.update_contact(account_id),
                self.remove_contact(account_id),
                self.rename_room(account_id),
                self.member_join(account_id),
                self.member_leave(account_id),
            ]

    # ================================================================= helpers

    def _account(self, account_id):
        acc = self.accounts.get(account_id)
        if acc is None:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No account {account_id} on this instance.")
        return acc

    def _online_account(self, account_id, *, sending=False):
        acc = self._account(account_id)
        if not self.client_running:
            raise SimError(ErrorCode.ACCOUNT_OFFLINE, "The WeCom client is not running.")
        if acc.status == "banned":
            if sending:
                raise SimError(ErrorCode.RISK_CONTROL, f"Account {account_id} is banned.")
            raise SimError(ErrorCode.NOT_LOGGED_IN, f"Account {account_id} is banned and logged out.")
        if acc.status == "offline":
            raise SimError(ErrorCode.NOT_LOGGED_IN, f"Account {account_id} is not logged in.")
        return acc

    @staticmethod
    def _paginate(items, query):
        limit = query.get("limit", protocol.DEFAULT_PAGE_LIMIT)
        offset = _decode_cursor(query["cursor"]) if query.get("cursor") else 0
        chunk = items[offset : offset + limit]
        nxt = offset + limit
        return {"items": [dict(i) for i in chunk], "next_cursor": _encode_cursor(nxt) if nxt < len(items) else None}

    def _login_view(self, login):
        return {k: login[k] for k in ("login_id", "status", "account_id", "expires_at_ms")}

    def _set_login(self, login, status):
        login["status"] = status
        self.emit(
            EventType.LOGIN_STATUS,
            login["account_id"] if status == "confirmed" else None,
            {"login_id": login["login_id"], "status": status, "account_id": login["account_id"]},
        )

    def _find_login(self, login_id):
        login = self.logins.get(login_id)
        if login is None:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No login {login_id}.")
        if login["status"] not in protocol.LOGIN_FINAL_STATUSES and now_ms() >= login["expires_at_ms"]:
            self._set_login(login, "expired")
        return login

    # ================================================================= /sim/ actions

    def scan(self, login_id):
        with self.lock:
            login = self._find_login(login_id)
            if login["status"] != "waiting":
                raise SimError(ErrorCode.INVALID_REQUEST, f"Login {login_id} is {login['status']}, not waiting.")
            self._set_login(login, "scanned")
            return self._login_view(login)

    def confirm(self, login_id, account_id=None, need_verify=False):
        with self.lock:
            login = self._find_login(login_id)
            if login["status"] == "waiting":
                self._set_login(login, "scanned")
            if login["status"] != "scanned":
                raise SimError(ErrorCode.INVALID_REQUEST, f"Login {login_id} is {login['status']}, not scanned.")
            if account_id:
                login["account_id"] = account_id
            if need_verify:
                login["verify_code"] = f"{self.rng.randrange(0, 1_000_000):06d}"
                self._set_login(login, "need_verify")
                return {**self._login_view(login), "verify_code": login["verify_code"]}
            self._complete_login(login)
            return self._login_view(login)

    def _complete_login(self, login):
        aid = login["account_id"]
        if aid and aid in self.accounts:
            acc = self.accounts[aid]
        else:
            index = max((a.index for a in self.accounts.values()), default=-1) + 1
            acc = build_account(self.seed, index, created_ms=now_ms(), status="offline", **self.sizes)
            self.accounts[acc.account_id] = acc
        acc.status = "online"
        acc.was_online = False
        login["account_id"] = acc.account_id
        self._set_login(login, "confirmed")
        self.emit(EventType.ACCOUNT_ONLINE, acc.account_id, {"account_id": acc.account_id, "profile": acc.as_dict()})
        self.emit(
            EventType.SYNC_COMPLETED,
            acc.account_id,
            {
                "sync_id": f"sync_{uuid.uuid4().hex[:12]}",
                "scope": "all",
                "counts": {
                    "contacts": len(acc.contacts),
                    "rooms": len(acc.rooms),
                    "members": sum(len(m) for m in acc.members.values()),
                },
            },
        )
        if self.history_on_login and self.client_running:
            self.chatter(self.history_on_login, account_id=acc.account_id, is_history=True)

    def stats(self):
        with self.lock:
            return {
                "instance_id": self.instance_id,
                "url": self.url,
                "uptime_s": self.uptime_s,
                "client_running": self.client_running,
                "restart_count": self.restart_count,
                "receipts": dict(self.receipts),
                "distinct_messages": len(self.messages),
                "messages_by_status": dict(Counter(m["status"] for m in self.messages.values())),
                "requests": dict(self.requests),
                "accounts": [
                    {**a.brief(), "accepted_sends": a.accepted_sends, "contacts": len(a.contacts), "rooms": len(a.rooms)}
                    for a in self.accounts.values()
                ],
                "logins": {lid: lg["status"] for lid, lg in self.logins.items()},
                "events": {
                    "last_seq": self.last_seq,
                    "retained": len(self.events),
                    "pushed_upto_seq": self.deliver_seq,
                    **dict(self.delivery),
                },
                "injections": {
                    "latency_ms": self.latency_ms,
                    "error_rate": self.error_rate,
                    "rate_limit_per_min": self.rate_limit_per_min,
                    "risk_control_after": self.risk_control_after,
                    "chatter_per_min": self.chatter_per_min,
                    "duplicate_rate": self.duplicate_rate,
                    "redeliver_rate": self.redeliver_rate,
                },
            }

    INJECTABLE = {
        "latency_ms": float,
        "error_rate": float,
        "rate_limit_per_min": int,
        "risk_control_after": int,
        "chatter_per_min": float,
        "duplicate_rate": float,
        "redeliver_rate": float,
    }

    def inject(self, **values):
        with self.lock:
            for key, value in values.items():
                if key not in self.INJECTABLE:
                    raise SimError(ErrorCode.INVALID_REQUEST, f"{key}: not injectable")
                try:
                    setattr(self, key, self.INJECTABLE[key](value))
                except (TypeError, ValueError):
                    raise SimError(ErrorCode.INVALID_REQUEST, f"{key}: not a number") from None
            if "chatter_per_min" in values:
                self._reset_chatter_clock()
            return self.stats()["injections"]

    # ================================================================= protocol commands

    def cmd_health(self, path, query, body):
        with self.lock:
            return 200, {
                "runtime": RUNTIME,
                "runtime_version": RUNTIME_VERSION,
                "client_version": self.client_version,
                "protocol_version": protocol.PROTOCOL_REVISION,
                "uptime_s": self.uptime_s,
                "accounts": [a.brief() for a in self.accounts.values()],
                "queue_depth": len(self.pending_sends),
                "client_running": self.client_running,
            }

    def cmd_capabilities(self, path, query, body):
        return 200, {
            "send_types": list(protocol.MESSAGE_TYPES),
            "mentions": True,
            "mention_all": True,
            "recall": False,
            "location": True,
            "max_page_limit": protocol.MAX_PAGE_LIMIT,
            "batch_send_max": self.batch_send_max,
            "protocol_versions": [protocol.PROTOCOL_REVISION],
        }

    def _config_view(self):
        cfg = self.config
        proxy = cfg["proxy"]
        return {
            "instance_id": self.instance_id,
            "webhook_url": cfg["webhook_url"],
            "webhook_secret_set": bool(cfg["webhook_secret"]),
            "heartbeat_interval_s": cfg["heartbeat_interval_s"],
            "proxy": None
            if not proxy
            else {
                "host": proxy["host"],
                "port": proxy["port"],
                "username": proxy.get("username"),
                "password_set": bool(proxy.get("password")),
            },
            "rate_limits": dict(cfg["rate_limits"]),
        }

    def cmd_push_config(self, path, query, body):
        with self.event_cond:
            applied = []
            before = (self.config["webhook_url"], self.config["heartbeat_interval_s"])
            for key, value in body.items():
                if key == "instance_id":
                    if value:
                        self.instance_id = value
                elif key == "rate_limits":
                    self.config["rate_limits"].update(value)
                else:
                    self.config[key] = value
                applied.append(key)
            if (self.config["webhook_url"], self.config["heartbeat_interval_s"]) != before:
                # a new webhook or interval: heartbeat now, then on the new interval (an
                # unchanged push leaves the schedule alone, so frequent pushes cannot starve it)
                self._next_heartbeat = time.monotonic()
            self.event_cond.notify_all()
            return 200, {"applied": sorted(applied), "config": self._config_view()}

    def cmd_restart(self, path, query, body):
        with self.lock:
            self.restart_count += 1
            reason = body.get("reason") or "restart"
            if self.client_running:
                self.client_exit("restart")
            self._restart_due = time.monotonic() + self.restart_delay_s
            logger.info("simulator restart requested: %s", reason)
            return 202, {"restarting": True}

    def cmd_start_login(self, path, query, body):
        with self.lock:
            if not self.client_running:
                raise SimError(ErrorCode.ACCOUNT_OFFLINE, "The WeCom client is not running.")
            target = body.get("account_id")
            if target:
                acc = self._account(target)
                if acc.status == "online":
                    raise SimError(ErrorCode.INVALID_REQUEST, f"Account {target} is already online.")
            login_id = f"lg_{uuid.uuid4().hex[:16]}"
            login = {
                "login_id": login_id,
                "status": "waiting",
                "account_id": target,
                "expires_at_ms": now_ms() + int(self.login_ttl_s * 1000),
                "verify_code": None,
            }
            self.logins[login_id] = login
            self.emit(EventType.LOGIN_STATUS, None, {"login_id": login_id, "status": "waiting", "account_id": target})
            return 201, {
                "login_id": login_id,
                "qrcode": {"content": f"{self.url}/sim/scan/{login_id}", "image_url": None},
                "expires_at_ms": login["expires_at_ms"],
                "status": "waiting",
            }

    def cmd_get_login(self, path, query, body):
        with self.lock:
            return 200, self._login_view(self._find_login(path["login_id"]))

    def cmd_verify_login(self, path, query, body):
        with self.lock:
            login = self._find_login(path["login_id"])
            if login["status"] != "need_verify":
                raise SimError(ErrorCode.INVALID_REQUEST, f"Login is {login['status']}, no code expected.")
            if not hmac.compare_digest(str(body["code"]), str(login["verify_code"])):
                raise SimError(ErrorCode.INVALID_REQUEST, "code: wrong verification code")
            self._complete_login(login)
            return 200, self._login_view(login)

    def cmd_cancel_login(self, path, query, body):
        with self.lock:
            login = self._find_login(path["login_id"])
            if login["status"] not in protocol.LOGIN_FINAL_STATUSES:
                self._set_login(login, "cancelled")
            return 200, self._login_view(login)

    def cmd_list_accounts(self, path, query, body):
        with self.lock:
            return 200, {"items": [a.as_dict() for a in self.accounts.values()]}

    def cmd_logout_account(self, path, query, body):
        with self.lock:
            acc = self._account(path["account_id"])
            if acc.status in ("online", "abnormal"):
                acc.status = "offline"
                self.emit(EventType.ACCOUNT_OFFLINE, acc.account_id, {"account_id": acc.account_id, "reason": "logout"})
            acc.was_online = False
            return 200, {"account_id": acc.account_id, "status": acc.status}

    def cmd_list_contacts(self, path, query, body):
        with self.lock:
            acc = self._online_account(path["account_id"])
            return 200, self._paginate(acc.contacts, query)

    def cmd_list_rooms(self, path, query, body):
        with self.lock:
            acc = self._online_account(path["account_id"])
            return 200, self._paginate(acc.rooms, query)

    def cmd_list_room_members(self, path, query, body):
        with self.lock:
            acc = self._online_account(path["account_id"])
            members = acc.members.get(path["room_id"])
            if members is None:
                raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No room {path['room_id']} for this account.")
            return 200, self._paginate(members, query)

    def cmd_send_message(self, path, query, body):
        with self.lock:
            acc = self._account(path["account_id"])
            return 202, self._accept_send(acc, body)

    def cmd_send_messages(self, path, query, body):
        """Revision 1.1: each item as cmd_send_message would take it, in order; after an item
        refused with a BATCH_STOP_CODES code, the rest are not attempted."""
        if not self.batch_send_max:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, "No such command: POST .../messages/batch.")
        if len(body["messages"]) > self.batch_send_max:
            raise SimError(ErrorCode.INVALID_REQUEST, f"messages: at most {self.batch_send_max} per batch.")
        results = []
        with self.lock:
            acc = self._account(path["account_id"])
            self.batch_sizes.append(len(body["messages"]))
            stopped = False
            for item in body["messages"]:
                cmid = item.get("client_msg_id") if isinstance(item, dict) else None
                cmid = cmid if isinstance(cmid, str) else None
                if stopped:
                    results.append({"client_msg_id": cmid, "status": protocol.NOT_ATTEMPTED, "message_id": None,
                                    "duplicate": False, "error": None})
                    continue
                errors = protocol.schema_errors("request", "send_message", item)
                try:
                    if errors:
                        raise SimError(ErrorCode.INVALID_REQUEST, "; ".join(errors[:5]))
                    results.append({**self._accept_send(acc, item), "error": None})
                except SimError as err:
                    status = err.code if err.code in ("rate_limited", "risk_control") else "failed"
                    results.append({"client_msg_id": cmid, "status": status, "message_id": None, "duplicate": False,
                                    "error": {"code": err.code, "message": err.message,
                                              "retry_after_s": err.retry_after_s}})
                    stopped = err.code in protocol.BATCH_STOP_CODES
        return 202, {"results": results}

    def _accept_send(self, acc, body):
        """Take one send (under self.lock): its answer, or SimError."""
        cmid = body["client_msg_id"]
        self.receipts[cmid] += 1
        existing = self.by_client_msg_id.get(cmid)
        if existing is not None:
            record = self.messages[existing]
            return {
                "message_id": record["message_id"],
                "client_msg_id": cmid,
                "status": record["status"],
                "duplicate": True,
            }
        acc = self._online_account(acc.account_id, sending=True)
        if acc.status == "abnormal":
            raise SimError(ErrorCode.RISK_CONTROL, f"Account {acc.account_id} is restricted by risk control.")
        ctype, conv = body["conversation_type"], body["conversation_id"]
        if ctype == "single" and conv not in acc.contact_index:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, f"conversation_id: no contact {conv}.")
        if ctype == "room" and conv not in acc.room_index:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, f"conversation_id: no room {conv}.")
        mentions = body.get("mentions")
        if mentions and ctype != "room":
            raise SimError(ErrorCode.INVALID_REQUEST, "mentions: only in rooms.")
        if isinstance(mentions, list):
            member_ids = {m["member_id"] for m in acc.members[conv]}
            unknown = [m for m in mentions if m not in member_ids]
            if unknown:
                raise SimError(ErrorCode.TARGET_NOT_FOUND, f"mentions: not members: {', '.join(unknown[:5])}.")
        if body["type"] == "card" and body["content"]["contact_id"] not in acc.contact_index:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, "content.contact_id: no such contact.")
        mono = time.monotonic()
        if self.rate_limit_per_min > 0:
            while acc.send_times and acc.send_times[0] <= mono - 60:
                acc.send_times.popleft()
            if len(acc.send_times) >= self.rate_limit_per_min:
                wait = max(1, math.ceil(acc.send_times[0] + 60 - mono))
                raise SimError(
                    ErrorCode.RATE_LIMITED,
                    f"More than {self.rate_limit_per_min} messages a minute for this account.",
                    retry_after_s=wait,
                )
        if self.risk_control_after > 0 and acc.accepted_sends >= self.risk_control_after:
            self.mark_abnormal(acc.account_id, detail=f"Risk control after {acc.accepted_sends} messages.")
            raise SimError(ErrorCode.RISK_CONTROL, f"Account {acc.account_id} hit risk control.")
        acc.send_times.append(mono)
        acc.accepted_sends += 1
        message_id = f"msg_{uuid.uuid4().hex}"
        record = {
            "message_id": message_id,
            "client_msg_id": cmid,
            "account_id": acc.account_id,
            "request": body,
            "status": "queued",
            "error": None,
            "sent_at_ms": None,
            "due": mono + self.send_delay_ms / 1000.0,
        }
        self.messages[message_id] = record
        self.by_client_msg_id[cmid] = message_id
        self.pending_sends.append(message_id)
        return {"message_id": message_id, "client_msg_id": cmid, "status": "queued", "duplicate": False}

    def _finish_send(self, record):
        acc = self.accounts.get(record["account_id"])
        req = record["request"]
        error = None
        if acc is None or acc.status in ("offline",) or not self.client_running:
            status, error = "failed", {"code": ErrorCode.ACCOUNT_OFFLINE, "message": "Account went offline before sending."}
        elif acc.status in ("banned", "abnormal"):
            status, error = "risk_control", {"code": ErrorCode.RISK_CONTROL, "message": "Account restricted."}
        elif req["type"] in ("image", "video", "file") and "fail" in req["content"].get("url", ""):
            status, error = "failed", {"code": ErrorCode.MEDIA_FETCH_FAILED, "message": "Could not download the media."}
        else:
            status = "sent"
        record["status"] = status
        record["error"] = error
        if status == "sent":
            record["sent_at_ms"] = now_ms()
        if error:
            error = {**error, "retry_after_s": None}
            record["error"] = error
        self.emit(
            EventType.MESSAGE_STATUS,
            record["account_id"],
            {
                "message_id": record["message_id"],
                "client_msg_id": record["client_msg_id"],
                "status": status,
                "error": error,
                "sent_at_ms": record["sent_at_ms"],
            },
        )

    def cmd_get_message_status(self, path, query, body):
        with self.lock:
            acc = self._account(path["account_id"])
            key = path["message_id"]
            record = self.messages.get(key) or self.messages.get(self.by_client_msg_id.get(key, ""))
            if record is None or record["account_id"] != acc.account_id:
                raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No message {key} for this account.")
            return 200, {k: record[k] for k in ("message_id", "client_msg_id", "status", "error", "sent_at_ms")}

    def cmd_events_after(self, path, query, body):
        after = query["after_seq"]
        limit = query.get("limit", protocol.DEFAULT_EVENTS_LIMIT)
        events, has_more = self.events_since(after, limit)
        with self.lock:
            return 200, {"events": events, "last_seq": self.last_seq, "has_more": has_more}


# ===================================================================== HTTP layer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"{RUNTIME}/{RUNTIME_VERSION}"
    timeout = 60  # idle keep-alive connections are closed after this

    def setup(self):
        super().setup()
        # one response = headers + body written separately; without NODELAY, Nagle plus the
        # peer's delayed ACK adds ~40 ms to every keep-alive request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    _date = (0, "")

    def date_time_string(self, timestamp=None):
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())  # the Date header changes once a second: format it once a second
        if _Handler._date[0] != now:
            _Handler._date = (now, super().date_time_string(now))
        return _Handler._date[1]

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        if logger.isEnabledFor(logging.DEBUG):  # formatted only when it is written
            logger.debug("%s - %s", self.address_string(), format % args)

    @property
    def sim(self) -> Simulator:
        return self.server.sim

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    # ---------------------------------------------------------------- responses

    def _send(self, status, payload, extra_headers=None, content_type="application/json"):
        if isinstance(payload, str):
            raw = payload.encode("utf-8")
        else:
            raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header(protocol.VERSION_HEADER, protocol.PROTOCOL_REVISION)
        for key, value in (extra_headers or {}).items():
            self.send_header(key, value)
        # headers and body in one write (one packet with TCP_NODELAY, not two)
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(raw)
        self.flush_headers()

    def _ok(self, status, data):
        self._send(status, {"ok": True, "data": data, "error": None})

    def _error(self, err: SimError):
        headers = {}
        if err.retry_after_s is not None:
            headers["Retry-After"] = str(int(err.retry_after_s))
        if err.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        self._send(
            err.status,
            {"ok": False, "data": None, "error": {"code": err.code, "message": err.message, "retry_after_s": err.retry_after_s}},
            headers,
        )

    def _read_body(self):
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise SimError(ErrorCode.INVALID_REQUEST, "Bad Content-Length.") from None
        if size > 10 * 1024 * 1024:
            raise SimError(ErrorCode.INVALID_REQUEST, "Body too large.")
        return self.rfile.read(size)

    # ---------------------------------------------------------------- dispatch

    def _dispatch(self, method):
        parts = urlsplit(self.path)
        try:
            raw = self._read_body()
            if parts.path.startswith("/sim/"):
                self._sim_endpoint(method, parts.path, parse_qs(parts.query), raw)
                return
            self._command(method, parts.path, parse_qs(parts.query), raw)
        except SimError as err:
            self._error(err)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:  # a simulator bug: answer like a runtime would, keep serving
            logger.exception("simulator failed on %s %s", method, self.path)
            self._error(SimError(ErrorCode.INTERNAL, "Simulator failure."))

    def _command(self, method, path, qs, raw):
        route = None
        allowed = []
        for pattern, command in _ROUTES:
            match = pattern.match(path)
            if match:
                if command.method == method:
                    route = (command, {k: unquote(v) for k, v in match.groupdict().items()})
                    break
                allowed.append(command.method)
        if route is None:
            if allowed:
                raise SimError(ErrorCode.INVALID_REQUEST, f"Method {method} not allowed; use {', '.join(allowed)}.")
            raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No such command: {method} {path}.")
        command, params = route
        sim = self.sim
        with sim.lock:
            sim.requests[command.name] += 1
        auth = self.headers.get("Authorization", "")
        expected = f"Bearer {sim.token}"
        if sim.token and not hmac.compare_digest(auth.encode(), expected.encode()):
            raise SimError(ErrorCode.UNAUTHORIZED, "Missing or wrong bearer token.")
        version = self.headers.get(protocol.VERSION_HEADER)
        if version and version.split(".", 1)[0] != protocol.PROTOCOL_VERSION:
            raise SimError(
                ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                f"Protocol {version} not supported; this instance speaks {protocol.PROTOCOL_REVISION}.",
            )
        if sim.latency_ms > 0:
            time.sleep(sim.latency_ms / 1000.0)
        if sim.error_rate > 0 and sim.rng.random() < sim.error_rate:
            raise SimError(ErrorCode.INTERNAL, "Injected failure.")
        query = self._query(command, qs)
        body = {}
        if command.request is not None:
            if raw.strip():
                try:
                    body = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    raise SimError(ErrorCode.INVALID_REQUEST, "Body is not JSON.") from None
            errors = protocol.schema_errors("request", command.name, body)
            if errors:
                raise SimError(ErrorCode.INVALID_REQUEST, "; ".join(errors[:5]))
        handler = getattr(sim, f"cmd_{command.name}")
        status, data = handler(params, query, body)
        self._ok(status, data)

    @staticmethod
    def _query(command, qs):
        query = {}
        for key, values in qs.items():
            value = values[-1]
            if key in ("limit", "after_seq"):
                try:
                    value = int(value)
                except ValueError:
                    raise SimError(ErrorCode.INVALID_REQUEST, f"{key}: not an integer") from None
            query[key] = value
        if command.query is not None:
            errors = protocol.schema_errors("query", command.name, query)
            if errors:
                raise SimError(ErrorCode.INVALID_REQUEST, "; ".join(errors[:5]))
        return query

    def _sim_endpoint(self, method, path, qs, raw):
        sim = self.sim
        segments = [s for s in path.split("/") if s][1:]
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise SimError(ErrorCode.INVALID_REQUEST, "Body is not JSON.") from None
        if not isinstance(body, dict):
            raise SimError(ErrorCode.INVALID_REQUEST, "Body must be a JSON object.")
        arg = lambda name: (qs.get(name) or [body.get(name)])[-1]  # noqa: E731
        match segments:
            case ["scan", login_id]:
                data = sim.scan(login_id)
                if "text/html" in self.headers.get("Accept", ""):
                    self._send(
                        200,
                        f"<html><body><p>Scanned login {login_id}.</p>"
                        f"<p><a href='/sim/confirm/{login_id}'>Confirm login</a></p></body></html>",
                        content_type="text/html",
                    )
                    return
            case ["confirm", login_id]:
                data = sim.confirm(login_id, account_id=arg("account_id"), need_verify=str(arg("need_verify")) in ("1", "true", "True"))
            case ["stats"]:
                data = sim.stats()
            case ["inject"] if method == "POST":
                data = sim.inject(**body)
            case ["chatter"] if method == "POST":
                count = body.get("count", 1)
                if not isinstance(count, int) or not 0 < count <= 10_000:
                    raise SimError(ErrorCode.INVALID_REQUEST, "count: an integer from 1 to 10000")
                if body.get("account_id"):
                    sim._account(body["account_id"])
                events = sim.chatter(count, body.get("account_id"), bool(body.get("is_history")), body.get("conversation_type"))
                data = {"emitted": len(events), "seqs": [e["seq"] for e in events]}
            case ["accounts", aid, "ban"] if method == "POST":
                sim._account(aid)
                data = sim.ban(aid)
            case ["accounts", aid, "abnormal"] if method == "POST":
                sim._account(aid)
                data = sim.mark_abnormal(aid) or {}
            case ["accounts", aid, "contacts"] if method == "POST":
                data = sim.add_contact(aid, body.get("name"))
            case ["accounts", aid, "changes"] if method == "POST":
                data = {"events": sim.churn(aid)}
            case ["client-exit"] if method == "POST":
                sim.client_exit(body.get("reason") or "crash")
                data = {"client_running": sim.client_running}
            case ["heartbeat"] if method == "POST":
                data = sim.heartbeat()
            case _:
                raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No simulator endpoint {method} {path}.")
        self._ok(200, data)
