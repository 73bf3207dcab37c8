"""The puppet-service bridge (docs/bridge.md) against the real npm puppet-service server with the
mock puppet, each figure next to a raw baseline measured in the same run:

- sends/s through the bridge (HTTP send, stored, provider called, status final) against direct
  gRPC MessageSendText calls to the same server, sequential (one account sends one at a time);
- events/s from the mock's stream to a webhook receiver through the bridge (payload fetched,
  numbered in the outbox, signed, pushed) against a bare gRPC stream reader of the same events;
- a backlog of the same number of events (stored while no webhook was configured) drained to
  the webhook, one event a request and in batches of up to 100 (protocol revision 1.2);
- the bridge's memory (RSS) with 20 tokens against the bridge with none.

    .venv/bin/python bench/bench_bridge.py [--quick]

Needs node and scripts/setup-bridge; no database (the bridge keeps its own SQLite file).
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import grpc  # noqa: E402
import httpx  # noqa: E402
from harness import bench_args, environment_line, report, save_results  # noqa: E402

from bridge.provider import DEFAULT_CA  # noqa: E402
from bridge.stubs import event_pb2, message_pb2, puppet_pb2_grpc  # noqa: E402
from bridge.testing import BridgeProcess, EventSink, PuppetServiceMock, missing_setup, unused_port  # noqa: E402

TOKEN = "bench-token"


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def direct_stub(port, token):
    ca = DEFAULT_CA.read_bytes()
    channel = grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(root_certificates=ca),
                                  [("grpc.ssl_target_name_override", "insecure")])
    return channel, puppet_pb2_grpc.PuppetStub(channel), (("authorization", f"Wechaty {token}"),)


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    raise RuntimeError("timed out")


def drain_backlog(http, mock, receiver, webhook_url, sender, n_events, batch_max):
    """Store n_events in the bridge's outbox with no webhook configured, then configure it (and
    `webhook_batch_max`) and time until the receiver has them all; returns (seconds, requests)."""
    assert http.put("/config", json={"webhook_url": None, "webhook_batch_max": batch_max}).status_code == 200
    first = last_seq(http) + 1
    mock.ctl("/inbound", **{"from": sender, "text": "backlog", "count": n_events})
    wait_for(lambda: last_seq(http, first - 1) >= first + n_events - 1, timeout=120)
    time.sleep(0.5)  # the deliverer is idle, waiting for a webhook URL
    receiver.clear()
    started = time.perf_counter()
    assert http.put("/config", json={"webhook_url": webhook_url}).status_code == 200
    wait_for(lambda: receiver.count("message.received") >= n_events, timeout=120)
    return time.perf_counter() - started, receiver.requests


def last_seq(http, after=0):
    """The outbox's last seq (its pages' last_seq, read up to the end)."""
    while True:
        page = http.get("/events", params={"after_seq": after, "limit": 500}).json()["data"]
        after = page["last_seq"]
        if not page["has_more"]:
            return after


def bench_sends_and_events(n_sends, n_events, tmp):
    port, bare_port, bridge_port = unused_port(), unused_port(), unused_port()
    # puppet-service serves one event stream per server: the bare reader gets a server of its own
    mock = PuppetServiceMock([("insecure_bench", port), ("insecure_bare", bare_port)]).start()
    receiver = EventSink()
    webhook_url = receiver.url
    bridge = None
    try:
        world = mock.ctl("/setup", contacts=50, rooms=1, members=3)
        mock.ctl("/scan")
        mock.ctl("/login")
        bare_world = mock.ctl("/setup", token="insecure_bare", contacts=5, rooms=1, members=3)
        mock.ctl("/login", token="insecure_bare")
        bridge = BridgeProcess(bridge_port, TOKEN, Path(tmp) / "bench.sqlite3", [("insecure_bench", port)],
                               webhook_url=webhook_url, webhook_secret="s", instance_id="bench").start()
        http = httpx.Client(base_url=f"{bridge.url}/v1", headers={"Authorization": f"Bearer {TOKEN}"})
        me, contacts = world["self_id"], world["contact_ids"]
        wait_for(lambda: http.get("/health").json()["data"]["accounts"] and
                 http.get("/health").json()["data"]["accounts"][0]["status"] == "online")

        # sends: through the bridge, until every status is final
        started = time.perf_counter()
        for i in range(n_sends):
            http.post(f"/accounts/{me}/messages", json={
                "client_msg_id": f"b-{i}", "conversation_id": contacts[i % len(contacts)],
                "conversation_type": "single", "type": "text", "content": {"text": f"bench {i}"}})
        wait_for(lambda: http.get(f"/accounts/{me}/messages/b-{n_sends - 1}").json()["data"]["status"] == "sent")
        bridge_rate = n_sends / (time.perf_counter() - started)
        # baseline: the same sends as direct gRPC calls
        channel, stub, metadata = direct_stub(port, "insecure_bench")
        started = time.perf_counter()
        for i in range(n_sends):
            stub.MessageSendText(message_pb2.MessageSendTextRequest(
                conversation_id=contacts[i % len(contacts)], text=f"direct {i}"), metadata=metadata)
        direct_rate = n_sends / (time.perf_counter() - started)
        report("sends through the bridge (HTTP, stored, gRPC, final status)", bridge_rate, "sends/s",
               direct_rate, "sends/s (direct gRPC)")

        # events: mock -> bridge -> webhook, against a bare stream reader of the same server
        count_bare = {"n": 0}
        done_bare = threading.Event()
        channel.close()
        channel, stub, metadata = direct_stub(bare_port, "insecure_bare")
        stream = stub.Event(event_pb2.EventRequest(), metadata=metadata)

        def read_bare():
            for response in stream:
                if response.type == event_pb2.EventType.EVENT_TYPE_MESSAGE:
                    count_bare["n"] += 1
                    if count_bare["n"] >= n_events:
                        done_bare.set()
                        return
        time.sleep(1.0)  # the sends' echoes are through
        receiver.clear()
        reader = threading.Thread(target=read_bare, daemon=True)
        reader.start()
        time.sleep(0.5)
        started = time.perf_counter()
        mock.ctl("/inbound", token="insecure_bare", **{"from": bare_world["contact_ids"][0], "text": "e", "count": n_events})
        done_bare.wait(120)
        bare_s = time.perf_counter() - started
        started = time.perf_counter()
        mock.ctl("/inbound", **{"from": contacts[0], "text": "event", "count": n_events})
        wait_for(lambda: receiver.count("message.received") >= n_events)
        bridge_s = time.perf_counter() - started
        stream.cancel()
        channel.close()
        report("events mock -> bridge -> webhook, one event a request", n_events / bridge_s, "events/s",
               n_events / bare_s, "events/s (bare gRPC stream)")
        # a backlog (the webhook was away): events stored while no webhook is configured, then
        # drained, one event a request and in batches (protocol 1.2, as the config push announces)
        for batch_max in (1, 100):
            drained_s, requests = drain_backlog(http, mock, receiver, webhook_url, contacts[0], n_events, batch_max)
            report(f"backlog of {n_events:,} events drained to the webhook, "
                   + (f"batches of up to {batch_max} ({requests} requests)" if batch_max > 1 else "one event a request"),
                   n_events / drained_s, "events/s", n_events / bare_s, "events/s (bare gRPC stream)")
        http.close()
    finally:
        if bridge:
            bridge.stop()
        receiver.stop()
        mock.stop()


def bench_memory(tokens, tmp):
    ports = [unused_port() for _ in range(tokens)]
    mock = PuppetServiceMock([(f"insecure_m{i}", p) for i, p in enumerate(ports)]).start()
    empty = many = None
    try:
        empty = BridgeProcess(unused_port(), TOKEN, Path(tmp) / "empty.sqlite3", []).start()
        many = BridgeProcess(unused_port(), TOKEN, Path(tmp) / "many.sqlite3",
                             [(f"insecure_m{i}", p) for i, p in enumerate(ports)], ding_interval=2).start()
        health = httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"})
        wait_for(lambda: health.get(f"{many.url}/v1/health").json()["data"]["client_running"], timeout=60)
        time.sleep(3)  # a few dings and heartbeats
        report(f"bridge RSS with {tokens} tokens", rss_mb(many.proc.pid), "MB", rss_mb(empty.proc.pid),
               "MB (the bridge with no token)")
        health.close()
    finally:
        for proc in (many, empty):
            if proc:
                proc.stop()
        mock.stop()


def main():
    args = bench_args(__doc__.split("\n")[0])
    reason = missing_setup()
    if reason:
        print(f"bench_bridge: {reason}", file=sys.stderr)
        return 1
    environment_line()
    n_sends, n_events = (100, 100) if args.quick else (1000, 1000)
    with tempfile.TemporaryDirectory() as tmp:
        bench_sends_and_events(n_sends, n_events, tmp)
        bench_memory(20, tmp)
    save_results(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
