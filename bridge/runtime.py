"""The bridge: our instance protocol on one side, puppet-service providers on the other.

The platform sees one instance whose accounts are the accounts logged in through the
providers (one token each). This module keeps what puppet-service does not:
- numbered, durable, replayable events (the outbox in ``store``), pushed by ``delivery``;
- sends idempotent by ``client_msg_id`` (``store.sends``), one sender thread per token that
  calls the provider for each queued send exactly once; an ambiguous failure (no answer after
  the call left) is settled by the provider's echo of the message, never by sending again;
- logins, heartbeats (with the providers' liveness) and stream-gap reports.
Commands (``cmd_*``) and data mapping live in ``bridge.commands``.
"""

from __future__ import annotations

import logging
import threading
import time

import grpc

from bridge import delivery
from bridge.commands import Commands
from bridge.errors import Mapped, map_rpc_error
from bridge.provider import Provider
from bridge.store import Store, now_ms
from instances.protocol import DEFAULT_HEARTBEAT_INTERVAL_S, ErrorCode, EventType

logger = logging.getLogger("bridge")

RUNTIME = "wework-puppet-bridge"
RUNTIME_VERSION = "1.0"
# How long an ambiguous send waits for the provider's echo before it is reported failed
# (outcome unknown): it is never sent again.
ECHO_WAIT_S = 30.0
# The error code of a send whose outcome is unknown (the provider was called, no answer, no
# echo). Not one of the protocol's retryable codes on purpose: the platform fails the receiver
# for good instead of sending it again under a new client_msg_id (a possible duplicate).
OUTCOME_UNKNOWN = "outcome_unknown"


