"""InstanceClient against the simulator and against scripted transports."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import httpx
import pytest

from instances import client as client_module
from instances import exceptions as exc
from instances import protocol
from instances.client import InstanceClient, Page, build_proxy_url
from simulator import Simulator
from simulator.testing import unused_port

TOKEN = "test-token"


@pytest.fixture
def sim():
    s = Simulator(token=TOKEN, accounts=2, contacts=30, rooms=4, members=6, seed=7, send_delay_ms=10)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(sim, sleeps):
    c = InstanceClient(sim.url, token=TOKEN, timeout=5, sleep=sleeps.append, backoff_base_s=0.01)
    yield c
    c.close()


def scripted(responses, calls):
    """A MockTransport answering the given (status, body|exception) items in order."""

    def handler(request):
        calls.append(request)
        item = responses.pop(0) if len(responses) > 1 else responses[0]
        if isinstance(item, Exception):
            raise item
        status, body, *headers = item
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers=(headers[0] if headers else {}))

    return httpx.MockTransport(handler)


def ok(data, status=200):
    return (status, {"ok": True, "data": data, "error": None})


def err(code, status, retry_after=None, message="boom"):
    return (status, {"ok": False, "data": None, "error": {"code": code, "message": message, "retry_after_s": retry_after}})


HEALTH = {
    "runtime": "x",
    "client_version": "1",
    "protocol_version": "1.0",
    "uptime_s": 1,
    "accounts": [],
    "queue_depth": 0,
    "client_running": True,
}


def make(responses, calls, **kw):
    kw.setdefault("sleep", lambda s: None)
    return InstanceClient("http://instance.test", token="t", transport=scripted(responses, calls), **kw)


# ----------------------------------------------------------------------------- commands


def test_each_command_against_simulator(sim, client):
    health = client.health()
    assert health["runtime"] == "wework-simulator"
    assert {a["status"] for a in health["accounts"]} == {"online"}
    assert "text" in client.capabilities()["send_types"]

    accounts = client.list_accounts()
    assert [a["account_id"] for a in accounts] == list(sim.accounts)
    aid = accounts[0]["account_id"]

    page = client.list_contacts(aid, limit=10)
    assert isinstance(page, Page) and len(page.items) == 10 and page.next_cursor
    all_contacts = [c for p in client.iter_contacts(aid, limit=7) for c in p.items]
    assert len(all_contacts) == 30 == len({c["contact_id"] for c in all_contacts})

    rooms = [r for p in client.iter_rooms(aid) for r in p.items]
    assert len(rooms) == 4
    members = [m for p in client.iter_room_members(aid, rooms[0]["room_id"], limit=4) for m in p.items]
    assert len(members) == rooms[0]["member_count"] == 6

    contact = all_contacts[0]["contact_id"]
    sent = client.send_message(aid, "uuid-1", contact, "single", "text", {"text": "你好"})
    assert sent["status"] == "queued" and sent["duplicate"] is False
    assert client.get_message_status(aid, sent["message_id"])["client_msg_id"] == "uuid-1"
    assert client.get_message_status(aid, "uuid-1")["message_id"] == sent["message_id"]

    room_id = rooms[0]["room_id"]
    mentioned = client.send_message(
        aid, "uuid-2", room_id, "room", "text", {"text": "@all"}, mentions="all", reply_to=sent["message_id"]
    )
    assert mentioned["status"] == "queued"

    login = client.start_login()
    assert login["qrcode"]["content"].startswith(sim.url + "/sim/scan/")
    assert client.get_login(login["login_id"])["status"] == "waiting"
    assert client.cancel_login(login["login_id"])["status"] == "cancelled"
    login2 = client.start_login()
    sim.confirm(login2["login_id"], need_verify=True)
    code = sim.logins[login2["login_id"]]["verify_code"]
    assert client.verify_login(login2["login_id"], code)["status"] == "confirmed"

    applied = client.push_config(heartbeat_interval_s=15, rate_limits={"per_account_per_min": 20})
    assert applied["applied"] == ["heartbeat_interval_s", "rate_limits"]
    assert applied["config"]["rate_limits"]["per_account_per_min"] == 20

    events = client.events_after(0, limit=3)
    assert [e["seq"] for e in events["events"]] == [1, 2, 3] and events["has_more"] is True

    assert client.logout_account(aid)["status"] == "offline"
    assert client.restart() == {"restarting": True}


def test_push_config_proxy_and_clear(client, sim):
    result = client.push_config(proxy={"host": "p.example", "port": 8080, "username": "u", "password": "pw"})
    assert result["config"]["proxy"] == {"host": "p.example", "port": 8080, "username": "u", "password_set": True}
    assert "pw" not in json.dumps(result)
    assert client.push_config(clear_proxy=True)["config"]["proxy"] is None


# ----------------------------------------------------------------------------- retries


def test_idempotent_get_retried_after_5xx_with_growing_backoff():
    calls, slept = [], []
    c = make([err("internal", 500), (503, b"upstream down"), ok(HEALTH)], calls, sleep=slept.append, backoff_base_s=0.1)
    assert c.health()["runtime"] == "x"
    assert len(calls) == 3
    assert 0.05 <= slept[0] <= 0.1 and 0.1 <= slept[1] <= 0.2


def test_retries_give_up_after_max_retries():
    calls = []
    c = make([(500, b"")], calls, max_retries=2)
    with pytest.raises(exc.InstanceInternalError) as info:
        c.health()
    assert len(calls) == 3 and info.value.command == "health" and info.value.status == 500


def test_non_idempotent_commands_are_not_retried():
    for method, args in (("start_login", ()), ("restart", ()), ("verify_login", ("lg", "1")), ("logout_account", ("a",))):
        calls = []
        c = make([err("internal", 500)], calls)
        with pytest.raises(exc.InstanceInternalError):
            getattr(c, method)(*args)
        assert len(calls) == 1, method


def test_get_429_retried_only_when_retry_after_is_short():
    calls, slept = [], []
    c = make([err("rate_limited", 429, retry_after=2), ok(HEALTH)], calls, sleep=slept.append)
    c.health()
    assert len(calls) == 2 and slept[0] >= 2
    calls = []
    c = make([err("rate_limited", 429, retry_after=60)], calls)
    with pytest.raises(exc.RateLimited) as info:
        c.health()
    assert info.value.retry_after_s == 60 and len(calls) == 1


def test_send_429_and_risk_control_are_never_retried():
    for response, cls in ((err("rate_limited", 429, retry_after=1), exc.RateLimited), (err("risk_control", 403), exc.RiskControl)):
        calls = []
        c = make([response], calls)
        with pytest.raises(cls):
            c.send_message("a", "m", "c", "single", "text", {"text": "x"})
        assert len(calls) == 1


class LoseFirstResponse(httpx.HTTPTransport):
    """Forwards every request, but pretends the first send's response was lost (read timeout)."""

    def __init__(self):
        super().__init__()
        self.lost = 0

    def handle_request(self, request):
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/messages") and not self.lost:
            response.read()
            self.lost += 1
            raise httpx.ReadTimeout("lost", request=request)
        return response


