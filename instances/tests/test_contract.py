"""Contract test: ``instances/protocol/`` is the single source of truth.

Every command there is implemented by the client (a method of the same name whose parameters
cover the request fields) and by the simulator (a handler), exercised end to end here with the
raw HTTP exchange checked against the protocol's method, path, status, envelope and schemas;
every event type is emitted by the simulator with valid data; every error code answers with
its documented HTTP status; the documentation names every command, event and error code.
"""

import inspect
import re
from pathlib import Path

import httpx
import pytest

from instances import protocol
from instances.client import InstanceClient
from instances.exceptions import EXCEPTION_BY_CODE, InstanceError
from simulator import Simulator
from simulator import base as sim_server
from simulator.testing import WebhookReceiver

TOKEN = "contract-token"
DOC = Path(__file__).resolve().parents[2] / "docs" / "instance-protocol.md"


class RecordingTransport(httpx.HTTPTransport):
    def __init__(self):
        super().__init__()
        self.exchanges = []

    def handle_request(self, request):
        response = super().handle_request(request)
        response.read()
        self.exchanges.append((request, response))
        return response


@pytest.fixture
def sim():
    s = Simulator(token=TOKEN, accounts=2, contacts=12, rooms=3, members=5, send_delay_ms=5, duplicate_rate=0.0)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def recorder():
    return RecordingTransport()


@pytest.fixture
def client(sim, recorder):
    return InstanceClient(sim.url, token=TOKEN, transport=recorder, max_retries=0)


def _ctx(sim):
    acc = next(iter(sim.accounts.values()))
    return {
        "aid": acc.account_id,
        "contact": acc.contacts[0]["contact_id"],
        "room": acc.rooms[0]["room_id"],
    }


# One call per command. Adding a command to protocol/commands.py without a scenario fails the test below.
SCENARIOS = {
    "health": lambda c, s, x: c.health(),
    "capabilities": lambda c, s, x: c.capabilities(),
    "push_config": lambda c, s, x: c.push_config(
        instance_id="inst-1",
        webhook_url="http://127.0.0.1:9/hook",
        webhook_secret="s",
        heartbeat_interval_s=30,
        proxy={"host": "p", "port": 8080, "username": "u", "password": "pw"},
        rate_limits=dict(protocol.DEFAULT_RATE_LIMITS),
    ),
    "restart": lambda c, s, x: c.restart("contract"),
    "start_login": lambda c, s, x: x.setdefault("login", c.start_login()),
    "get_login": lambda c, s, x: c.get_login(x["login"]["login_id"]),
    "verify_login": lambda c, s, x: (
        s.confirm(x["login"]["login_id"], need_verify=True),
        c.verify_login(x["login"]["login_id"], s.logins[x["login"]["login_id"]]["verify_code"]),
    ),
    "cancel_login": lambda c, s, x: c.cancel_login(c.start_login()["login_id"]),
    "list_accounts": lambda c, s, x: c.list_accounts(),
    "logout_account": lambda c, s, x: c.logout_account(list(s.accounts)[1]),
    "list_contacts": lambda c, s, x: c.list_contacts(x["aid"], limit=5),
    "list_rooms": lambda c, s, x: c.list_rooms(x["aid"]),
    "list_room_members": lambda c, s, x: c.list_room_members(x["aid"], x["room"]),
    "send_message": lambda c, s, x: x.setdefault(
        "sent",
        c.send_message(
            x["aid"], "contract-1", x["room"], "room", "text", {"text": "hi"}, mentions="all", reply_to="msg_x"
        ),
    ),
    "send_messages": lambda c, s, x: c.send_messages(
        x["aid"],
        [
            c.message_body("contract-b1", x["contact"], "single", "text", {"text": "one"}),
            c.message_body("contract-b2", x["room"], "room", "link", {"title": "t", "url": "https://example.com/"}),
        ],
    ),
    "get_message_status": lambda c, s, x: c.get_message_status(x["aid"], x["sent"]["message_id"]),
    "events_after": lambda c, s, x: c.events_after(0, limit=10),
}


