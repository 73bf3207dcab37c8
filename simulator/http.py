"""The simulator's HTTP layer: routing requests to the protocol commands and the `/sim/`
endpoints, and writing answers."""
from __future__ import annotations

import hmac
import json
import logging
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from instances import protocol
from instances.protocol import ErrorCode
from simulator.base import (
    _ROUTES,
    RUNTIME,
    RUNTIME_VERSION,
    SimError,
)

if TYPE_CHECKING:
    from simulator.server import Simulator

logger = logging.getLogger("simulator")


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
