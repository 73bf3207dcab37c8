"""The instance client's standard-library HTTP transport (keep-alive ``http.client``
connections, one per thread) for the hot send path, and the ``Retry-After`` reading both
transports share. :class:`instances.client.InstanceClient` chooses it."""
from __future__ import annotations

import http.client
import json as jsonlib
import socket
import threading
from urllib.parse import urlencode, urlsplit

from instances.exceptions import (
    InstanceTimeout,
    InstanceUnreachable,
)


def retry_after_header(response):
    value = response.headers.get("Retry-After")
    try:
        return max(0, int(float(value))) if value else None
    except ValueError:
        return None


class StdlibResponse:
    """The part of ``httpx.Response`` that :meth:`InstanceClient._parse` reads."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code, headers, content):
        self.status_code = status_code
        self.headers = headers  # http.client.HTTPMessage: case-insensitive .get()
        self.content = content

    def json(self):
        return jsonlib.loads(self.content)


class StdlibHTTP:
    """Keep-alive ``http.client`` connections to one instance, one per thread."""

    def __init__(self, api_url, headers, timeout, connect_timeout):
        parts = urlsplit(api_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.api_url = api_url
        self.headers = dict(headers)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._local = threading.local()
        self._all = []
        self._lock = threading.Lock()

    def _connect(self):
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.connect_timeout)
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise InstanceUnreachable(
                f"Could not connect to {self.api_url} within {self.connect_timeout:g}s."
            ) from None
        except OSError as exc:
            conn.close()
            raise InstanceUnreachable(f"Could not reach {self.api_url}: {exc or type(exc).__name__}") from None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock.settimeout(self.timeout)
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def _drop(self, conn):
        conn.close()
        self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)

    def request(self, method, url, json=None, params=None, idempotent=False):
        path = self.prefix + url
        if params:
            path += "?" + urlencode(params)
        headers = self.headers
        body = None
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers = {**headers, "Content-Type": "application/json"}
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = self._connect()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                content = response.read()
            except TimeoutError:
                self._drop(conn)
                raise InstanceTimeout(f"{self.api_url} did not answer within {self.timeout:g}s.") from None
            except (http.client.HTTPException, OSError) as exc:
                self._drop(conn)
                # A keep-alive connection the instance closed meanwhile: an idempotent command
                # (a send is, by client_msg_id) goes once more on a new connection.
                if reused and idempotent and attempt == 0 and isinstance(
                    exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
                ):
                    continue
                raise InstanceUnreachable(f"Could not reach {self.api_url}: {exc or type(exc).__name__}") from None
            if response.will_close:
                self._drop(conn)
            return StdlibResponse(response.status, response.headers, content)
        raise InstanceUnreachable(f"Could not reach {self.api_url}.")  # pragma: no cover

    def close(self):
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
