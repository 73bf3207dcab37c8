"""Simulator behaviour: QR login, idempotent sends, injections, event delivery, replay, signatures."""

import json
import time

import httpx
import pytest

from instances import exceptions as exc
from instances import protocol
from instances.client import InstanceClient
from simulator.testing import WebhookReceiver, wait_until

from wework.testing.instances import TOKEN

SECRET = "whsec-test"


@pytest.fixture
def sim(make_sim):
    return make_sim()


@pytest.fixture
def client(sim):
    c = InstanceClient(sim.url, token=TOKEN, sleep=lambda s: None)
    yield c
    c.close()


@pytest.fixture
def receiver():
    r = WebhookReceiver()
    r.start()
    yield r
    r.stop()


def types_of(sim, account_id=None):
    return [e["type"] for e in sim.events if account_id is None or e["account_id"] == account_id]


def first_account(sim):
    return next(iter(sim.accounts.values()))


# ----------------------------------------------------------------------------- data


def test_data_is_deterministic_from_the_seed(make_sim):
    a, b, c = make_sim(seed=3), make_sim(seed=3), make_sim(seed=4)
    aid = list(a.accounts)[0]
    assert a.accounts[aid].contacts == b.accounts[aid].contacts
    assert a.accounts[aid].members == b.accounts[aid].members
    assert not set(a.accounts) & set(c.accounts)
    acc = a.accounts[aid]
    for room in acc.rooms:
        members = acc.members[room["room_id"]]
        assert room["member_count"] == len(members) == 5
        assert len({m["member_id"] for m in members}) == 5
        assert [m["member_id"] for m in members if m["role"] == "owner"] == [room["owner_id"]]


def test_pages_cover_everything_once(sim, client):
    aid = first_account(sim).account_id
    ids = [c["contact_id"] for p in client.iter_contacts(aid, limit=3) for c in p.items]
    assert len(ids) == 20 == len(set(ids))
    with pytest.raises(exc.InvalidRequest, match="cursor"):
        client.list_contacts(aid, cursor="garbage!")
    raw = httpx.get(f"{sim.url}/v1/accounts/{aid}/contacts?limit=501", headers={"Authorization": f"Bearer {TOKEN}"})
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_request"
    raw = httpx.get(f"{sim.url}/v1/accounts/{aid}/contacts?limit=abc", headers={"Authorization": f"Bearer {TOKEN}"})
    assert raw.status_code == 400