class Bridge(Commands):
    def __init__(self, store_path, *, token, providers=(), instance_id=None, webhook_url=None, webhook_secret=None,
                 heartbeat_interval_s=None, echo_wait_s=ECHO_WAIT_S, ding_interval_s=10.0, send_timeout_s=15.0,
                 retry_base_s=0.5, retry_max_s=30.0, max_delivery_attempts=8, public_url=None, webhook_batch_max=None):
        self.store = Store(store_path)
        # the base of the media URLs in inbound messages (docs/bridge.md); the server fills it in
        # from its address when not given
        self.public_url = public_url
        self.token = token
        self.started_ms = now_ms()
        self.lock = threading.RLock()
        self.echo_wait_s = echo_wait_s
        self.ding_interval_s = ding_interval_s
        self.send_timeout_s = send_timeout_s
        config = self.store.get("config") or {}
        for key, value in (("instance_id", instance_id), ("webhook_url", webhook_url),
                           ("webhook_secret", webhook_secret), ("heartbeat_interval_s", heartbeat_interval_s),
                           ("webhook_batch_max", webhook_batch_max)):
            if value is not None:
                config[key] = value
        config.setdefault("instance_id", "")
        config.setdefault("heartbeat_interval_s", DEFAULT_HEARTBEAT_INTERVAL_S)
        self.config = config
        self.store.put("config", config)
        # providers: the stored list, plus the ones on the command line
        specs = {p["token"]: p for p in self.store.get("providers", [])}
        for spec in providers:
            specs[spec["token"]] = spec
        self.store.put("providers", list(specs.values()))
        self.providers: dict[str, Provider] = {}
        self._specs = specs
        self.logins = {}
        # client_msg_id -> (conversation_id, text or None, deadline, mapped error or None): sends in
        # flight, unsure (mapped error set: failed unless the echo comes by the deadline), or sent
        # (no error: only waiting to recognise the echo)
        self.unsure = {}
        self._by_conversation = {}  # conversation_id -> [client_msg_id], oldest first
        self._wake = {}  # token -> threading.Event for its sender
        self._stop = threading.Event()
        self._threads = []
        self._timers = []  # a restart's delayed work (cmd_restart)
        self.deliverer = delivery.Deliverer(self, retry_base_s=retry_base_s, retry_max_s=retry_max_s,
                                            max_attempts=max_delivery_attempts)
        self._heartbeat_due = threading.Event()

    # ---------------------------------------------------------------- lifecycle

    def start(self):
        self._settle_interrupted()
        for spec in self._specs.values():
            self._add_provider(spec)
        for target in (self._heartbeat_loop, self._unsure_loop):
            thread = threading.Thread(target=target, name=target.__name__, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.deliverer.start()
        self.emit(EventType.INSTANCE_STARTED, None, {"reason": "start", "client_version": RUNTIME_VERSION})

    def stop(self):
        self._stop.set()
        for timer in self._timers:
            timer.cancel()
            timer.join(timeout=5)
        self._heartbeat_due.set()
        for event in self._wake.values():
            event.set()
        self.deliverer.stop()
        for provider in list(self.providers.values()):
            provider.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self.store.close()

    def _add_provider(self, spec):
        provider = Provider(self, spec["token"], spec["endpoint"], ca_file=spec.get("ca_file"),
                            server_name=spec.get("server_name") or "insecure", send_timeout_s=self.send_timeout_s,
                            ding_interval_s=self.ding_interval_s)
        self.providers[spec["token"]] = provider
        self._wake[spec["token"]] = threading.Event()
        provider.start()
        thread = threading.Thread(target=self._sender_loop, args=(provider,), name=f"sender-{spec['token'][:12]}",
                                  daemon=True)
        thread.start()
        self._threads.append(thread)
        return provider

    def set_providers(self, specs):
        """Config push of ``puppet_services``: start new tokens, stop removed ones."""
        wanted = {s["token"]: s for s in specs}
        with self.lock:
            for token in list(self.providers):
                if token not in wanted:
                    self.providers.pop(token).stop()
                    self._specs.pop(token, None)
            for token, spec in wanted.items():
                if token not in self.providers:
                    self._specs[token] = spec
                    self._add_provider(spec)
            self.store.put("providers", list(self._specs.values()))

    def _settle_interrupted(self):
        """Sends the previous run left with the provider called and no answer: their outcome is
        unknown. A provider that resumes (the fork) replays the events the bridge missed, the
        echo among them: such sends wait for it as any ambiguous send does. Upstream
        puppet-service does not keep events, so the echo went to a stream nobody read: those are
        reported failed (``outcome_unknown``), never sent again."""
        resumable = {self.store.get(f"account:{t}"): self.store.get(f"resume:{t}", False) for t in self._specs}
        for row in self.store.in_states(("sending", "unsure")):
            if resumable.get(row["account_id"]):
                body = row["body"]
                text = body["content"].get("text") if body["type"] == "text" else None
                self.store.mark_unsure(row["client_msg_id"])
                mapped = Mapped(OUTCOME_UNKNOWN, "the bridge stopped during the call", True)
                self._track(row["client_msg_id"], row["conversation_id"], text,
                            time.monotonic() + self.echo_wait_s, mapped)
                continue
            error = {"code": OUTCOME_UNKNOWN, "retry_after_s": None,
                     "message": "Outcome unknown: the bridge stopped while the provider was sending this message; "
                                "it was not sent again (the provider may have delivered it)."}
            if self.store.finish(row["client_msg_id"], "failed", error=error):
                self._emit_status(row, "failed", error=error)

    # ---------------------------------------------------------------- events

    def emit(self, type_, account_id, data):
        event = self.store.append(type_, account_id, data, self.config.get("instance_id") or "")
        self.deliverer.wake()
        return event

    def provider_for(self, account_id):
        for provider in self.providers.values():
            if provider.account_id == account_id:
                return provider
        return None

    def account_status(self, provider):
        if not provider.logged_in:
            return "offline"
        return "online" if provider.alive() else "offline"

    def _heartbeat_loop(self):
        while not self._stop.is_set():
            self.heartbeat()
            self._heartbeat_due.clear()
            interval = max(1, int(self.config.get("heartbeat_interval_s") or DEFAULT_HEARTBEAT_INTERVAL_S))
            self._heartbeat_due.wait(interval)

    def heartbeat(self):
        accounts = [{"account_id": p.account_id, "status": self.account_status(p)}
                    for p in list(self.providers.values()) if p.account_id]
        depth = self.store.queue_depth()
        self.emit(EventType.INSTANCE_HEARTBEAT, None, {
            "uptime_s": (now_ms() - self.started_ms) // 1000, "accounts": accounts, "queue_depth": depth,
            "client_version": RUNTIME_VERSION,
            # the providers' liveness: every provider answered a ding lately (or none configured)
            "client_running": all(p.alive() for p in self.providers.values()),
            "metrics": {"cpu": self._cpu_percent(), "memory": float(_rss_mb()), "queue_depth": depth,
                        "providers_alive": sum(1 for p in self.providers.values() if p.alive()),
                        "provider_reconnects": sum(p.reconnects for p in self.providers.values())},
        })

    def _cpu_percent(self):
        """The bridge process's CPU use since the previous heartbeat (% of one core)."""
        now, cpu = time.monotonic(), time.process_time()
        last = getattr(self, "_cpu_mark", None)
        self._cpu_mark = (now, cpu)
        if last is None or now <= last[0]:
            return 0.0
        return round(100.0 * (cpu - last[1]) / (now - last[0]), 1)

    def on_provider_down(self, provider):
        if provider.account_id and provider.logged_in:
            self.emit(EventType.ACCOUNT_OFFLINE, provider.account_id,
                      {"account_id": provider.account_id, "reason": "network"})

    def on_stream_gap(self, provider, from_ms, to_ms):
        """No resume: events between these times are lost. Reported as an alert with the window."""
        account = provider.account_id
        logger.warning("provider %s: events between %s and %s are lost (no resume)", provider.endpoint, from_ms, to_ms)
        self.emit(EventType.INSTANCE_STREAM_GAP, None, {
            "account_id": account, "from_ms": from_ms, "to_ms": to_ms,
            "detail": f"The provider at {provider.endpoint} cannot resume its event stream: messages and changes "
                      f"between these times were not received by the bridge."})
        if account and provider.logged_in:
            self.emit(EventType.ACCOUNT_ONLINE, account, {"account_id": account, "profile": None})

    def on_login(self, provider):
        account = provider.account_id
        profile = self.account_profile(provider)
        with self.lock:
            for login in self.logins.values():
                if login["token"] == provider.token and login["status"] not in ("confirmed", "expired", "cancelled"):
                    login.update(status="confirmed", account_id=account)
                    self.emit(EventType.LOGIN_STATUS, account, {"login_id": login["login_id"], "status": "confirmed",
                                                                "account_id": account})
        self.emit(EventType.ACCOUNT_ONLINE, account, {"account_id": account, "profile": profile})
        self._wake[provider.token].set()

    def on_logout(self, provider, detail):
        account = provider.account_id
        if not account:
            return
        kicked = any(word in detail.lower() for word in ("kick", "other device", "banned"))
        if "ban" in detail.lower():
            self.emit(EventType.ACCOUNT_BANNED, account, {"account_id": account, "reason": "provider_logout",
                                                          "detail": detail})
        self.emit(EventType.ACCOUNT_OFFLINE, account, {"account_id": account, "reason": "kicked" if kicked else "logout"})

    def on_scan(self, provider, scan):
        qrcode, status, _at = scan
        mapped = {1: "cancelled", 2: "waiting", 3: "scanned", 4: "scanned", 5: "expired"}.get(status)
        with self.lock:
            for login in self.logins.values():
                if login["token"] != provider.token or login["status"] in ("confirmed", "expired", "cancelled"):
                    continue
                if qrcode:
                    login["qrcode"] = qrcode
                if mapped and mapped != login["status"]:
                    login["status"] = mapped
                    self.emit(EventType.LOGIN_STATUS, None, {"login_id": login["login_id"], "status": mapped,
                                                             "account_id": None})

    # ---------------------------------------------------------------- sending

    def wake_sender(self, account_id):
        provider = self.provider_for(account_id)
        if provider is not None:
            self._wake[provider.token].set()

    def _sender_loop(self, provider):
        wake = self._wake[provider.token]
        while not self._stop.is_set() and self.providers.get(provider.token) is provider:
            wake.clear()  # before reading: a send accepted from here on wakes the wait
            row = self.store.next_queued(provider.account_id) if provider.account_id else None
            if row is None:
                wake.wait(1.0)
                continue
            self._send_one(provider, row)

    def _send_one(self, provider, row):
        cid = row["client_msg_id"]
        if not provider.connected:
            # queued sends wait (durably) for the provider's stream to come back
            self._wake[provider.token].wait(0.2)
            return
        if not provider.logged_in:
            error = {"code": ErrorCode.NOT_LOGGED_IN, "message": "The account is logged out.", "retry_after_s": None}
            if self.store.finish(cid, "failed", error=error, from_states=("queued",)):
                self._emit_status(row, "failed", error=error)
            return
        body = row["body"]
        text = body["content"].get("text") if body["type"] == "text" else None
        if not self.store.mark_sending(cid):
            return
        # registered before the call: the echo can arrive before the call returns
        with self.lock:
            self._track(cid, row["conversation_id"], text)
        try:
            provider.send(body)
        except grpc.RpcError as exc:
            mapped = map_rpc_error(exc)
            if mapped.ambiguous:
                self._await_echo(row, mapped)
                return
            with self.lock:
                self._untrack(cid)
            status = {ErrorCode.RATE_LIMITED: "rate_limited", ErrorCode.RISK_CONTROL: "risk_control"}.get(mapped.code, "failed")
            if self.store.finish(cid, status, error=mapped.as_dict()):
                self._emit_status(row, status, error=mapped.as_dict())
            if mapped.code == ErrorCode.RISK_CONTROL and provider.account_id:
                self.emit(EventType.ACCOUNT_ABNORMAL, provider.account_id, {
                    "account_id": provider.account_id, "reason": "risk_control", "detail": mapped.message})
            return
        # kept a while so its echo is recognised as ours, not reported as a received message
        with self.lock:
            if cid in self.unsure:
                self._track(cid, row["conversation_id"], text, time.monotonic() + self.echo_wait_s)
        sent_at = now_ms()
        if self.store.finish(cid, "sent", sent_at_ms=sent_at):
            self._emit_status(row, "sent", sent_at_ms=sent_at)

    def _await_echo(self, row, mapped):
        cid = row["client_msg_id"]
        self.store.mark_unsure(cid)
        with self.lock:
            if cid not in self.unsure:  # the echo already settled it
                return
            conversation, text = self.unsure[cid][:2]
            self._track(cid, conversation, text, time.monotonic() + self.echo_wait_s, mapped)

    def _track(self, cid, conversation, text, deadline=None, mapped=None):
        """(Re)register a send whose echo is awaited (call with the lock held)."""
        if cid not in self.unsure:
            self._by_conversation.setdefault(conversation, []).append(cid)
        self.unsure[cid] = (conversation, text, deadline, mapped)

    def _untrack(self, cid):
        entry = self.unsure.pop(cid, None)
        if entry is not None:
            waiting = self._by_conversation.get(entry[0], [])
            if cid in waiting:
                waiting.remove(cid)
            if not waiting:
                self._by_conversation.pop(entry[0], None)

    def settle_by_echo(self, conversation_id, text):
        """A message the account itself sent arrived on the stream: if a send to that
        conversation with that text is in flight or unsure, it was sent."""
        with self.lock:
            match = next((cid for cid in self._by_conversation.get(conversation_id, ())
                          if self.unsure[cid][1] is None or self.unsure[cid][1] == text), None)
            if match is None:
                return False
            self._untrack(match)
        row = self.store.send(match)
        if row["state"] not in ("sending", "unsure"):
            return True  # already reported sent: only its echo
        sent_at = now_ms()
        if self.store.finish(match, "sent", sent_at_ms=sent_at):
            self._emit_status(row, "sent", sent_at_ms=sent_at)
        return True

    def _unsure_loop(self):
        while not self._stop.wait(0.5):
            now = time.monotonic()
            with self.lock:
                expired = [(cid, entry) for cid, entry in self.unsure.items() if entry[2] is not None and entry[2] <= now]
                for cid, _entry in expired:
                    self._untrack(cid)
            for cid, entry in expired:
                mapped = entry[3]
                if mapped is None:  # a sent message whose echo never came: nothing to settle
                    continue
                error = {"code": OUTCOME_UNKNOWN, "retry_after_s": None,
                         "message": f"Outcome unknown, not sent again: {mapped.message}; no echo within "
                                    f"{self.echo_wait_s:.0f} s."}
                row = self.store.send(cid)
                if self.store.finish(cid, "failed", error=error):
                    self._emit_status(row, "failed", error=error)

    def _emit_status(self, row, status, *, error=None, sent_at_ms=None):
        data = {"message_id": row["message_id"], "client_msg_id": row["client_msg_id"], "status": status}
        if error:
            data["error"] = error
        if sent_at_ms:
            data["sent_at_ms"] = sent_at_ms
        self.emit(EventType.MESSAGE_STATUS, row["account_id"], data)


def _rss_mb():
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
