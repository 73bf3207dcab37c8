"""The bridge against the real puppet-service server with the mock puppet, without the platform:
idempotent sends, ambiguous failures settled by the echo, error mapping, capability refusals,
replay, auth, logout, and restart with a durable outbox."""
import base64
import time

import grpc
import httpx
import pytest

from bridge.errors import map_rpc_error
from bridge.runtime import Bridge
from bridge.server import BridgeServer
from instances import protocol

TOKEN = "bridge-test-token"


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


class Running:
    def __init__(self, path, port, **kw):
        self.bridge = Bridge(str(path), token=TOKEN, ding_interval_s=1,
                             providers=[{"token": "insecure_bridge_test", "endpoint": f"127.0.0.1:{port}"}], **kw)
        self.server = BridgeServer(self.bridge, port=0)
        self.bridge.start()
        self.http = httpx.Client(base_url=self.server.start() + "/v1", headers={"Authorization": f"Bearer {TOKEN}"})

    def stop(self):
        self.http.close()
        self.server.stop()
        self.bridge.stop()

    def send(self, account, cid, to, text="hi", **extra):
        body = {"client_msg_id": cid, "conversation_id": to, "conversation_type": "single", "type": "text",
                "content": {"text": text}, **extra}
        return self.http.post(f"/accounts/{account}/messages", json=body)

    def status(self, account, cid):
        return self.http.get(f"/accounts/{account}/messages/{cid}").json()["data"]

    def events(self, type_=None):
        events = self.http.get("/events", params={"after_seq": 0}).json()["data"]["events"]
        return [e for e in events if type_ is None or e["type"] == type_]


@pytest.fixture
def world(puppet_mock):
    w = puppet_mock.ctl("/setup", contacts=4, rooms=1, members=2)
    puppet_mock.ctl("/scan")
    puppet_mock.ctl("/login")
    return w


@pytest.fixture
def running(puppet_mock, world, ports, tmp_path):
    r = Running(tmp_path / "b.sqlite3", ports[0], echo_wait_s=5, send_timeout_s=1.0)
    wait_for(lambda: r.bridge.provider_for(world["self_id"]) and r.bridge.provider_for(world["self_id"]).connected)
    yield r
    r.stop()


def test_a_resent_client_msg_id_is_answered_from_the_store_and_sent_once(running, world, puppet_mock):
    me, to = world["self_id"], world["contact_ids"][0]
    first = running.send(me, "c-1", to).json()["data"]
    assert first["status"] == "queued" and not first["duplicate"]
    wait_for(lambda: running.status(me, "c-1")["status"] == "sent")
    again = running.send(me, "c-1", to).json()["data"]
    assert again == {**first, "status": "sent", "duplicate": True}
    assert len(puppet_mock.ctl("/received")["received"]) == 1
    # the echo of our own send is not reported as a received message
    assert not [e for e in running.events("message.received") if e["data"]["is_self"]]
    assert all(protocol.event_errors(e) == [] for e in running.events())


def test_an_ambiguous_failure_is_settled_by_the_echo_not_by_sending_again(running, world, puppet_mock):
    me, to = world["self_id"], world["contact_ids"][1]
    # the provider sends, then answers after the bridge's deadline: DEADLINE_EXCEEDED
    puppet_mock.ctl("/faults", hang_next=1, hang_ms=2500)
    running.send(me, "c-amb", to, text="ambiguous")
    status = wait_for(lambda: (lambda s: s if s["status"] != "queued" else None)(running.status(me, "c-amb")))
    assert status["status"] == "sent"
    assert [r["conversation_id"] for r in puppet_mock.ctl("/received")["received"]] == [to]


def test_provider_errors_map_onto_protocol_codes(running, world, puppet_mock):
    me, to = world["self_id"], world["contact_ids"][2]
    puppet_mock.ctl("/faults", fail_next=1, fail_message="send too frequently, try later")
    running.send(me, "c-rl", to)
    status = wait_for(lambda: (lambda s: s if s["status"] != "queued" else None)(running.status(me, "c-rl")))
    assert status["status"] == "rate_limited" and status["error"]["code"] == "rate_limited"
    assert "too frequently" in status["error"]["message"]  # the provider's text is kept
    puppet_mock.ctl("/faults", fail_next=1, fail_message="account banned by risk control")
    running.send(me, "c-rc", to)
    status = wait_for(lambda: (lambda s: s if s["status"] != "queued" else None)(running.status(me, "c-rc")))
    assert status["status"] == "risk_control"
    # the event is emitted just after the send's final status is stored: wait for it
    abnormal = wait_for(lambda: running.events("account.abnormal"))
    assert abnormal[0]["data"]["reason"] == "risk_control"


