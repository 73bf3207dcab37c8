"""Feature detection of the WeCom providers' fork (`@juzi/wechaty-grpc`): a provider that numbers
its events is resumed from the last seq the bridge stored, so a reconnect loses nothing and
raises no gap. The fork's server is not published, so this test serves the fork's wire format
itself (the upstream stubs with the fork's two fields, the same ones the bridge uses) over TLS
with a certificate of its own; upstream puppet-service without resume is tested against the
real npm server in test_e2e.py."""
import datetime
import json
import threading
import time
from concurrent import futures

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.runtime import Bridge
from bridge.stubs import base_pb2, contact_pb2, event_pb2, message_pb2, puppet_pb2_grpc

EV = event_pb2.EventType
SELF = "wxid_fork_self"


def self_signed(name):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


class ForkPuppet(puppet_pb2_grpc.PuppetServicer):
    """The fork's event stream: numbered events, replayed after EventRequest.seq."""

    def __init__(self):
        self.log = []
        self.requests = []
        self.cond = threading.Condition()
        self.generation = 0
        self.messages = {}  # message id -> MessagePayloadResponse fields

    def emit(self, kind, payload):
        with self.cond:
            self.log.append(event_pb2.EventResponse(type=kind, payload=json.dumps(payload), seq=len(self.log) + 1))
            self.cond.notify_all()

    def cut(self):
        """End the open stream (a network break)."""
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def Event(self, request, context):
        self.requests.append((request.seq, request.account_id))
        with self.cond:
            generation = self.generation
        yield event_pb2.EventResponse(type=EV.EVENT_TYPE_HEARTBEAT, payload="{}", seq=0)
        sent = request.seq
        while context.is_active():
            with self.cond:
                pending = [e for e in self.log if e.seq > sent]
                if not pending:
                    if self.generation != generation:
                        return
                    self.cond.wait(0.2)
                    continue
            for event in pending:
                sent = event.seq
                yield event

    def Ding(self, request, context):
        return base_pb2.DingResponse()

    def ContactPayload(self, request, context):
        return contact_pb2.ContactPayloadResponse(id=request.id, name=f"name of {request.id}")

    def MessagePayload(self, request, context):
        fields = self.messages.get(request.id) or {"text": f"text {request.id}", "talker_id": "wxid_friend",
                                                   "listener_id": SELF}
        return message_pb2.MessagePayloadResponse(id=request.id, type=7, **fields)


@pytest.fixture
def fork(tmp_path, ports):
    cert, key = self_signed("fork.test")
    (tmp_path / "ca.pem").write_bytes(cert)
    servicer = ForkPuppet()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    puppet_pb2_grpc.add_PuppetServicer_to_server(servicer, server)
    port = server.add_secure_port(f"127.0.0.1:{ports[2]}", grpc.ssl_server_credentials([(key, cert)]))
    server.start()
    servicer.endpoint = f"127.0.0.1:{port}"
    servicer.ca = str(tmp_path / "ca.pem")
    yield servicer
    server.stop(0)


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met")


def test_a_provider_with_sequence_numbers_is_resumed_without_a_gap(fork, tmp_path):
    bridge = Bridge(str(tmp_path / "b.sqlite3"), token="t", providers=[
        {"token": "fork_token", "endpoint": fork.endpoint, "ca_file": fork.ca, "server_name": "fork.test"}])
    bridge.start()
    try:
        events = lambda kind: [e for e in bridge.store.events_after(0, 1000, "")[0] if e["type"] == kind]  # noqa: E731
        fork.emit(EV.EVENT_TYPE_LOGIN, {"contactId": SELF})
        fork.emit(EV.EVENT_TYPE_MESSAGE, {"messageId": "m1"})
        wait_for(lambda: events("message.received"))
        provider = bridge.provider_for(SELF)
        assert provider.resume_supported and provider.last_seq == 2
        fork.cut()
        wait_for(lambda: not provider.connected)
        fork.emit(EV.EVENT_TYPE_MESSAGE, {"messageId": "m2"})  # while no stream is attached
        wait_for(lambda: len(events("message.received")) == 2)
        assert fork.requests[0] == (0, "") and fork.requests[-1] == (2, SELF)  # resumed after seq 2
        assert [e["data"]["message_id"] for e in events("message.received")] == ["m1", "m2"]
        assert events("instance.stream_gap") == []
    finally:
        bridge.stop()


def test_a_send_interrupted_by_a_crash_is_settled_by_the_replayed_echo(fork, tmp_path):
    spec = {"token": "fork_token", "endpoint": fork.endpoint, "ca_file": fork.ca, "server_name": "fork.test"}
    path = str(tmp_path / "b.sqlite3")
    bridge = Bridge(path, token="t", providers=[spec])
    bridge.start()
    fork.emit(EV.EVENT_TYPE_LOGIN, {"contactId": SELF})
    wait_for(lambda: bridge.provider_for(SELF) and bridge.provider_for(SELF).resume_supported)
    # as if the bridge had died inside the provider call: the row says `sending`
    body = {"client_msg_id": "c-crash", "conversation_id": "wxid_friend", "conversation_type": "single",
            "type": "text", "content": {"text": "sent before the crash"}}
    bridge.store.accept_send(SELF, body)
    bridge.store.mark_sending("c-crash")
    bridge.stop()
    # the provider did send it; its echo is emitted while no bridge listens
    fork.messages["echo-1"] = {"text": "sent before the crash", "talker_id": SELF, "listener_id": "wxid_friend"}
    fork.emit(EV.EVENT_TYPE_MESSAGE, {"messageId": "echo-1"})
    fork.cut()
    again = Bridge(path, token="t")
    again.start()
    try:
        wait_for(lambda: again.store.send("c-crash")["state"] == "sent")
        statuses = [e["data"] for e in again.store.events_after(0, 1000, "")[0] if e["type"] == "message.status"]
        assert [s["status"] for s in statuses if s["client_msg_id"] == "c-crash"] == ["sent"]
    finally:
        again.stop()