def test_send_retried_after_lost_response_is_sent_once(sim):
    transport = LoseFirstResponse()
    c = InstanceClient(sim.url, token=TOKEN, transport=transport, sleep=lambda s: None)
    aid = next(iter(sim.accounts))
    contact = sim.accounts[aid].contacts[0]["contact_id"]
    result = c.send_message(aid, "once-1", contact, "single", "text", {"text": "hi"})
    assert transport.lost == 1
    assert result["duplicate"] is True  # the retry saw the first result
    stats = sim.stats()
    assert stats["receipts"]["once-1"] == 2
    assert stats["distinct_messages"] == 1


def test_send_rate_limited_by_simulator_raises_with_retry_after(sim, client):
    sim.inject(rate_limit_per_min=2)
    aid = next(iter(sim.accounts))
    contact = sim.accounts[aid].contacts[0]["contact_id"]
    client.send_message(aid, "r1", contact, "single", "text", {"text": "1"})
    client.send_message(aid, "r2", contact, "single", "text", {"text": "2"})
    with pytest.raises(exc.RateLimited) as info:
        client.send_message(aid, "r3", contact, "single", "text", {"text": "3"})
    assert 1 <= info.value.retry_after_s <= 60 and info.value.code == "rate_limited"
    assert sim.stats()["receipts"]["r3"] == 1


def test_error_rate_injection_is_retried_for_gets(sim, sleeps):
    sim.inject(error_rate=1.0)
    c = InstanceClient(sim.url, token=TOKEN, sleep=sleeps.append, max_retries=2)
    with pytest.raises(exc.InstanceInternalError):
        c.health()
    assert len(sleeps) == 2 and sim.requests["health"] == 3


# ----------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    "code,status,cls",
    [
        ("not_logged_in", 409, exc.NotLoggedIn),
        ("account_offline", 409, exc.AccountOffline),
        ("rate_limited", 429, exc.RateLimited),
        ("risk_control", 403, exc.RiskControl),
        ("target_not_found", 404, exc.TargetNotFound),
        ("unsupported_type", 422, exc.UnsupportedType),
        ("media_fetch_failed", 422, exc.MediaFetchFailed),
        ("client_version_mismatch", 409, exc.ClientVersionMismatch),
        ("invalid_request", 400, exc.InvalidRequest),
        ("internal", 500, exc.InstanceInternalError),
        ("unauthorized", 401, exc.InstanceAuthError),
        ("unsupported_protocol_version", 400, exc.ProtocolVersionMismatch),
        ("something_new", 418, exc.InstanceError),
    ],
)
def test_error_codes_map_to_exceptions(code, status, cls):
    c = make([err(code, status, retry_after=99 if code == "rate_limited" else None, message="why")], [], max_retries=0)
    with pytest.raises(cls) as info:
        c.start_login()
    assert type(info.value) is cls
    assert info.value.code == code and info.value.message == "why" and info.value.status == status
    assert info.value.as_dict()["code"] == code