def _matching_command(request):
    for pattern, command in sim_server._ROUTES:
        if pattern.match(request.url.path) and command.method == request.method:
            return command
    return None


def test_every_command_has_a_scenario_a_client_method_and_a_simulator_handler():
    assert set(SCENARIOS) == set(protocol.COMMANDS)
    routed = {command.name for _, command in sim_server._ROUTES}
    for name, command in protocol.COMMANDS.items():
        assert name in routed
        method = getattr(InstanceClient, name, None)
        assert callable(method), f"client lacks {name}"
        assert method.__doc__, f"client.{name} has no docstring"
        assert callable(getattr(Simulator, f"cmd_{name}", None)), f"simulator lacks cmd_{name}"
        params = set(inspect.signature(method).parameters)
        for placeholder in command.path_params:
            assert placeholder in params, f"client.{name} lacks {placeholder}"
        if command.request is not None:
            fields = set(command.request.get("properties", {}))
            assert fields <= params, f"client.{name} cannot send {fields - params}"
        if command.paged:
            assert {"cursor", "limit"} <= params
    assert len({(c.method, c.path) for c in protocol.COMMAND_LIST}) == len(protocol.COMMAND_LIST)


def test_commands_round_trip_and_follow_the_schemas(sim, client, recorder):
    ctx = _ctx(sim)
    # protocol order (logins before verify, sends before status), restart last
    for name in sorted(protocol.COMMANDS, key=lambda n: n == "restart"):
        SCENARIOS[name](client, sim, ctx)
    seen = set()
    for request, response in recorder.exchanges:
        command = _matching_command(request)
        assert command is not None, f"client called {request.method} {request.url.path}, not in the protocol"
        seen.add(command.name)
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers[protocol.VERSION_HEADER] == protocol.PROTOCOL_REVISION
        assert response.status_code == command.status, (command.name, response.text)
        assert response.headers[protocol.VERSION_HEADER] == protocol.PROTOCOL_REVISION
        body = response.json()
        assert protocol.schema_errors("envelope", "response", body) == []
        assert body["ok"] is True and body["error"] is None
        assert protocol.schema_errors("response", command.name, body["data"]) == [], command.name
        if command.request is not None and request.content:
            import json

            assert protocol.schema_errors("request", command.name, json.loads(request.content)) == []
        if command.name == "events_after":
            for event in body["data"]["events"]:
                assert protocol.event_errors(event) == []
    assert seen == set(protocol.COMMANDS)


def _raw(sim, method, path, **kw):
    headers = kw.pop("headers", {"Authorization": f"Bearer {TOKEN}"})
    return httpx.request(method, sim.url + path, headers=headers, **kw)


def test_error_responses_follow_the_envelope_and_status_table(sim):
    ctx = _ctx(sim)
    aid, contact = ctx["aid"], ctx["contact"]
    send = f"/v1/accounts/{aid}/messages"

    def msg(cmid, **over):
        return {"client_msg_id": cmid, "conversation_id": contact, "conversation_type": "single", "type": "text",
                "content": {"text": "x"}, **over}

    produced = {}

    def check(response):
        body = response.json()
        assert protocol.schema_errors("envelope", "response", body) == []
        assert body["ok"] is False and body["data"] is None
        code = body["error"]["code"]
        assert code in protocol.INSTANCE_ERROR_CODES
        assert response.status_code == protocol.ERROR_HTTP_STATUS[code], (code, response.status_code)
        produced[code] = response

    check(_raw(sim, "GET", "/v1/health", headers={}))  # unauthorized
    check(_raw(sim, "GET", "/v1/health", headers={"Authorization": f"Bearer {TOKEN}", protocol.VERSION_HEADER: "9"}))
    check(_raw(sim, "POST", send, json={"client_msg_id": "x"}))  # invalid_request
    check(_raw(sim, "POST", send, json=msg("e1", type="sticker")))  # invalid_request (schema)
    check(_raw(sim, "GET", "/v1/accounts/nobody/contacts"))  # target_not_found
    sim.inject(rate_limit_per_min=1)
    _raw(sim, "POST", send, json=msg("e2"))
    check(_raw(sim, "POST", send, json=msg("e3")))  # rate_limited
    assert produced["rate_limited"].headers["Retry-After"] == str(produced["rate_limited"].json()["error"]["retry_after_s"])
    sim.inject(rate_limit_per_min=0, risk_control_after=1)
    check(_raw(sim, "POST", send, json=msg("e4")))  # risk_control
    other = list(sim.accounts)[1]
    _raw(sim, "POST", f"/v1/accounts/{other}/logout")
    check(_raw(sim, "GET", f"/v1/accounts/{other}/rooms"))  # not_logged_in
    sim.client_exit()
    check(_raw(sim, "GET", f"/v1/accounts/{aid}/rooms"))  # account_offline
    sim.inject(error_rate=1.0)
    check(_raw(sim, "GET", "/v1/capabilities"))  # internal
    assert set(produced) >= {
        "unauthorized", "unsupported_protocol_version", "invalid_request", "target_not_found",
        "rate_limited", "risk_control", "not_logged_in", "account_offline", "internal",
    }


