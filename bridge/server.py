"""The bridge's HTTP side: the instance protocol's command API (routes from
``instances.protocol.COMMANDS``), bearer-token auth, the response envelope and the request
schemas, exactly as every runtime answers them."""

from __future__ import annotations

import hmac
import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import grpc

from bridge import media
from bridge.errors import BridgeError
from instances import protocol
from instances.protocol import ErrorCode

logger = logging.getLogger("bridge.server")

ROUTES = [
    (re.compile("^" + protocol.PATH_PREFIX + re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", c.path) + "$"), c)
    for c in protocol.COMMAND_LIST
]
MAX_BODY = 10 * 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "wework-puppet-bridge/1.0"
    timeout = 60

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        logger.debug("%s - %s", self.address_string(), format % args)

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

    def _send(self, status, payload, headers=None):
        raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header(protocol.VERSION_HEADER, protocol.PROTOCOL_REVISION)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, err):
        headers = {}
        if err.retry_after_s is not None:
            headers["Retry-After"] = str(int(err.retry_after_s))
        if err.code == ErrorCode.UNAUTHORIZED:
            headers["WWW-Authenticate"] = "Bearer"
        self._send(protocol.ERROR_HTTP_STATUS.get(err.code, 500), {"ok": False, "data": None, "error": err.as_dict()},
                   headers)

    def _dispatch(self, method):
        try:
            self._command(method)
        except BridgeError as err:
            self._error(err)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:  # a bridge bug: answer like a runtime would, keep serving
            logger.exception("bridge failed on %s %s", method, self.path)
            self._error(BridgeError(ErrorCode.INTERNAL, "Bridge failure."))

    def _media(self, parts):
        """GET /media/<provider key>/<message id>?exp=&sig= (bridge/media.py)."""
        bridge = self.server.bridge
        query = parse_qs(parts.query)
        segments = parts.path.split("/")
        if len(segments) != 4 or not media.check(bridge.token, parts.path, query.get("exp", [None])[-1],
                                                  query.get("sig", [None])[-1]):
            raise BridgeError(ErrorCode.UNAUTHORIZED, "Missing, wrong or expired media signature.")
        provider = next((p for p in list(bridge.providers.values()) if media.provider_key(p.token) == segments[2]), None)
        if provider is None:
            raise BridgeError(ErrorCode.TARGET_NOT_FOUND, "Unknown provider.")
        try:
            status, headers, chunks = media.resolve(provider, unquote(segments[3]))
        except grpc.RpcError as exc:
            raise BridgeError(ErrorCode.TARGET_NOT_FOUND, f"The provider has no such file: {exc.code().name}") from None
        if status != 200:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            if chunk:
                self.wfile.write(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _command(self, method):
        parts = urlsplit(self.path)
        if method == "GET" and parts.path.startswith("/media/"):
            self._media(parts)
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise BridgeError(ErrorCode.INVALID_REQUEST, "Body too large.")
        raw = self.rfile.read(length) if length else b""
        route, allowed = None, []
        for pattern, command in ROUTES:
            match = pattern.match(parts.path)
            if match:
                if command.method == method:
                    route = (command, {k: unquote(v) for k, v in match.groupdict().items()})
                    break
                allowed.append(command.method)
        if route is None:
            if allowed:
                raise BridgeError(ErrorCode.INVALID_REQUEST, f"Method {method} not allowed; use {', '.join(allowed)}.")
            raise BridgeError(ErrorCode.TARGET_NOT_FOUND, f"No such command: {method} {parts.path}.")
        command, params = route
        bridge = self.server.bridge
        auth = self.headers.get("Authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {bridge.token}".encode()):
            raise BridgeError(ErrorCode.UNAUTHORIZED, "Missing or wrong bearer token.")
        version = self.headers.get(protocol.VERSION_HEADER)
        if version and version.split(".", 1)[0] != protocol.PROTOCOL_VERSION:
            raise BridgeError(ErrorCode.UNSUPPORTED_PROTOCOL_VERSION,
                              f"Protocol {version} not supported; this instance speaks {protocol.PROTOCOL_REVISION}.")
        query = {}
        for key, values in parse_qs(parts.query).items():
            value = values[-1]
            if key in ("limit", "after_seq"):
                try:
                    value = int(value)
                except ValueError:
                    raise BridgeError(ErrorCode.INVALID_REQUEST, f"{key}: not an integer") from None
            query[key] = value
        if command.query is not None:
            errors = protocol.schema_errors("query", command.name, query)
            if errors:
                raise BridgeError(ErrorCode.INVALID_REQUEST, "; ".join(errors[:5]))
        body = {}
        if command.request is not None:
            if raw.strip():
                try:
                    body = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    raise BridgeError(ErrorCode.INVALID_REQUEST, "Body is not JSON.") from None
            errors = protocol.schema_errors("request", command.name, body)
            if errors:
                raise BridgeError(ErrorCode.INVALID_REQUEST, "; ".join(errors[:5]))
        status, data = getattr(bridge, f"cmd_{command.name}")(params, query, body)
        self._send(status, {"ok": True, "data": data, "error": None})


class BridgeServer:
    def __init__(self, bridge, host="127.0.0.1", port=0):
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.bridge = bridge
        self.thread = None

    @property
    def url(self):
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        if not self.httpd.bridge.public_url:
            self.httpd.bridge.public_url = self.url
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.2,), name="bridge-http", daemon=True)
        self.thread.start()
        return self.url

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