def test_every_protocol_error_code_has_an_exception():
    for code in protocol.INSTANCE_ERROR_CODES:
        assert exc.EXCEPTION_BY_CODE[code].code == code


@pytest.mark.parametrize(
    "response,cls",
    [
        ((401, b"no"), exc.InstanceAuthError),
        ((403, b""), exc.InstanceAuthError),
        ((429, b"slow down", {"Retry-After": "7"}), exc.RateLimited),
        ((502, b"<html>bad gateway</html>"), exc.InstanceInternalError),
        ((200, b"not json"), exc.InvalidResponse),
        ((404, b"nope"), exc.InvalidResponse),
        ((200, {"ok": True, "data": {"runtime": "x"}}), exc.InvalidResponse),
        ((200, {"ok": True, "data": HEALTH}, {protocol.VERSION_HEADER: "2.0"}), exc.ProtocolVersionMismatch),
    ],
)
def test_responses_without_envelope_or_off_protocol(response, cls):
    c = make([response], [], max_retries=0)
    with pytest.raises(cls) as info:
        c.health()
    if response[0] == 429:
        assert info.value.retry_after_s == 7


def test_simulator_errors_map_to_exceptions(sim, client):
    aid = next(iter(sim.accounts))
    with pytest.raises(exc.TargetNotFound):
        client.list_contacts("wxid_nobody")
    with pytest.raises(exc.TargetNotFound):
        client.send_message(aid, "x1", "wxid_stranger", "single", "text", {"text": "hi"})
    with pytest.raises(exc.InstanceAuthError):
        InstanceClient(sim.url, token="wrong").health()
    with pytest.raises(exc.InstanceAuthError):
        InstanceClient(sim.url).health()
    client.logout_account(aid)
    with pytest.raises(exc.NotLoggedIn):
        client.list_contacts(aid)
    other = list(sim.accounts)[1]
    sim.client_exit()
    with pytest.raises(exc.AccountOffline):
        client.list_rooms(other)


def test_bad_input_is_refused_locally_without_a_call():
    calls = []
    c = make([ok(HEALTH)], calls)
    with pytest.raises(exc.InvalidRequest, match="content"):
        c.send_message("a", "m", "c", "single", "text", {"txt": "typo"})
    with pytest.raises(exc.InvalidRequest, match="conversation_type"):
        c.send_message("a", "m", "c", "group", "text", {"text": "x"})
    with pytest.raises(exc.InvalidRequest):
        c.send_message("a", "m", "c", "single", "sticker", {"id": 1})
    with pytest.raises(exc.InvalidRequest, match="limit"):
        c.list_contacts("a", limit=501)
    with pytest.raises(exc.InvalidRequest, match="account_id"):
        c.list_contacts("")
    with pytest.raises(exc.InvalidRequest):
        c.push_config(heartbeat_interval_s=0)
    assert calls == []


@pytest.mark.parametrize("url", [None, "", "   ", "ftp://x", "localhost:8601"])
def test_bad_api_url(url):
    with pytest.raises(exc.InvalidRequest):
        InstanceClient(url)


def test_api_url_with_version_suffix_is_normalised():
    assert InstanceClient("http://h:1/v1/").api_url == "http://h:1"


# ----------------------------------------------------------------------------- transport failures


def test_unreachable_port_raises_instance_unreachable_after_retries():
    slept = []
    c = InstanceClient(f"http://127.0.0.1:{unused_port()}", token="t", sleep=slept.append, max_retries=2)
    with pytest.raises(exc.InstanceUnreachable) as info:
        c.health()
    assert len(slept) == 2 and info.value.code == "unreachable"
    with pytest.raises(exc.InstanceUnreachable):
        c.start_login()
    assert len(slept) == 2  # not retried


@pytest.fixture
def silent_server():
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted = []
    stop = threading.Event()

    def loop():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    sock.close()


def test_read_timeout_raises_instance_timeout(silent_server):
    c = InstanceClient(silent_server, token="t", timeout=0.2, max_retries=1, sleep=lambda s: None)
    started = time.monotonic()
    with pytest.raises(exc.InstanceTimeout) as info:
        c.health()
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 2


def test_latency_beyond_timeout_against_simulator(sim):
    sim.inject(latency_ms=400)
    c = InstanceClient(sim.url, token=TOKEN, timeout=0.1, max_retries=0)
    with pytest.raises(exc.InstanceTimeout):
        c.health()