def test_schemas_are_valid_draft7():
    from jsonschema import Draft7Validator

    count = 0
    for kind, name, schema in protocol.all_schemas():
        Draft7Validator.check_schema(schema)
        count += 1
    assert count > len(protocol.COMMANDS) + len(protocol.EVENT_TYPES)


def test_every_error_code_maps_to_one_exception_class():
    for code in protocol.INSTANCE_ERROR_CODES:
        cls = EXCEPTION_BY_CODE[code]
        assert issubclass(cls, InstanceError) and cls.code == code


def test_every_event_type_is_emitted_with_valid_data():
    with WebhookReceiver() as receiver:
        sim = Simulator(
            token=TOKEN, accounts=2, contacts=8, rooms=2, members=4, send_delay_ms=5, duplicate_rate=1.0,
            heartbeat_interval_s=1, webhook_url=receiver.url, webhook_secret="s", restart_delay_s=0.05,
            risk_control_after=1,
        )
        sim.start()
        try:
            c = InstanceClient(sim.url, token=TOKEN)
            ctx = _ctx(sim)
            second = list(sim.accounts)[1]
            sim.heartbeat()
            lid = c.start_login()["login_id"]
            sim.confirm(lid)
            sim.chatter(2)
            c.send_message(ctx["aid"], "ev-1", ctx["contact"], "single", "text", {"text": "x"})
            with pytest.raises(InstanceError):
                c.send_message(ctx["aid"], "ev-2", ctx["contact"], "single", "text", {"text": "x"})
            sim.churn(ctx["aid"])
            sim.ban(second)
            c.restart()
            emitted = lambda: {e["type"] for e in sim.events}  # noqa: E731
            expected = set(protocol.EVENT_TYPES) - set(protocol.OPTIONAL_EVENT_TYPES)
            assert receiver.wait_for(lambda r: emitted() >= expected, timeout=5), (
                expected - emitted()
            )
            assert receiver.wait_for(lambda r: len(r.accepted_events()) >= sim.last_seq, timeout=5)
            for delivery in receiver.deliveries:
                event = delivery.event
                assert protocol.event_errors(event) == [], event["type"]
                assert delivery.signature_ok("s")
                if event["type"] in protocol.INSTANCE_LEVEL_EVENTS:
                    assert event["account_id"] is None
                elif event["type"] != "login.status":
                    assert event["account_id"], event["type"]
        finally:
            sim.stop()


def test_documentation_names_every_command_event_and_error_code():
    text = DOC.read_text(encoding="utf-8")
    assert re.search(r"^Version:\s*1\.\d+", text, re.M), "docs need a version header"
    for command in protocol.COMMAND_LIST:
        assert f"{command.method} {protocol.PATH_PREFIX}{command.path}" in text, command.name
    for event_type in protocol.EVENT_TYPES:
        assert f"`{event_type}`" in text, event_type
    for code in protocol.INSTANCE_ERROR_CODES:
        assert f"`{code}`" in text, code
