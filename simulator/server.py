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

import logging
import random
import socket
import threading
import time
import uuid
from collections import Counter
from http.server import ThreadingHTTPServer

from instances import protocol
from instances.protocol import ErrorCode, EventType
from simulator.base import (
    DEFAULT_CLIENT_VERSION,
    SimError,
    now_ms,
)
from simulator.commands import CommandsMixin
from simulator.data import build_account
from simulator.events import EventsMixin
from simulator.http import _Handler
from simulator.world import WorldMixin

logger = logging.getLogger("simulator")

__all__ = ["SimError", "Simulator"]


class Simulator(EventsMixin, WorldMixin, CommandsMixin):
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
            # protocol 1.2: events per webhook request, as the platform's config push announces
            "webhook_batch_max": None,
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
