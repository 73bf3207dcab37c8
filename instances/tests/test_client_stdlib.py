"""InstanceClient(stdlib_http=True): the http.client transport used by message dispatch behaves
like the httpx one (results, error mapping, retries, keep-alive)."""

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from instances import exceptions as exc
from instances.client import InstanceClient
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
def client(sim):
    c = InstanceClient(sim.url, token=TOKEN, timeout=5, stdlib_http=True, sleep=lambda s: None)
    assert c._stdlib is not None
    yield c
    c.close()


def test_commands_and_keep_alive(sim, client):
    aid = next(iter(sim.accounts))
    contacts = [c["contact_id"] for c in sim.accounts[aid].contacts]
    assert client.health()["protocol_version"].startswith("1.")
    first = client.send_message(aid, "std-1", contacts[0], "single", "text", {"text": "你好"})
    assert first["status"] == "queued" and first["duplicate"] is False
    again = client.send_message(aid, "std-1", contacts[0], "single", "text", {"text": "你好"})
    assert again["duplicate"] is True and again["message_id"] == first["message_id"]
    assert client.get_message_status(aid, "std-1")["client_msg_id"] == "std-1"
    page = client.list_contacts(aid, limit=5)  # query string
    assert len(page.items) == 5 and page.next_cursor
    assert client.events_after(0, limit=3)["events"]
    assert len(client._stdlib._all) == 1  # one keep-alive connection for all of the above
    assert sim.messages[first["message_id"]]["request"]["content"] == {"text": "你好"}


def test_one_connection_per_thread_and_each_send_once(sim, client):
    aid = next(iter(sim.accounts))
    contacts = [c["contact_id"] for c in sim.accounts[aid].contacts]

    def send(i):
        return client.send_message(aid, f"par-{i}", contacts[i % len(contacts)], "single", "text", {"text": str(i)})

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(send, range(60)))
    assert len({r["message_id"] for r in results}) == 60
    assert len(client._stdlib._all) <= 4
    assert sim.stats()["distinct_messages"] == 60
    client.close()
    assert client._stdlib._all == []


def test_errors_map_to_the_same_exceptions(sim, client):
    aid = next(iter(sim.accounts))
    with pytest.raises(exc.TargetNotFound):
        client.send_message(aid, "x1", "wxid_stranger", "single", "text", {"text": "hi"})
    with pytest.raises(exc.InstanceAuthError):
        InstanceClient(sim.url, token="wrong", stdlib_http=True).health()
    sim.inject(rate_limit_per_min=1)
    contact = sim.accounts[aid].contacts[0]["contact_id"]
    client.send_message(aid, "r1", contact, "single", "text", {"text": "1"})
    with pytest.raises(exc.RateLimited) as info:
        client.send_message(aid, "r2", contact, "single", "text", {"text": "2"})
    assert info.value.retry_after_s >= 1


def test_unreachable_and_timeout():
    slept = []
    c = InstanceClient(f"http://127.0.0.1:{unused_port()}", token="t", sleep=slept.append, max_retries=2,
                       stdlib_http=True)
    with pytest.raises(exc.InstanceUnreachable):
        c.health()
    assert len(slept) == 2
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    try:
        c = InstanceClient(f"http://127.0.0.1:{sock.getsockname()[1]}", token="t", timeout=0.2, max_retries=0,
                           stdlib_http=True)
        started = time.monotonic()
        with pytest.raises(exc.InstanceTimeout):
            c.health()
        assert time.monotonic() - started < 2
    finally:
        sock.close()


def test_connection_closed_by_the_instance_is_reopened_for_idempotent_commands(sim, client):
    aid = next(iter(sim.accounts))
    contact = sim.accounts[aid].contacts[0]["contact_id"]
    client.health()
    conn = client._stdlib._local.conn
    conn.sock.shutdown(socket.SHUT_RDWR)  # as if the instance had dropped the idle connection
    result = client.send_message(aid, "after-drop", contact, "single", "text", {"text": "x"})
    assert result["duplicate"] is False
    assert sim.stats()["receipts"]["after-drop"] == 1


def test_proxy_or_test_transport_keep_httpx():
    assert InstanceClient("http://h:1", proxy_host="proxy", proxy_port=3128, stdlib_http=True)._stdlib is None
    assert InstanceClient("http://h:1", stdlib_http=False)._stdlib is None
