"""Batch sends (protocol revision 1.1): the simulator takes each item as a single send would,
stops a batch at a refusal that concerns the account, and the client checks what it sends and
what comes back."""
import httpx
import pytest

from instances import exceptions as exc, protocol
from instances.client import InstanceClient

from wework.testing.instances import TOKEN


def _setup(sim):
    client = InstanceClient(sim.url, token=TOKEN, max_retries=0, sleep=lambda s: None)
    acc = next(iter(sim.accounts.values()))
    return client, acc


def _text(client, cmid, to):
    return client.message_body(cmid, to, "single", "text", {"text": f"hi {cmid}"})


def test_capabilities_offer_batches_and_results_come_in_order(make_sim):
    sim = make_sim()
    client, acc = _setup(sim)
    assert client.capabilities()["batch_send_max"] == protocol.MAX_BATCH_SEND
    contacts = [c["contact_id"] for c in acc.contacts]
    bodies = [_text(client, "b1", contacts[0]), _text(client, "b2", "nobody"), _text(client, "b3", contacts[1])]
    results = client.send_messages(acc.account_id, bodies)
    assert [r["client_msg_id"] for r in results] == ["b1", "b2", "b3"]
    assert [r["status"] for r in results] == ["queued", "failed", "queued"]
    assert results[1]["error"]["code"] == "target_not_found" and results[1]["message_id"] is None
    # a refused item does not stop the batch, and is not remembered
    assert sim.stats()["distinct_messages"] == 2
    # repeats are duplicates, item by item, with the first message id
    again = client.send_messages(acc.account_id, [bodies[0], _text(client, "b2", contacts[2])])
    assert again[0]["duplicate"] is True and again[0]["message_id"] == results[0]["message_id"]
    assert again[1]["duplicate"] is False and again[1]["status"] == "queued"
    assert sim.batch_sizes == [3, 2]


def test_risk_control_stops_the_batch_nothing_after_it_is_attempted(make_sim):
    sim = make_sim(risk_control_after=2)
    client, acc = _setup(sim)
    contacts = [c["contact_id"] for c in acc.contacts]
    results = client.send_messages(acc.account_id, [_text(client, f"r{i}", contacts[i]) for i in range(6)])
    assert [r["status"] for r in results] == ["queued", "queued", "risk_control"] + ["not_attempted"] * 3
    assert results[2]["error"]["code"] == "risk_control"
    assert all(r["message_id"] is None and r["error"] is None for r in results[3:])
    receipts = sim.stats()["receipts"]
    assert set(receipts) == {"r0", "r1", "r2"}  # the instance never looked at the rest


def test_rate_limited_item_stops_the_batch_with_retry_after(make_sim):
    sim = make_sim(rate_limit_per_min=1)
    client, acc = _setup(sim)
    contacts = [c["contact_id"] for c in acc.contacts]
    results = client.send_messages(acc.account_id, [_text(client, f"q{i}", contacts[i]) for i in range(3)])
    assert [r["status"] for r in results] == ["queued", "rate_limited", "not_attempted"]
    assert results[1]["error"]["retry_after_s"] >= 1


def test_invalid_item_is_refused_alone_by_the_instance(make_sim):
    sim = make_sim()
    acc = next(iter(sim.accounts.values()))
    body = {"messages": [
        {"client_msg_id": "ok", "conversation_id": acc.contacts[0]["contact_id"], "conversation_type": "single",
         "type": "text", "content": {"text": "x"}},
        {"client_msg_id": "bad", "conversation_id": "x", "conversation_type": "single", "type": "text",
         "content": {}},
        {"conversation_id": "x"},
    ]}
    r = httpx.post(f"{sim.url}/v1/accounts/{acc.account_id}/messages/batch", json=body,
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 202
    results = r.json()["data"]["results"]
    assert [x["status"] for x in results] == ["queued", "failed", "failed"]
    assert results[1]["error"]["code"] == "invalid_request" and "content" in results[1]["error"]["message"]
    assert results[2]["client_msg_id"] is None
    # an item that is not even an object makes the request malformed
    r = httpx.post(f"{sim.url}/v1/accounts/{acc.account_id}/messages/batch", json={"messages": ["x"]},
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"


def test_whole_request_refusals(make_sim):
    sim = make_sim()
    client, acc = _setup(sim)
    too_many = [_text(client, f"m{i}", "x") for i in range(protocol.MAX_BATCH_SEND + 1)]
    with pytest.raises(exc.InvalidRequest):  # checked by the client before sending
        client.send_messages(acc.account_id, too_many)
    with pytest.raises(exc.InvalidRequest, match=r"messages\[1\]"):
        client.send_messages(acc.account_id, [_text(client, "a", "x"), {"client_msg_id": "b"}])
    with pytest.raises(exc.TargetNotFound):
        client.send_messages("wxid_unknown", [_text(client, "a", "x")])
    r = httpx.post(f"{sim.url}/v1/accounts/{acc.account_id}/messages/batch", json={"messages": []},
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert sim.stats()["distinct_messages"] == 0


def test_an_instance_without_batches_refuses_the_command(make_sim):
    sim = make_sim(batch_send_max=0)
    client, acc = _setup(sim)
    assert client.capabilities()["batch_send_max"] == 0
    with pytest.raises(exc.TargetNotFound):
        client.send_messages(acc.account_id, [_text(client, "a", acc.contacts[0]["contact_id"])])
    assert sim.stats()["distinct_messages"] == 0


def test_a_smaller_batch_limit_is_enforced(make_sim):
    sim = make_sim(batch_send_max=2)
    client, acc = _setup(sim)
    contacts = [c["contact_id"] for c in acc.contacts]
    with pytest.raises(exc.InvalidRequest, match="at most 2"):
        client.send_messages(acc.account_id, [_text(client, f"s{i}", contacts[i]) for i in range(3)])


def test_results_that_do_not_match_the_batch_are_an_invalid_response(make_sim, monkeypatch):
    sim = make_sim()
    client, acc = _setup(sim)
    original = sim.cmd_send_messages

    def drop_last(path, query, body):
        status, data = original(path, query, body)
        return status, {"results": data["results"][:-1]}

    monkeypatch.setattr(sim, "cmd_send_messages", drop_last)
    contacts = [c["contact_id"] for c in acc.contacts]
    with pytest.raises(exc.InvalidResponse, match="2 messages was answered with 1"):
        client.send_messages(acc.account_id, [_text(client, "x1", contacts[0]), _text(client, "x2", contacts[1])])