@pytest.mark.parametrize("details, code", [
    ("not logged in", "not_logged_in"), ("MockContact.load(): x not exist.", "target_not_found"),
    ("something odd", "internal"), ("消息发送过于频繁", "rate_limited"), ("该账号已被封号", "risk_control"),
])
def test_map_rpc_error_by_text(details, code):
    class Err(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNKNOWN

        def details(self):
            return details
    assert map_rpc_error(Err()).code == code
    assert not map_rpc_error(Err()).ambiguous


def test_refusals_are_clear_and_not_remembered(running, world):
    me, room = world["self_id"], world["room_ids"][0]
    answer = running.http.post(f"/accounts/{me}/messages", json={
        "client_msg_id": "c-all", "conversation_id": room, "conversation_type": "room", "type": "text",
        "content": {"text": "x"}, "mentions": "all"})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "unsupported_type"
    assert running.http.get(f"/accounts/{me}/messages/c-all").status_code == 404
    assert running.send(me, "c-x", "wxid", text="").status_code == 400  # off-schema: invalid_request
    assert httpx.get(str(running.http.base_url).rstrip("/") + "/health").status_code == 401


def test_logout_then_sends_are_refused_and_restart_keeps_the_outbox(running, world, puppet_mock, ports, tmp_path):
    me = world["self_id"]
    assert running.http.post(f"/accounts/{me}/logout").json()["data"]["status"] == "offline"
    wait_for(lambda: running.events("account.offline"))
    answer = running.send(me, "c-out", world["contact_ids"][0])
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "not_logged_in"
    last = running.events()[-1]["seq"]
    running.stop()
    again = Running(tmp_path / "b.sqlite3", ports[0])
    try:
        events = again.events()
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] > last  # numbered on, no holes
    finally:
        again.stop()


def test_batch_send_takes_each_item_as_a_single_send(running, world, puppet_mock):
    me, contacts = world["self_id"], world["contact_ids"]
    running.send(me, "b-0", contacts[0])
    items = [
        {"client_msg_id": "b-0", "conversation_id": contacts[0], "conversation_type": "single", "type": "text",
         "content": {"text": "hi"}},
        {"client_msg_id": "b-1", "conversation_id": contacts[1], "conversation_type": "single", "type": "text",
         "content": {}},
        {"client_msg_id": "b-2", "conversation_id": contacts[2], "conversation_type": "single", "type": "link",
         "content": {"title": "t", "url": "https://example.com/a"}},
    ]
    results = running.http.post(f"/accounts/{me}/messages/batch", json={"messages": items}).json()["data"]["results"]
    assert [r["client_msg_id"] for r in results] == ["b-0", "b-1", "b-2"]
    assert results[0]["duplicate"] and results[1]["status"] == "failed"
    assert results[1]["error"]["code"] == "invalid_request" and results[2]["status"] == "queued"
    wait_for(lambda: running.status(me, "b-2")["status"] == "sent")
    methods = [r["method"] for r in puppet_mock.ctl("/received")["received"]]
    assert methods == ["messageSendText", "messageSendUrl"]


def test_provider_liveness_reconnect_and_restart(running, world, puppet_mock, ports):
    me = world["self_id"]
    health = lambda: running.http.get("/health").json()["data"]  # noqa: E731
    assert health()["client_running"] and health()["accounts"] == [{"account_id": me, "status": "online"}]
    # POST /v1/restart re-opens the stream: upstream cannot resume, so the window is reported
    assert running.http.post("/restart", json={"reason": "admin"}).status_code == 202
    gap = wait_for(lambda: running.events("instance.stream_gap"))[0]
    assert gap["data"]["account_id"] == me and gap["data"]["from_ms"] <= gap["data"]["to_ms"]
    assert {"instance.client_exited", "instance.started"} <= {e["type"] for e in running.events()}
    # the provider goes away: the account goes offline (network), heartbeats say not running.
    # The restart above already reported one such offline (the stream it dropped): wait for
    # the next, not for any.
    network_offline = lambda: [e for e in running.events("account.offline") if e["data"]["reason"] == "network"]  # noqa: E731
    before = len(network_offline())
    puppet_mock.stop()
    wait_for(lambda: len(network_offline()) > before)
    assert not health()["client_running"]
    running.bridge.heartbeat()
    assert running.events("instance.heartbeat")[-1]["data"]["client_running"] is False


def test_inbound_files_are_served_at_signed_urls(running, world, puppet_mock):
    sender = world["contact_ids"][0]
    data = b"\x89PNG fake image bytes"
    puppet_mock.ctl("/inbound", **{"from": sender, "file_base64": base64.b64encode(data).decode(), "file_name": "a.png"})
    puppet_mock.ctl("/inbound", **{"from": sender, "file_url": "https://files.example.com/clip.mp4",
                                   "file_name": "clip.mp4"})
    received = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(running.events("message.received")))
    image, video = (e["data"] for e in received)
    assert (image["type"], video["type"]) == ("image", "video")
    assert all(protocol.event_errors(e) == [] for e in received)
    assert httpx.get(image["content"]["url"]).content == data
    redirect = httpx.get(video["content"]["url"])
    assert redirect.status_code == 302 and redirect.headers["location"] == "https://files.example.com/clip.mp4"
    forged = image["content"]["url"].replace("sig=", "sig=0")
    assert httpx.get(forged).status_code == 401