def test_no_httpx_exception_escapes():
    def boom(request):
        raise httpx.RemoteProtocolError("garbage", request=request)

    c = InstanceClient("http://x.test", transport=httpx.MockTransport(boom), max_retries=0)
    with pytest.raises(exc.InstanceUnreachable):
        c.health()


# ----------------------------------------------------------------------------- proxy


def test_build_proxy_url_quotes_credentials():
    assert build_proxy_url("proxy.local", 3128) == "http://proxy.local:3128"
    assert build_proxy_url("proxy.local", "3128", "us er", "p@ss:w/rd") == "http://us%20er:p%40ss%3Aw%2Frd@proxy.local:3128"
    assert build_proxy_url("socks5://p", 1080, "u") == "socks5://u@p:1080"
    assert build_proxy_url(None, 3128) is None
    for port in (None, "x", 0, 70000):
        with pytest.raises(exc.InvalidRequest):
            build_proxy_url("h", port)


@pytest.fixture
def recording_proxy():
    """A forward proxy stub: records the request line and Proxy-Authorization, answers health."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append({"path": self.path, "auth": self.headers.get("Proxy-Authorization")})
            body = json.dumps({"ok": True, "data": HEALTH}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_requests_go_through_the_proxy_with_auth(recording_proxy):
    import base64

    port, seen = recording_proxy
    c = InstanceClient(
        "http://instance.internal:8601",
        token="t",
        proxy_host="127.0.0.1",
        proxy_port=port,
        proxy_username="bob",
        proxy_password="s3cr:t",
    )
    assert c.health()["runtime"] == "x"
    assert seen[0]["path"] == "http://instance.internal:8601/v1/health"
    assert seen[0]["auth"] == "Basic " + base64.b64encode(b"bob:s3cr:t").decode()


def test_for_instance_reads_row_and_configs(monkeypatch):
    monkeypatch.setattr(
        client_module,
        "instance_credentials",
        lambda instance: {"api_token": "tok", "webhook_secret": "sec", "request_timeout_s": "2.5", "connect_timeout_s": None},
    )
    row = SimpleNamespace(
        api_url="http://10.0.0.5:8601",
        proxy_host="proxy",
        proxy_port=3128,
        proxy_username="u",
        proxy_password_encrypted="pw",
        name="inst-1",
    )
    c = InstanceClient.for_instance(row, max_retries=0)
    assert c.token == "tok" and c.timeout == 2.5 and c.connect_timeout == client_module.DEFAULT_CONNECT_TIMEOUT_S
    assert c.proxy_url == "http://u:pw@proxy:3128" and c.max_retries == 0 and repr(c) == "<InstanceClient inst-1>"
    row.api_url = None
    with pytest.raises(exc.InvalidRequest):
        InstanceClient.for_instance(row)


def test_bearer_and_version_headers_sent():
    calls = []
    c = make([ok(HEALTH)], calls)
    c.health()
    assert calls[0].headers["Authorization"] == "Bearer t"
    assert calls[0].headers[protocol.VERSION_HEADER] == protocol.PROTOCOL_REVISION


@pytest.mark.django_db
def test_for_instance_with_a_real_row_decrypts_token_and_proxy_password(sim):
    from instances.tests.factories import InstanceConfigFactory, WeworkInstanceFactory
    from wework.db.fields import field_cipher

    def enc(text):
        return field_cipher().encrypt(text.encode()).decode()

    instance = WeworkInstanceFactory(
        api_url=sim.url, proxy_host="proxy.lan", proxy_port=3128, proxy_username="u", proxy_password_encrypted="p w"
    )
    InstanceConfigFactory(instance=instance, config_key="api_token", config_value=enc(TOKEN), is_encrypted=True)
    InstanceConfigFactory(instance=instance, config_key="webhook_secret", config_value=enc("whsec"), is_encrypted=True)
    InstanceConfigFactory(instance=instance, config_key="request_timeout_s", config_value="4", config_type="number")
    # not bound to the instance's address (issue 12): no secret is handed out
    assert client_module.instance_credentials(instance)["api_token"] is None
    from instances import binding

    InstanceConfigFactory(instance=instance, config_key=binding.BINDING_KEY,
                          config_value=binding.fingerprint_of(instance))
    creds = client_module.instance_credentials(instance)
    assert creds == {"api_token": TOKEN, "webhook_secret": "whsec", "request_timeout_s": "4", "connect_timeout_s": None}
    instance.refresh_from_db()
    c = InstanceClient.for_instance(instance)
    assert c.proxy_url == "http://u:p%20w@proxy.lan:3128" and c.timeout == 4.0 and c.label == instance.name
    direct = InstanceClient.for_instance(instance, proxy_host=None)
    assert direct.health()["runtime"] == "wework-simulator"
