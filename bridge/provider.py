"""One puppet-service endpoint and token = one WeCom account: the gRPC side of the bridge.

A ``Provider`` keeps a channel (TLS, the Wechaty root CA unless the operator gives another, the
call metadata ``authorization: Wechaty <token>``), reads the one event stream the server offers
and hands each event to the bridge, reconnecting with back-off when it breaks, and pings the
provider (``Ding``; the answer arrives as a ``dong`` event) so heartbeats can report whether the
provider is alive.

Resume (the WeCom providers' fork, ``@juzi/wechaty-grpc``): events carry ``seq``, and a stream
opened with ``EventRequest(seq=N, account_id=...)`` replays what followed N. A provider that ever
sent a non-zero ``seq`` is resumed from the last one stored; one that never did cannot resume,
so every reconnect (and every restart of the bridge) leaves a window whose events are lost, and
the bridge reports that window to the platform (``on_stream_gap``).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from pathlib import Path

import grpc

from bridge.stubs import (base_pb2, contact_pb2, download_upload_pb2, event_pb2, location_pb2, message_pb2, puppet_pb2_grpc, room_member_pb2,
                          room_pb2, url_link_pb2)

logger = logging.getLogger("bridge.provider")

DEFAULT_CA = Path(__file__).resolve().parent / "_stubs" / "wechaty-root-ca.pem"
# Event types of the puppet-service stream (wechaty.puppet.EventType).
EV = event_pb2.EventType
CALL_TIMEOUT_S = 10.0
NAME_TTL_S = 300.0


def _now_ms():
    return int(time.time() * 1000)


class Provider:
    def __init__(self, bridge, token, endpoint, *, ca_file=None, server_name="insecure", send_timeout_s=15.0,
                 ding_interval_s=10.0, backoff_base_s=0.5, backoff_max_s=30.0):
        self.bridge = bridge
        self.token = token
        self.endpoint = endpoint
        self.send_timeout_s = send_timeout_s
        self.ding_interval_s = ding_interval_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        ca = Path(ca_file).read_bytes() if ca_file else DEFAULT_CA.read_bytes()
        options = [("grpc.ssl_target_name_override", server_name), ("grpc.default_authority", server_name),
                   ("grpc.keepalive_time_ms", 20_000), ("grpc.max_receive_message_length", 16 * 1024 * 1024)]
        self.channel = grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(root_certificates=ca), options)
        self.stub = puppet_pb2_grpc.PuppetStub(self.channel)
        self.metadata = (("authorization", f"Wechaty {token}"),)
        store = bridge.store
        self.account_id = store.get(f"account:{token}")  # the last account this token held
        # as last seen (stored): a restarted bridge keeps taking sends for an account that was
        # logged in while the stream re-attaches; the stream's login/logout events correct it
        self.logged_in = bool(store.get(f"logged_in:{token}", False))
        self.connected = False
        self.last_dong_ms = 0
        self.last_event_ms = 0
        self.last_qrcode = None  # (qrcode, status, at_ms) of the latest scan event
        # resume: a seq ever seen means the provider numbers its events (the fork)
        self.resume_supported = bool(store.get(f"resume:{token}", False))
        self.last_seq = store.get(f"seq:{token}", 0)
        self._seen_saved_ms = 0
        self._stop = threading.Event()
        self._stream = None
        self._threads = []
        self.reconnects = 0
        self._names = {}

    # ---------------------------------------------------------------- lifecycle

    def start(self):
        for target, name in ((self._event_loop, "events"), (self._ding_loop, "ding")):
            thread = threading.Thread(target=target, name=f"provider-{name}-{self.token[:12]}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self):
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()
        self.channel.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def alive(self):
        """The provider answered a ding recently (or streamed anything)."""
        recent = max(self.last_dong_ms, self.last_event_ms)
        return self.connected and _now_ms() - recent < max(3 * self.ding_interval_s, 10) * 1000

    def reconnect(self):
        """Drop the stream; the event loop opens a new one (``POST /v1/restart``)."""
        stream = self._stream
        if stream is not None:
            stream.cancel()

    # ---------------------------------------------------------------- event stream

    def _event_loop(self):
        attempt = 0
        # the time up to which events are known to have been received: a previous run's
        down_since = self.bridge.store.get(f"seen:{self.token}")
        while not self._stop.is_set():
            if self.resume_supported:
                request = event_pb2.EventRequest(seq=self.last_seq, account_id=self.account_id or "")
            else:
                request = event_pb2.EventRequest()
            first = True
            try:
                self._stream = self.stub.Event(request, metadata=self.metadata)
                for response in self._stream:
                    if first:
                        first, attempt = False, 0
                        self.connected = True
                        self._on_connected(down_since)
                        down_since = None
                    self._on_event(response)
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                logger.warning("provider %s: event stream broke: %s", self.endpoint, exc.code())
            except Exception:  # an event the bridge failed on must not end the stream
                logger.exception("provider %s: event handling failed", self.endpoint)
            finally:
                self._stream = None
            if self.connected:
                self.connected = False
                down_since = self.last_event_ms or _now_ms()
                self.reconnects += 1
                self.bridge.on_provider_down(self)
            attempt += 1
            delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            self._stop.wait(delay)

    def _on_connected(self, down_since):
        if down_since is None:
            return
        if self.resume_supported:
            logger.info("provider %s: resumed after seq %s", self.endpoint, self.last_seq)
            return
        self.bridge.on_stream_gap(self, down_since, _now_ms())

    def _on_event(self, response):
        now = _now_ms()
        self.last_event_ms = now
        if now - self._seen_saved_ms > 1000:
            self._seen_saved_ms = now
            self.bridge.store.put(f"seen:{self.token}", now)
        if response.seq:
            if not self.resume_supported:
                self.resume_supported = True
                self.bridge.store.put(f"resume:{self.token}", True)
            self.last_seq = response.seq
            self.bridge.store.put(f"seq:{self.token}", response.seq)
        try:
            payload = json.loads(response.payload) if response.payload else {}
        except ValueError:
            payload = {"data": response.payload}
        kind = response.type
        if kind == EV.EVENT_TYPE_DONG:
            self.last_dong_ms = now
        elif kind == EV.EVENT_TYPE_LOGIN:
            self.account_id = payload.get("contactId")
            self.logged_in = True
            self.bridge.store.put(f"account:{self.token}", self.account_id)
            self.bridge.store.put(f"logged_in:{self.token}", True)
            self.bridge.on_login(self)
        elif kind == EV.EVENT_TYPE_LOGOUT:
            self.logged_in = False
            self.bridge.store.put(f"logged_in:{self.token}", False)
            self.bridge.on_logout(self, payload.get("data") or "")
        elif kind == EV.EVENT_TYPE_SCAN:
            self.last_qrcode = (payload.get("qrcode") or "", int(payload.get("status") or 0), now)
            self.bridge.on_scan(self, self.last_qrcode)
        elif kind == EV.EVENT_TYPE_MESSAGE:
            self.bridge.on_message(self, payload.get("messageId"))
        elif kind in (EV.EVENT_TYPE_ROOM_JOIN, EV.EVENT_TYPE_ROOM_LEAVE, EV.EVENT_TYPE_ROOM_TOPIC):
            self.bridge.on_room_event(self, kind, payload)
        elif kind == EV.EVENT_TYPE_DIRTY:
            self._names.clear()
        elif kind == EV.EVENT_TYPE_ERROR:
            logger.warning("provider %s error event: %s", self.endpoint, payload)

    def _ding_loop(self):
        n = 0
        while not self._stop.wait(self.ding_interval_s if n else 0.2):
            n += 1
            if not self.connected:
                continue
            try:
                self.stub.Ding(base_pb2.DingRequest(data=str(n)), metadata=self.metadata, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as exc:
                logger.info("provider %s: ding failed: %s", self.endpoint, exc.code())

    # ---------------------------------------------------------------- calls

    def _call(self, method, request, timeout=CALL_TIMEOUT_S):
        return getattr(self.stub, method)(request, metadata=self.metadata, timeout=timeout)

    def contact_ids(self):
        return list(self._call("ContactList", contact_pb2.ContactListRequest()).ids)

    def contact(self, contact_id):
        return self._call("ContactPayload", contact_pb2.ContactPayloadRequest(id=contact_id))

    def contact_name(self, contact_id):
        """The sender's name for inbound messages, cached for a few minutes: one payload call per
        sender, not per message (a rename shows up within the TTL; DIRTY events clear it)."""
        cached = self._names.get(contact_id)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        name = self.contact(contact_id).name
        if len(self._names) > 50_000:
            self._names.clear()
        self._names[contact_id] = (name, time.monotonic() + NAME_TTL_S)
        return name

    def room_ids(self):
        return list(self._call("RoomList", room_pb2.RoomListRequest()).ids)

    def room(self, room_id):
        return self._call("RoomPayload", room_pb2.RoomPayloadRequest(id=room_id))

    def member(self, room_id, member_id):
        return self._call("RoomMemberPayload", room_member_pb2.RoomMemberPayloadRequest(id=room_id, member_id=member_id))

    def message(self, message_id):
        return self._call("MessagePayload", message_pb2.MessagePayloadRequest(id=message_id))

    def message_contact(self, message_id):
        return self._call("MessageContact", message_pb2.MessageContactRequest(id=message_id)).id

    def message_link(self, message_id):
        return self._call("MessageUrl", message_pb2.MessageUrlRequest(id=message_id)).url_link

    def message_location(self, message_id):
        return self._call("MessageLocation", message_pb2.MessageLocationRequest(id=message_id)).location

    def message_file(self, message_id):
        """The file box of an inbound file/image/video message, as JSON (a URL, base64 data or
        a uuid to download)."""
        return json.loads(self._call("MessageFile", message_pb2.MessageFileRequest(id=message_id)).file_box or "{}")

    def download(self, uuid):
        """The chunks of a uuid file box (puppet-service's Download stream)."""
        for response in self.stub.Download(download_upload_pb2.DownloadRequest(id=uuid), metadata=self.metadata,
                                           timeout=120):
            yield response.chunk

    def logout(self):
        return self._call("Logout", base_pb2.LogoutRequest())

    def send(self, body):
        """One send of our protocol as the matching puppet call; returns the provider's message
        id ('' when it gives none). Raises grpc.RpcError."""
        conversation = body["conversation_id"]
        content = body["content"]
        kind = body["type"]
        timeout = self.send_timeout_s
        if kind == "text":
            mentions = body.get("mentions") or []
            request = message_pb2.MessageSendTextRequest(conversation_id=conversation, text=content["text"],
                                                         mentional_ids=mentions)
            return self._call("MessageSendText", request, timeout).id
        if kind in ("image", "video", "file"):
            name = content.get("filename") or content["url"].rsplit("/", 1)[-1].split("?")[0] or kind
            box = {"type": 2, "boxType": 2, "url": content["url"], "name": name, "headers": {}, "metadata": {}}
            request = message_pb2.MessageSendFileRequest(conversation_id=conversation, file_box=json.dumps(box))
            return self._call("MessageSendFile", request, timeout).id
        if kind == "link":
            link = url_link_pb2.UrlLinkPayload(
                title=content["title"], url=content["url"], description=content.get("desc") or "",
                thumbnail_url=content.get("thumb_url") or "")
            request = message_pb2.MessageSendUrlRequest(conversation_id=conversation, url_link=link)
            return self._call("MessageSendUrl", request, timeout).id
        if kind == "card":
            request = message_pb2.MessageSendContactRequest(conversation_id=conversation, contact_id=content["contact_id"])
            return self._call("MessageSendContact", request, timeout).id
        if kind == "location":
            location = location_pb2.LocationPayload(
                latitude=content["latitude"], longitude=content["longitude"], name=content.get("title") or "",
                address=content.get("address") or "")
            request = message_pb2.MessageSendLocationRequest(conversation_id=conversation, location=location)
            return self._call("MessageSendLocation", request, timeout).id
        raise ValueError(kind)