def test_auth_unknown_paths_bad_json_and_versions(sim):
    r = httpx.get(f"{sim.url}/v1/health")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert r.headers[protocol.VERSION_HEADER] == protocol.PROTOCOL_REVISION
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{sim.url}/v1/nope", headers=auth).status_code == 404
    r = httpx.delete(f"{sim.url}/v1/health", headers=auth)
    assert r.status_code == 400 and "GET" in r.json()["error"]["message"]
    aid = first_account(sim).account_id
    r = httpx.post(f"{sim.url}/v1/accounts/{aid}/messages", headers=auth, content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    r = httpx.get(f"{sim.url}/v1/health", headers={**auth, protocol.VERSION_HEADER: "2.0"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_protocol_version"


# ----------------------------------------------------------------------------- QR login


def test_qr_login_scan_confirm_flow(sim, client):
    login = client.start_login()
    lid = login["login_id"]
    assert login["status"] == "waiting" and login["expires_at_ms"] > time.time() * 1000
    scan = httpx.get(login["qrcode"]["content"])
    assert scan.status_code == 200 and scan.json()["data"]["status"] == "scanned"
    assert client.get_login(lid)["status"] == "scanned"
    confirm = httpx.get(f"{sim.url}/sim/confirm/{lid}").json()["data"]
    assert confirm["status"] == "confirmed" and confirm["account_id"]
    aid = confirm["account_id"]
    assert client.get_login(lid) == {**confirm}
    assert {"account_id": aid, "status": "online"} in client.health()["accounts"]
    login_events = [e["data"]["status"] for e in sim.events if e["type"] == "login.status"]
    assert login_events == ["waiting", "scanned", "confirmed"]
    after = types_of(sim, aid)
    assert after[:3] == ["login.status", "account.online", "sync.completed"]
    history = [e for e in sim.events if e["type"] == "message.received" and e["account_id"] == aid]
    assert len(history) == 5 and all(e["data"]["is_history"] for e in history)
    # the new account has data and can be paged
    assert len(client.list_contacts(aid).items) == 20
    # a final login cannot be scanned again
    assert httpx.get(login["qrcode"]["content"]).status_code == 400


def test_qr_login_with_verification_code(sim, client):
    lid = client.start_login()["login_id"]
    data = httpx.post(f"{sim.url}/sim/confirm/{lid}?need_verify=1").json()["data"]
    assert data["status"] == "need_verify" and len(data["verify_code"]) == 6
    with pytest.raises(exc.InvalidRequest, match="wrong"):
        client.verify_login(lid, "bad")
    assert client.get_login(lid)["status"] == "need_verify"
    assert client.verify_login(lid, data["verify_code"])["status"] == "confirmed"


def test_qr_login_relogin_of_known_account(sim, client):
    aid = first_account(sim).account_id
    client.logout_account(aid)
    with pytest.raises(exc.InvalidRequest):
        client.start_login(list(sim.accounts)[1])  # already online
    lid = client.start_login(aid)["login_id"]
    sim.confirm(lid)
    assert client.get_login(lid)["account_id"] == aid
    assert sim.accounts[aid].status == "online" and len(sim.accounts) == 2


def test_qr_login_expires_and_cancel(make_sim):
    sim = make_sim(login_ttl_s=0.2)
    client = InstanceClient(sim.url, token=TOKEN)
    lid = client.start_login()["login_id"]
    assert wait_until(lambda: sim.logins[lid]["status"] == "expired", timeout=3)
    assert client.get_login(lid)["status"] == "expired"
    assert [e["data"]["status"] for e in sim.events if e["type"] == "login.status"] == ["waiting", "expired"]
    lid2 = client.start_login()["login_id"]
    assert client.cancel_login(lid2)["status"] == "cancelled"
    assert client.cancel_login(lid2)["status"] == "cancelled"  # idempotent
    with pytest.raises(exc.TargetNotFound):
        client.get_login("lg_unknown")


# ----------------------------------------------------------------------------- sends


def test_sends_are_idempotent_by_client_msg_id(sim, client):
    acc = first_account(sim)
    contact = acc.contacts[0]["contact_id"]
    first = client.send_message(acc.account_id, "dup-1", contact, "single", "text", {"text": "a"})
    again = [client.send_message(acc.account_id, "dup-1", contact, "single", "text", {"text": "a"}) for _ in range(2)]
    assert all(r["message_id"] == first["message_id"] and r["duplicate"] for r in again)
    assert wait_until(lambda: sim.messages[first["message_id"]]["status"] == "sent")
    stats = httpx.get(f"{sim.url}/sim/stats").json()["data"]
    assert stats["receipts"]["dup-1"] == 3 and stats["distinct_messages"] == 1
    statuses = [e for e in sim.events if e["type"] == "message.status"]
    assert len(statuses) == 1 and statuses[0]["data"]["client_msg_id"] == "dup-1"
    assert statuses[0]["data"]["status"] == "sent" and statuses[0]["data"]["sent_at_ms"]
    # after the status, a repeat reports the final status
    assert client.send_message(acc.account_id, "dup-1", contact, "single", "text", {"text": "a"})["status"] == "sent"


def test_send_validation(sim, client):
    acc = first_account(sim)
    room = acc.rooms[0]["room_id"]
    contact = acc.contacts[0]["contact_id"]
    with pytest.raises(exc.TargetNotFound):
        client.send_message(acc.account_id, "v1", "R:none", "room", "text", {"text": "x"})
    with pytest.raises(exc.InvalidRequest, match="mentions"):
        client.send_message(acc.account_id, "v2", contact, "single", "text", {"text": "x"}, mentions=[contact])
    with pytest.raises(exc.TargetNotFound, match="mentions"):
        client.send_message(acc.account_id, "v3", room, "room", "text", {"text": "x"}, mentions=["wxid_not_member"])
    with pytest.raises(exc.TargetNotFound):
        client.send_message(acc.account_id, "v4", contact, "single", "card", {"contact_id": "nobody"})
    member = acc.members[room][1]["member_id"]
    ok = client.send_message(acc.account_id, "v5", room, "room", "text", {"text": "x"}, mentions=[member])
    assert ok["status"] == "queued"
    # errors are not remembered: the same id can be sent once the cause is fixed
    assert client.send_message(acc.account_id, "v1", room, "room", "text", {"text": "x"})["duplicate"] is False


def test_media_fetch_failure_reported_asynchronously(sim, client):
    acc = first_account(sim)
    r = client.send_message(
        acc.account_id, "img-1", acc.contacts[0]["contact_id"], "single", "image", {"url": "https://cdn.test/fail.png"}
    )
    assert wait_until(lambda: sim.messages[r["message_id"]]["status"] != "queued")
    status = client.get_message_status(acc.account_id, "img-1")
    assert status["status"] == "failed" and status["error"]["code"] == "media_fetch_failed"


def test_risk_control_after_n_sends(make_sim):
    sim = make_sim(risk_control_after=2)
    client = InstanceClient(sim.url, token=TOKEN)
    acc = first_account(sim)
    contact = acc.contacts[0]["contact_id"]
    for i in range(2):
        client.send_message(acc.account_id, f"rc{i}", contact, "single", "text", {"text": "x"})
    with pytest.raises(exc.RiskControl):
        client.send_message(acc.account_id, "rc2", contact, "single", "text", {"text": "x"})
    with pytest.raises(exc.RiskControl):
        client.send_message(acc.account_id, "rc3", contact, "single", "text", {"text": "x"})
    abnormal = [e for e in sim.events if e["type"] == "account.abnormal"]
    assert len(abnormal) == 1 and abnormal[0]["account_id"] == acc.account_id
    assert acc.status == "abnormal"
    assert {"account_id": acc.account_id, "status": "abnormal"} in client.health()["accounts"]


def test_ban_injection(make_sim):
    sim = make_sim(ban_account="2")
    aid = list(sim.accounts)[1]
    assert wait_until(lambda: "account.banned" in types_of(sim))
    event = next(e for e in sim.events if e["type"] == "account.banned")
    assert event["account_id"] == aid and event["data"]["reason"] == "banned"
    client = InstanceClient(sim.url, token=TOKEN)
    with pytest.raises(exc.RiskControl):
        client.send_message(aid, "b1", sim.accounts[aid].contacts[0]["contact_id"], "single", "text", {"text": "x"})


def test_client_exit_and_restart(make_sim):
    sim = make_sim(exit_after_s=0.1, restart_delay_s=0.1)
    client = InstanceClient(sim.url, token=TOKEN)
    assert wait_until(lambda: not sim.client_running, timeout=3)
    assert client.health()["client_running"] is False
    offline = [e for e in sim.events if e["type"] == "account.offline"]
    assert len(offline) == 2 and {e["data"]["reason"] for e in offline} == {"client_exit"}
    assert "instance.client_exited" in types_of(sim)
    acc = first_account(sim)
    with pytest.raises(exc.AccountOffline):
        client.send_message(acc.account_id, "e1", acc.contacts[0]["contact_id"], "single", "text", {"text": "x"})
    assert client.restart() == {"restarting": True}
    assert wait_until(lambda: sim.client_running, timeout=3)
    assert types_of(sim)[-3:] == ["instance.started", "account.online", "account.online"]
    assert {a["status"] for a in client.health()["accounts"]} == {"online"}
    assert sim.restart_count == 1


def test_restart_while_running_cycles_the_client(sim, client):
    client.restart("test")
    assert wait_until(lambda: sim.restart_count == 1 and sim.client_running and "instance.started" in types_of(sim)[1:], timeout=3)
    seq = types_of(sim)
    assert seq.index("instance.client_exited") < len(seq) - 1 - seq[::-1].index("instance.started")


def test_logout_emits_offline_and_is_repeatable(sim, client):
    aid = first_account(sim).account_id
    assert client.logout_account(aid)["status"] == "offline"
    assert client.logout_account(aid)["status"] == "offline"
    offline = [e for e in sim.events if e["type"] == "account.offline"]
    assert len(offline) == 1 and offline[0]["data"] == {"account_id": aid, "reason": "logout"}
    with pytest.raises(exc.TargetNotFound):
        client.logout_account("wxid_nobody")


# ----------------------------------------------------------------------------- chatter, heartbeats, changes


def test_chatter_duplicates_and_history(make_sim):
    sim = make_sim(duplicate_rate=1.0)
    events = sim.chatter(1)
    assert len(events) == 2
    a, b = events[0]["data"], events[1]["data"]
    assert a["message_id"] != b["message_id"] and events[0]["event_id"] != events[1]["event_id"]
    assert {k: v for k, v in a.items() if k != "message_id"} == {k: v for k, v in b.items() if k != "message_id"}
    history = sim.chatter(3, is_history=True)
    assert len(history) == 3 and all(e["data"]["is_history"] for e in history)
    assert all(e["data"]["sent_at_ms"] < time.time() * 1000 - 3_000_000 for e in history)


def test_background_chatter_and_heartbeats(make_sim):
    sim = make_sim(chatter_per_min=1200, heartbeat_interval_s=1)
    assert wait_until(lambda: types_of(sim).count("message.received") >= 3, timeout=5)
    assert wait_until(lambda: "instance.heartbeat" in types_of(sim), timeout=3)
    hb = next(e for e in sim.events if e["type"] == "instance.heartbeat")
    assert set(hb["data"]["metrics"]) >= {"cpu", "memory", "queue_depth"} and hb["account_id"] is None


def test_incremental_changes_via_sim_endpoint(sim, client):
    aid = first_account(sim).account_id
    data = httpx.post(f"{sim.url}/sim/accounts/{aid}/changes").json()["data"]
    assert [e["type"] for e in data["events"]] == [
        "contact.added",
        "contact.updated",
        "contact.removed",
        "room.updated",
        "room.member_joined",
        "room.member_left",
    ]
    assert len([c for p in client.iter_contacts(aid) for c in p.items]) == 20
    room = sim.accounts[aid].rooms[0]
    assert room["member_count"] == len(client.list_room_members(aid, room["room_id"]).items)


def test_sim_endpoints_refuse_bad_input(sim):
    assert httpx.post(f"{sim.url}/sim/inject", json={"nope": 1}).status_code == 400
    assert httpx.post(f"{sim.url}/sim/inject", json={"error_rate": "x"}).status_code == 400
    assert httpx.post(f"{sim.url}/sim/chatter", json={"count": 0}).status_code == 400
    assert httpx.post(f"{sim.url}/sim/chatter", json={"count": 1, "account_id": "x"}).status_code == 404
    assert httpx.post(f"{sim.url}/sim/accounts/x/ban").status_code == 404
    assert httpx.get(f"{sim.url}/sim/unknown").status_code == 404
    assert httpx.post(f"{sim.url}/sim/inject", content=b"[1]").status_code == 400


def test_error_rate_injection(sim):
    sim.inject(error_rate=1.0)
    r = httpx.get(f"{sim.url}/v1/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal"
    sim.inject(error_rate=0)
    assert httpx.get(f"{sim.url}/v1/health", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


# ----------------------------------------------------------------------------- delivery, replay, signatures


def test_events_delivered_signed_in_order(make_sim, receiver):
    sim = make_sim(webhook_url=receiver.url, webhook_secret=SECRET)
    sim.chatter(3)
    assert receiver.wait_for(lambda r: len(r.accepted_events()) >= 4)
    events = receiver.accepted_events()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "instance.started"
    for d in receiver.deliveries:
        assert d.signature_ok(SECRET)
        assert not d.signature_ok("other-secret")
        assert d.headers[protocol.EVENT_ID_HEADER] == d.event["event_id"]
        assert d.headers[protocol.SEQ_HEADER] == str(d.event["seq"])
        assert d.headers[protocol.INSTANCE_ID_HEADER] == sim.instance_id
        assert protocol.event_errors(d.event) == []


def test_delivery_retries_failing_then_succeeding_endpoint(make_sim):
    with WebhookReceiver(statuses=[500, 503, 429], only_instance="sim-retries") as receiver:
        sim = make_sim(webhook_url=receiver.url, webhook_secret=SECRET, instance_id="sim-retries")
        assert receiver.wait_for(lambda r: len(r.accepted_events()) >= 1, timeout=5)
        first = receiver.deliveries[:4]
        assert [d.status for d in first] == [500, 503, 429, 200]
        assert len({d.event["event_id"] for d in first}) == 1  # the same event, retried
        assert all(d.signature_ok(SECRET) for d in first)
        # the receiver records a delivery before its answer reaches the simulator: wait for the
        # simulator to count it (reading at once raced with it)
        assert wait_until(lambda: sim.stats()["events"].get("delivered", 0) >= 1)
        assert sim.stats()["events"]["failed_attempts"] == 3


def test_delivery_gives_up_after_max_attempts_then_continues(make_sim):
    with WebhookReceiver(statuses=[500, 500], only_instance="sim-gives-up") as receiver:
        sim = make_sim(webhook_url=receiver.url, webhook_secret=SECRET, max_delivery_attempts=2,
                       instance_id="sim-gives-up")
        sim.heartbeat()
        assert receiver.wait_for(lambda r: len(r.accepted_events()) >= 1, timeout=5)
        assert receiver.accepted_events()[0]["seq"] == 2  # seq 1 was dropped: a gap the platform replays
        assert sim.stats()["events"]["dropped"] == 1
        replay = InstanceClient(sim.url, token=TOKEN).events_after(0)
        assert replay["events"][0]["seq"] == 1 and replay["events"][0]["type"] == "instance.started"


def test_refused_delivery_is_not_retried(make_sim):
    with WebhookReceiver(statuses=[401], only_instance="sim-refused") as receiver:
        sim = make_sim(webhook_url=receiver.url, webhook_secret=SECRET, instance_id="sim-refused")
        sim.heartbeat()
        assert receiver.wait_for(lambda r: len(r.accepted_events()) >= 1, timeout=5)
        assert [d.status for d in receiver.deliveries[:2]] == [401, 200]
        assert sim.stats()["events"]["refused"] == 1


def test_webhook_configured_later_gets_the_backlog(sim, client, receiver):
    sim.chatter(2)
    client.push_config(webhook_url=receiver.url, webhook_secret=SECRET, instance_id="inst-42")
    assert receiver.wait_for(lambda r: len(r.accepted_events()) >= 3)
    assert [e["seq"] for e in receiver.accepted_events()][:3] == [1, 2, 3]
    sim.heartbeat()
    assert receiver.wait_for(lambda r: r.accepted_events()[-1]["instance_id"] == "inst-42")


def test_redelivery_repeats_event_ids(make_sim, receiver):
    sim = make_sim(webhook_url=receiver.url, webhook_secret=SECRET, redeliver_rate=1.0)
    assert receiver.wait_for(lambda r: len(r.accepted_events()) >= 2)
    ids = [e["event_id"] for e in receiver.accepted_events()[:2]]
    assert ids[0] == ids[1]
    assert sim.stats()["events"]["redelivered"] >= 1


def test_replay_pages_through_events(sim, client):
    sim.chatter(10)
    total = sim.last_seq
    page = client.events_after(0, limit=4)
    assert [e["seq"] for e in page["events"]] == [1, 2, 3, 4] and page["has_more"] and page["last_seq"] == total
    seen, after = [], 0
    while True:
        page = client.events_after(after, limit=4)
        seen += [e["seq"] for e in page["events"]]
        if not page["has_more"]:
            break
        after = page["events"][-1]["seq"]
    assert seen == list(range(1, total + 1))
    assert client.events_after(total)["events"] == []
    assert client.events_after(total + 100) == {"events": [], "last_seq": total, "has_more": False}


def test_replay_after_trimming_starts_at_oldest_retained(make_sim):
    sim = make_sim(max_events=5)
    sim.chatter(10)
    events = InstanceClient(sim.url, token=TOKEN).events_after(0)["events"]
    assert len(events) == 5 and events[-1]["seq"] == sim.last_seq


def test_stopped_simulator_is_unreachable(make_sim):
    sim = make_sim()
    client = InstanceClient(sim.url, token=TOKEN, max_retries=0)
    client.health()  # keep-alive connection open
    sim.stop()
    with pytest.raises(exc.InstanceUnreachable):
        client.health()


# ----------------------------------------------------------------------------- signature helpers


def test_sign_and_verify():
    body = json.dumps({"a": 1}).encode()
    ts = int(time.time())
    sig = protocol.sign(body, SECRET, ts)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert protocol.verify(body, SECRET, str(ts), sig)
    assert protocol.verify(body.decode(), SECRET, ts, sig.upper().replace("SHA256=", "sha256="))
    cases = {
        "bad_signature": (body + b" ", SECRET, ts, sig),
        "stale_timestamp": (body, SECRET, ts - 301, protocol.sign(body, SECRET, ts - 301)),
        "missing_timestamp": (body, SECRET, "", sig),
        "malformed_timestamp": (body, SECRET, "yesterday", sig),
        "missing_signature": (body, SECRET, ts, None),
        "malformed_signature": (body, SECRET, ts, "md5=abc"),
        "no_secret": (body, "", ts, sig),
    }
    for reason, args in cases.items():
        with pytest.raises(protocol.SignatureError) as info:
            protocol.check_signature(*args)
        assert info.value.reason == reason
        assert protocol.verify(*args) is False
    # the timestamp is part of what is signed
    assert not protocol.verify(body, SECRET, ts + 1, sig)
    # future timestamps beyond the tolerance are refused too
    assert not protocol.verify(body, SECRET, ts + 400, protocol.sign(body, SECRET, ts + 400))
    assert protocol.verify(body, SECRET, ts, sig, now=ts + 299)


# ----------------------------------------------------------------------------- management command


def test_run_instance_simulator_command(capsys):
    from django.core.management import call_command

    call_command("run_instance_simulator", "--port", "0", "--accounts", "1", "--contacts", "5", "--stop-after-s", "0.3",
                 "--token=Secr3t-bearer-token-value")
    out = capsys.readouterr().out
    assert "listening on http://127.0.0.1:" in out and "wxid_s1a001" in out and "stopped" in out
    # the bearer token is a secret: only its start and length reach the terminal
    assert "Secr3t-bearer-token-value" not in out and "Secr… (25 characters)" in out


def test_run_instance_simulator_command_refuses_bad_input():
    import socket

    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="heartbeat"):
        call_command("run_instance_simulator", "--heartbeat-interval", "0", "--stop-after-s", "0.1")
    with pytest.raises(CommandError, match="webhook"):
        call_command("run_instance_simulator", "--webhook-url", "ftp://x", "--stop-after-s", "0.1")
    with pytest.raises(CommandError):
        call_command("run_instance_simulator", "--error-rate", "2")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        with pytest.raises(CommandError, match="Cannot listen"):
            call_command("run_instance_simulator", "--port", str(busy.getsockname()[1]), "--stop-after-s", "0.1")


def test_config_change_triggers_a_heartbeat_and_unchanged_pushes_do_not_starve_it(sim, client, receiver):
    client.push_config(webhook_url=receiver.url, webhook_secret=SECRET, heartbeat_interval_s=1)
    assert wait_until(lambda: "instance.heartbeat" in types_of(sim), timeout=2)
    count = types_of(sim).count("instance.heartbeat")
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:  # the same config pushed every 0.2 s
        client.push_config(webhook_url=receiver.url, heartbeat_interval_s=1)
        time.sleep(0.2)
    assert types_of(sim).count("instance.heartbeat") >= count + 1


def test_receiver_ignores_other_instances_deliveries(make_sim):
    """A simulator of an earlier test may still retry into a port reused by a new receiver."""
    with WebhookReceiver(statuses=[500], only_instance="mine") as receiver:
        make_sim(webhook_url=receiver.url, webhook_secret=SECRET, instance_id="someone-else")
        mine = make_sim(webhook_url=receiver.url, webhook_secret=SECRET, instance_id="mine")
        assert receiver.wait_for(lambda r: len(r.accepted_events()) >= 1, timeout=5)
        assert {d.headers.get(protocol.INSTANCE_ID_HEADER) for d in receiver.deliveries} == {"mine"}
        assert receiver.deliveries[0].status == 500 and mine.stats()["events"]["failed_attempts"] >= 1
