"""Test helpers around the simulator: a local webhook receiver and port helpers.

``WebhookReceiver`` is a tiny HTTP server that records every delivery (raw body, headers,
parsed event) and answers with the statuses it is told to (e.g. ``[500, 500]`` then 200s), so
tests can exercise retries and signatures without Django.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from instances import protocol


def unused_port(host="127.0.0.1"):
    """A port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Delivery:
    def __init__(self, body, headers, status):
        self.body = body
        self.headers = headers
        self.status = status
        self.event = json.loads(body) if body else None
        # a batched delivery (protocol 1.2) is {"events": [...]}; one event is the body itself
        if isinstance(self.event, dict) and "events" in self.event and "event_id" not in self.event:
            self.events = list(self.event["events"])
        else:
            self.events = [self.event] if self.event is not None else []

    def signature_ok(self, secret, **kw):
        return protocol.verify(
            self.body,
            secret,
            self.headers.get(protocol.TIMESTAMP_HEADER),
            self.headers.get(protocol.SIGNATURE_HEADER),
            **kw,
        )


class WebhookReceiver:
    """Records POSTs; answers ``statuses`` in order (then ``default_status``).

    ``only_instance``: deliveries whose ``X-Instance-Id`` is another instance's are answered 404
    and not recorded. In a test process other simulators may still be retrying deliveries to a
    port the operating system has since handed to this receiver."""

    def __init__(self, statuses=(), default_status=200, delay_s=0.0, retry_after=None, only_instance=None):
        self.only_instance = only_instance
        self.statuses = list(statuses)
        self.default_status = default_status
        self.delay_s = delay_s
        self.retry_after = retry_after
        self.deliveries = []
        self.lock = threading.Lock()
        self._server = None
        self._thread = None
        self.url = None

    def start(self, path="/webhook"):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.only_instance and self.headers.get(protocol.INSTANCE_ID_HEADER) != receiver.only_instance:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.default_status
                    receiver.deliveries.append(Delivery(body, dict(self.headers), status))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                payload = b'{"ok":true}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if status == 429 and receiver.retry_after is not None:
                    self.send_header("Retry-After", str(receiver.retry_after))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{path}"
        return self.url

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def accepted_events(self):
        """Events whose delivery was answered 2xx, in arrival order."""
        with self.lock:
            return [event for d in self.deliveries if 200 <= d.status < 300 for event in d.events]

    def wait_for(self, predicate, timeout=5.0, interval=0.02):
        """Wait until ``predicate(self)`` is true; returns its last value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value or time.monotonic() >= deadline:
                return value
            time.sleep(interval)


def wait_until(predicate, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