def test_card_link_and_location_content_come_from_the_provider_payload_calls():
    """The mock puppet cannot send these inbound: the mapping is checked on the payloads the
    provider's calls return (their real message types)."""
    from bridge.commands import Commands
    from bridge.stubs import location_pb2, message_pb2, url_link_pb2

    class Provider:
        def message_contact(self, message_id):
            return "wxid_card"

        def message_link(self, message_id):
            return url_link_pb2.UrlLinkPayload(title="T", url="https://example.com/a", description="D")

        def message_location(self, message_id):
            if message_id == "bad":
                raise grpc.RpcError()
            return location_pb2.LocationPayload(latitude=31.2, longitude=121.5, name="Office")

    m = message_pb2.MessagePayloadResponse(id="m", text="")
    assert Commands._attachment(Provider(), m, "card") == ({"contact_id": "wxid_card"}, "card")
    link, kind = Commands._attachment(Provider(), m, "link")
    assert kind == "link" and link["url"] == "https://example.com/a" and link["desc"] == "D"
    place, kind = Commands._attachment(Provider(), m, "location")
    assert kind == "location" and place["title"] == "Office"
    for kind, content in (("link", link), ("location", place)):
        assert protocol.schema_errors("content", kind, content) == []
    bad = message_pb2.MessagePayloadResponse(id="bad", text="here")
    assert Commands._attachment(Provider(), bad, "location") == ({"text": "[location] here"}, "text")


def test_every_answer_passes_the_platform_clients_schema_checks(running, world):
    """The platform's own client validates each response against the protocol's schemas
    (InvalidResponse otherwise): the bridge answers every command as a runtime must."""
    from instances.client import InstanceClient

    client = InstanceClient(str(running.http.base_url).removesuffix("/v1/").removesuffix("/v1"), token=TOKEN)
    me, room = world["self_id"], world["room_ids"][0]
    assert client.health()["accounts"][0]["account_id"] == me
    assert client.capabilities()["batch_send_max"] == protocol.MAX_BATCH_SEND
    assert "heartbeat_interval_s" in client.push_config(heartbeat_interval_s=60)["applied"]
    assert client.list_accounts()[0]["account_id"] == me
    items = lambda pages: [item for page in pages for item in page.items]  # noqa: E731
    assert len(items(client.iter_contacts(me, limit=2))) == 4  # two pages
    assert [r["room_id"] for r in items(client.iter_rooms(me))] == [room]
    assert len(items(client.iter_room_members(me, room))) == 3
    body = client.message_body("k-1", world["contact_ids"][0], "single", "location", {"latitude": 1.5, "longitude": 2.5})
    assert client.send_messages(me, [body])[0]["status"] == "queued"
    assert client.send_message(me, "k-2", room, "room", "text", {"text": "hi"}, mentions=[world["contact_ids"][0]])
    wait_for(lambda: client.get_message_status(me, "k-2")["status"] == "sent")
    assert client.events_after(0)["events"]
    assert client.restart(reason="test")["restarting"]
    client.close()


def test_the_webhook_batch_size_is_checked_when_pushed(running):
    for bad in (0, 501, "100", True, 2.5):
        answer = running.http.put("/config", json={"webhook_batch_max": bad})
        assert answer.status_code == 400, bad
        assert "webhook_batch_max" in answer.json()["error"]["message"]
    assert running.bridge.config.get("webhook_batch_max") is None  # nothing of a refused push applied
    answer = running.http.put("/config", json={"webhook_batch_max": 100})
    assert answer.status_code == 200 and answer.json()["data"]["applied"] == ["webhook_batch_max"]
    assert running.bridge.config["webhook_batch_max"] == 100


def test_a_stop_right_after_a_restart_request_leaves_no_failing_thread(puppet_mock, world, ports, tmp_path):
    """The restart's delayed work is cancelled or waited for: it never writes to a closed store."""
    import threading

    errors = []
    previous, threading.excepthook = threading.excepthook, lambda args: errors.append(args.exc_value)
    try:
        r = Running(tmp_path / "restart.sqlite3", ports[0])
        r.bridge.restart_delay_s = 0.5  # the restart comes due after the stop
        assert r.http.post("/restart", json={"reason": "test"}).status_code == 202
        r.stop()
        time.sleep(0.7)
    finally:
        threading.excepthook = previous
    assert errors == []
