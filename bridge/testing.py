"""Helpers for tests and the benchmark: the real puppet-service server with the mock puppet
(tools/puppet-service/launcher.mjs) and the bridge as a separate process (so a test can kill it
with SIGKILL). Nothing here is used by the bridge itself."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools" / "puppet-service"


def unused_port(host="127.0.0.1"):
    """A port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EventSink:
    """A webhook receiver that answers 200 and keeps the events (the benchmark's platform)."""

    def __init__(self):
        self.events = []
        self.requests = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                document = json.loads(body)
                # a batched delivery (protocol 1.2) is {"events": [...]}; one event is the body itself
                batch = document["events"] if "events" in document and "event_id" not in document else [document]
                with sink.lock:
                    sink.events.extend(batch)
                    sink.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhook"
        threading.Thread(target=self.httpd.serve_forever, args=(0.1,), daemon=True).start()

    def count(self, type_):
        with self.lock:
            return sum(1 for e in self.events if e["type"] == type_)

    def clear(self):
        with self.lock:
            self.events.clear()
            self.requests = 0

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def missing_setup():
    """Why the puppet-service tools cannot run here (None when they can)."""
    if shutil.which("node") is None:
        return "node is not installed (the puppet-service bridge's tests need node and npm)"
    if not (TOOLS / "node_modules" / "wechaty-puppet-service").is_dir():
        return "tools/puppet-service/node_modules is missing: run scripts/setup-bridge"
    if not (ROOT / "bridge" / "_stubs" / "wechaty-root-ca.pem").exists():
        return "the puppet-service stubs are missing: run scripts/setup-bridge"
    return None


class PuppetServiceMock:
    """``node launcher.mjs``: one puppet-service server per token, and its control API."""

    def __init__(self, servers):
        self.servers = list(servers)  # [(token, port)]
        self.proc = None
        self.control = None

    def start(self, timeout=60):
        args = ["node", str(TOOLS / "launcher.mjs"), "--exit-with-stdin"]
        for token, port in self.servers:
            args += ["--server", f"{token}@{port}"]
        self.proc = subprocess.Popen(args, cwd=TOOLS, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the puppet-service launcher exited ({self.proc.wait(timeout)})")
        info = json.loads(line)
        self.control = httpx.Client(base_url=f"http://127.0.0.1:{info['control_port']}", timeout=timeout,
                                    trust_env=False)
        return self

    def ctl(self, path, token=None, **body):
        if token:
            body["token"] = token
        response = self.control.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def stop(self):
        if self.control:
            self.control.close()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class BridgeProcess:
    """``python -m bridge`` in its own process."""

    def __init__(self, port, token, state, providers, **options):
        self.port = port
        self.token = token
        self.state = str(state)
        self.providers = providers  # [(token, port)]
        self.options = options
        self.proc = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout=30):
        args = [sys.executable, "-m", "bridge", "--port", str(self.port), "--token", self.token, "--state", self.state]
        for token, port in self.providers:
            args += ["--provider", f"{token}@127.0.0.1:{port}"]
        for key, value in self.options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"the bridge did not start: {line!r} (exit {self.proc.poll()})")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the providers' streams attach shortly after
            health = httpx.get(f"{self.url}/v1/health", headers={"Authorization": f"Bearer {self.token}"}).json()
            if health["ok"]:
                return self
            time.sleep(0.1)
        return self

    def kill(self):
        """SIGKILL: no clean-up of any kind, as a crash or the OOM killer would."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
