"""The instance protocol's commands, answered from the providers (a mixin of ``Bridge``).

Puppet-service lists give every id at once and then one payload call per item: a page is the
ids of one snapshot (taken on the first page, kept by its cursor) and the payloads of that
page only, so one page costs ``limit`` calls whatever the size of the address book.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid

import grpc

from bridge import media
from bridge.errors import BridgeError, map_rpc_error
from bridge.provider import EV
from bridge.store import now_ms
from instances.protocol import (
    BATCH_STOP_CODES,
    DEFAULT_PAGE_LIMIT,
    MAX_BATCH_SEND,
    MAX_PAGE_LIMIT,
    MESSAGE_TYPES,
    PROTOCOL_REVISION,
    ErrorCode,
    EventType,
    schema_errors,
)

# wechaty-puppet's MessageType numbers (what the server puts on the wire, not the proto's enum).
PUPPET_TYPES = {1: "file", 3: "card", 6: "image", 7: "text", 8: "location", 14: "link", 15: "video"}
PUPPET_TYPE_NAMES = {0: "unknown", 2: "voice", 4: "chat history", 5: "sticker", 9: "mini program", 10: "group note",
                     11: "transfer", 12: "red envelope", 13: "recalled message", 16: "post"}
CONFIG_KEYS = ("instance_id", "webhook_url", "webhook_secret", "heartbeat_interval_s", "proxy", "rate_limits",
               "puppet_services", "webhook_batch_max")
LOGIN_TTL_S = 120
QR_WAIT_S = 5.0


def _gender(value):
    return int(value) if int(value) in (0, 1, 2) else 0


def _or_none(value):
    return value or None


class Commands:
    # ---------------------------------------------------------------- helpers

    def _provider(self, account_id, *, online=True):
        provider = self.provider_for(account_id)
        if provider is None:
            raise BridgeError(ErrorCode.TARGET_NOT_FOUND, f"Unknown account {account_id}.")
        if online:
            if not provider.logged_in:
                raise BridgeError(ErrorCode.NOT_LOGGED_IN, f"Account {account_id} is logged out.")
            if not provider.connected:
                raise BridgeError(ErrorCode.ACCOUNT_OFFLINE, f"The provider of {account_id} is unreachable.")
        return provider

    @staticmethod
    def _rpc(fn, *args):
        try:
            return fn(*args)
        except grpc.RpcError as exc:
            mapped = map_rpc_error(exc)
            raise BridgeError(mapped.code, mapped.message, mapped.retry_after_s) from None

    def _page(self, provider, kind, key, fetch_ids, query):
        """(ids of this page, next cursor). Cursors are ``<snapshot>:<offset>`` (base64)."""
        limit = int(query.get("limit") or DEFAULT_PAGE_LIMIT)
        cursor = query.get("cursor")
        snapshots = provider.__dict__.setdefault("_snapshots", {})
        if cursor:
            try:
                snap, offset = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
                ids = snapshots[(kind, key, snap)]
                offset = int(offset)
            except (ValueError, KeyError, UnicodeDecodeError):
                raise BridgeError(ErrorCode.INVALID_REQUEST, "cursor: not issued by this bridge (or expired).") from None
        else:
            snap, offset = uuid.uuid4().hex[:12], 0
            ids = self._rpc(fetch_ids)
            for old in [k for k in snapshots if k[:2] == (kind, key)]:
                del snapshots[old]
            snapshots[(kind, key, snap)] = ids
        chunk = ids[offset:offset + limit]
        following = offset + limit
        next_cursor = (base64.urlsafe_b64encode(f"{snap}:{following}".encode()).decode()
                       if following < len(ids) else None)
        return chunk, next_cursor

    def account_profile(self, provider):
        status = self.account_status(provider)
        try:
            payload = provider.contact(provider.account_id)
        except grpc.RpcError:
            return {"account_id": provider.account_id, "nickname": "", "avatar": None, "status": status}
        return {"account_id": provider.account_id, "nickname": payload.name, "avatar": _or_none(payload.avatar),
                "status": status, "phone": payload.phones[0] if payload.phones else None, "email": None,
                "gender": _gender(payload.gender), "region": _or_none(payload.city or payload.province),
                "signature": _or_none(payload.signature), "corp_name": _or_none(payload.corporation)}

    # ---------------------------------------------------------------- instance

    def cmd_health(self, params, query, body):
        providers = list(self.providers.values())
        return 200, {
            "runtime": "wework-puppet-bridge", "runtime_version": "1.0", "client_version": "1.0",
            "protocol_version": PROTOCOL_REVISION, "uptime_s": (now_ms() - self.started_ms) // 1000,
            "client_running": all(p.alive() for p in providers), "queue_depth": self.store.queue_depth(),
            "accounts": [{"account_id": p.account_id, "status": self.account_status(p)} for p in providers if p.account_id],
        }

    def cmd_capabilities(self, params, query, body):
        # puppet-service has no @all and no recall for these providers' sends
        return 200, {"send_types": list(MESSAGE_TYPES), "mentions": True, "mention_all": False, "recall": False,
                     "location": True, "max_page_limit": MAX_PAGE_LIMIT, "batch_send_max": MAX_BATCH_SEND,
                     "protocol_versions": [PROTOCOL_REVISION]}

    def config_view(self):
        view = {k: v for k, v in self.config.items() if k not in ("webhook_secret", "proxy")}
        view["webhook_secret_set"] = bool(self.config.get("webhook_secret"))
        proxy = self.config.get("proxy")
        view["proxy"] = ({k: v for k, v in proxy.items() if k != "password"} | {"password_set": bool(proxy.get("password"))}
                         if proxy else None)
        view["puppet_services"] = [{"endpoint": s["endpoint"], "token_set": True} for s in self._specs.values()]
        return view

    def cmd_push_config(self, params, query, body):
        unknown = set(body) - set(CONFIG_KEYS)
        if unknown:
            raise BridgeError(ErrorCode.INVALID_REQUEST, f"Unknown configuration keys: {', '.join(sorted(unknown))}.")
        services = body.pop("puppet_services", None)
        if services is not None:
            if not isinstance(services, list) or not all(
                    isinstance(s, dict) and isinstance(s.get("token"), str) and isinstance(s.get("endpoint"), str)
                    for s in services):
                raise BridgeError(ErrorCode.INVALID_REQUEST, "puppet_services: a list of {token, endpoint} objects.")
        before = (self.config.get("webhook_url"), self.config.get("heartbeat_interval_s"))
        with self.lock:
            self.config.update(body)
            self.store.put("config", self.config)
        applied = sorted(body)
        if services is not None:
            self.set_providers(services)
            applied.append("puppet_services")
        self.deliverer.wake()
        if (self.config.get("webhook_url"), self.config.get("heartbeat_interval_s")) != before:
            self._heartbeat_due.set()
        return 200, {"applied": applied, "config": self.config_view()}

    #: a restart starts this long after its answer (the answer goes first, section 4)
    restart_delay_s = 0.05

    def cmd_restart(self, params, query, body):
        """Reconnect every provider's stream (puppet-service cannot restart the WeCom client)."""
        def run():
            if self._stop.is_set():  # the bridge stopped since: its store is closed
                return
            self.emit(EventType.INSTANCE_CLIENT_EXITED, None, {"reason": "restart", "exit_code": 0})
            for provider in list(self.providers.values()):
                provider.reconnect()
            self.emit(EventType.INSTANCE_STARTED, None, {"reason": "restart", "client_version": "1.0"})
        timer = threading.Timer(self.restart_delay_s, run)
        # stop() cancels it, or waits for it, before closing the store (finished ones are dropped)
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()
        return 202, {"restarting": True}

    # ---------------------------------------------------------------- logins

    def _login_view(self, login):
        return {k: login[k] for k in ("login_id", "status", "account_id", "expires_at_ms")}

    def cmd_start_login(self, params, query, body):
        account_id = body.get("account_id")
        with self.lock:
            if account_id:
                provider = self.provider_for(account_id)
                if provider is None:
                    raise BridgeError(ErrorCode.TARGET_NOT_FOUND, f"Unknown account {account_id}.")
                if provider.logged_in:
                    raise BridgeError(ErrorCode.INVALID_REQUEST, f"Account {account_id} is already online.")
            else:
                free = [p for p in self.providers.values() if not p.logged_in and p.connected]
                if not free:
                    raise BridgeError(ErrorCode.INVALID_REQUEST,
                                      "Every token already holds a logged-in account (or its provider is unreachable): "
                                      "add a puppet-service token to log in another account.")
                provider = free[0]
        deadline = time.monotonic() + QR_WAIT_S
        while provider.last_qrcode is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if provider.last_qrcode is None or not provider.last_qrcode[0]:
            raise BridgeError(ErrorCode.ACCOUNT_OFFLINE, "The provider has shown no QR code yet; try again shortly.")
        login = {"login_id": f"lg_{uuid.uuid4().hex[:16]}", "status": "waiting", "account_id": None,
                 "expires_at_ms": now_ms() + LOGIN_TTL_S * 1000, "token": provider.token,
                 "qrcode": provider.last_qrcode[0]}
        with self.lock:
            self.logins[login["login_id"]] = login
        self.emit(EventType.LOGIN_STATUS, None, {"login_id": login["login_id"], "status": "waiting", "account_id": None})
        return 201, {**self._login_view(login), "qrcode": {"content": login["qrcode"], "image_url": None}}

    def _login(self, login_id):
        login = self.logins.get(login_id)
        if login is None:
            raise BridgeError(ErrorCode.TARGET_NOT_FOUND, f"Unknown login {login_id}.")
        if login["status"] not in ("confirmed", "expired", "cancelled") and now_ms() > login["expires_at_ms"]:
            login["status"] = "expired"
            self.emit(EventType.LOGIN_STATUS, None, {"login_id": login_id, "status": "expired", "account_id": None})
        return login

    def cmd_get_login(self, params, query, body):
        return 200, self._login_view(self._login(params["login_id"]))

    def cmd_verify_login(self, params, query, body):
        login = self._login(params["login_id"])
        raise BridgeError(ErrorCode.INVALID_REQUEST, f"Login {login['login_id']} does not need a code "
                          "(puppet-service providers verify on the phone).")

    def cmd_cancel_login(self, params, query, body):
        login = self._login(params["login_id"])
        if login["status"] not in ("confirmed", "expired", "cancelled"):
            login["status"] = "cancelled"
            self.emit(EventType.LOGIN_STATUS, None, {"login_id": login["login_id"], "status": "cancelled",
                                                     "account_id": None})
        return 200, self._login_view(login)

    # ---------------------------------------------------------------- accounts, contacts, rooms

    def cmd_list_accounts(self, params, query, body):
        return 200, {"items": [self.account_profile(p) for p in list(self.providers.values()) if p.account_id]}

    def cmd_logout_account(self, params, query, body):
        provider = self._provider(params["account_id"], online=False)
        if provider.logged_in:
            self._rpc(provider.logout)
        return 200, {"account_id": params["account_id"], "status": "offline"}

    def cmd_list_contacts(self, params, query, body):
        provider = self._provider(params["account_id"])

        def ids():
            rooms_and_self = {provider.account_id}
            return [i for i in provider.contact_ids() if i not in rooms_and_self and not i.endswith("@chatroom")]
        chunk, next_cursor = self._page(provider, "contacts", "", ids, query)
        items = []
        for contact_id in chunk:
            c = self._rpc(provider.contact, contact_id)
            items.append({"contact_id": c.id or contact_id, "name": c.name, "kind": "official" if c.type == 2 else "friend",
                          "remark": _or_none(c.alias), "avatar": _or_none(c.avatar), "gender": _gender(c.gender),
                          "region": _or_none(c.city or c.province), "signature": _or_none(c.signature),
                          "phone": c.phones[0] if c.phones else None, "corp_name": _or_none(c.corporation),
                          "is_external": not c.coworker, "added_at_ms": None})
        return 200, {"items": items, "next_cursor": next_cursor}

    def cmd_list_rooms(self, params, query, body):
        provider = self._provider(params["account_id"])
        chunk, next_cursor = self._page(provider, "rooms", "", provider.room_ids, query)
        items = []
        for room_id in chunk:
            r = self._rpc(provider.room, room_id)
            me = provider.account_id
            role = "owner" if r.owner_id == me else "admin" if me in r.admin_ids else "member"
            items.append({"room_id": r.id or room_id, "topic": r.topic, "member_count": len(r.member_ids),
                          "avatar": _or_none(r.avatar), "notice": None, "owner_id": _or_none(r.owner_id),
                          "max_member_count": 500, "my_role": role, "joined_at_ms": None})
        return 200, {"items": items, "next_cursor": next_cursor}

    def cmd_list_room_members(self, params, query, body):
        provider = self._provider(params["account_id"])
        room_id = params["room_id"]
        holder = {}

        def ids():
            holder["room"] = provider.room(room_id)
            return list(holder["room"].member_ids)
        chunk, next_cursor = self._page(provider, "members", room_id, ids, query)
        room = holder.get("room") or self._rpc(provider.room, room_id)
        items = []
        for member_id in chunk:
            m = self._rpc(provider.member, room_id, member_id)
            role = "owner" if member_id == room.owner_id else "admin" if member_id in room.admin_ids else "member"
            items.append({"member_id": m.id or member_id, "name": m.name, "role": role,
                          "room_alias": _or_none(m.room_alias), "avatar": _or_none(m.avatar), "joined_at_ms": None,
                          "invited_by": _or_none(m.inviter_id)})
        return 200, {"items": items, "next_cursor": next_cursor}

    # ---------------------------------------------------------------- messages

    def _check_send(self, provider, body):
        if body.get("mentions") == "all":
            raise BridgeError(ErrorCode.UNSUPPORTED_TYPE, "Mentioning everyone is not supported by puppet-service.")
        if body.get("mentions") and body["conversation_type"] != "room":
            raise BridgeError(ErrorCode.INVALID_REQUEST, "mentions: only in rooms.")
        if body.get("mentions") and body["type"] != "text":
            raise BridgeError(ErrorCode.UNSUPPORTED_TYPE, "mentions: only text messages can mention members.")
        if not provider.logged_in:
            raise BridgeError(ErrorCode.NOT_LOGGED_IN, "The account is logged out.")
        # a provider reconnecting does not refuse: the send is stored and waits for it

    def _accept(self, provider, account_id, body):
        existing = self.store.send(body["client_msg_id"])
        if existing is not None:
            return existing, True
        self._check_send(provider, body)
        row, duplicate = self.store.accept_send(account_id, body)
        return row, duplicate

    @staticmethod
    def _status_view(row):
        state = row["state"]
        return "queued" if state in ("queued", "sending", "unsure") else state

    def cmd_send_message(self, params, query, body):
        provider = self._provider(params["account_id"], online=False)
        row, duplicate = self._accept(provider, params["account_id"], body)
        self.wake_sender(params["account_id"])
        return 202, {"message_id": row["message_id"], "client_msg_id": row["client_msg_id"],
                     "status": self._status_view(row), "duplicate": duplicate}

    def cmd_send_messages(self, params, query, body):
        provider = self._provider(params["account_id"], online=False)
        results, stopped = [], False
        for item in body["messages"]:
            cid = item.get("client_msg_id")
            if stopped:
                results.append({"client_msg_id": cid, "status": "not_attempted", "message_id": None,
                                "duplicate": False, "error": None})
                continue
            errors = schema_errors("request", "send_message", item)
            try:
                if errors:
                    raise BridgeError(ErrorCode.INVALID_REQUEST, "; ".join(errors[:3]))
                row, duplicate = self._accept(provider, params["account_id"], item)
                results.append({"client_msg_id": cid, "status": self._status_view(row),
                                "message_id": row["message_id"], "duplicate": duplicate, "error": None})
            except BridgeError as err:
                status = {ErrorCode.RATE_LIMITED: "rate_limited", ErrorCode.RISK_CONTROL: "risk_control"}.get(err.code, "failed")
                results.append({"client_msg_id": cid, "status": status, "message_id": None, "duplicate": False,
                                "error": err.as_dict()})
                stopped = err.code in BATCH_STOP_CODES
        self.wake_sender(params["account_id"])
        return 202, {"results": results}

    def cmd_get_message_status(self, params, query, body):
        row = self.store.send(params["message_id"])
        if row is None or row["account_id"] != params["account_id"]:
            raise BridgeError(ErrorCode.TARGET_NOT_FOUND, f"Unknown message {params['message_id']}.")
        return 200, {"message_id": row["message_id"], "client_msg_id": row["client_msg_id"],
                     "status": self._status_view(row), "error": row["error"], "sent_at_ms": row["sent_at_ms"]}

    def cmd_events_after(self, params, query, body):
        limit = int(query.get("limit") or 500)
        events, has_more = self.store.events_after(int(query["after_seq"]), limit, self.config.get("instance_id") or "")
        last = events[-1]["seq"] if events else max(int(query["after_seq"]), 0)
        return 200, {"events": events, "last_seq": last, "has_more": has_more}

    # ---------------------------------------------------------------- inbound

    def on_message(self, provider, message_id):
        if not message_id:
            return
        try:
            m = provider.message(message_id)
        except grpc.RpcError as exc:
            self.emit(EventType.INSTANCE_STREAM_GAP, None, {
                "account_id": provider.account_id, "from_ms": now_ms(), "to_ms": now_ms(),
                "detail": f"Message {message_id} could not be read from the provider: {exc.code().name}"})
            return
        me = provider.account_id
        is_self = m.talker_id == me
        conversation = m.room_id or (m.listener_id if is_self else m.talker_id)
        if is_self and self.settle_by_echo(conversation, m.text if PUPPET_TYPES.get(m.type) == "text" else None):
            return  # the echo of one of our own sends: reported as message.status, not as received
        kind = PUPPET_TYPES.get(m.type)
        if kind == "text" or kind is None:
            text = m.text if kind == "text" else f"[{PUPPET_TYPE_NAMES.get(m.type, 'unknown')}] {m.text}".strip()
            content, kind = {"text": text or "[empty]"}, "text"
        elif kind in ("image", "video", "file"):
            url = media.media_url(self.public_url or "http://127.0.0.1", self.token, provider.token, m.id or message_id)
            content = {"url": url, "filename": m.filename or kind}
        else:
            content, kind = self._attachment(provider, m, kind)
        sent_ms = m.receive_time.ToMilliseconds() if m.HasField("receive_time") else (m.timestamp_deprecated or now_ms())
        try:
            sender_name = provider.contact_name(m.talker_id) if m.talker_id else ""
        except grpc.RpcError:
            sender_name = ""
        self.emit(EventType.MESSAGE_RECEIVED, me, {
            "message_id": m.id or message_id, "conversation_id": conversation or m.talker_id,
            "conversation_type": "room" if m.room_id else "single",
            "sender": {"id": m.talker_id or "unknown", "name": sender_name}, "type": kind, "content": content,
            "mentions": list(m.mention_ids) or None, "mentions_self": me in m.mention_ids,
            "sent_at_ms": int(sent_ms), "is_self": is_self, "is_history": False})

    @staticmethod
    def _attachment(provider, m, kind):
        """Content of a card, link or location message, from the provider's payload call; when
        the provider cannot give it, a text saying what arrived (never an invented value)."""
        try:
            if kind == "card":
                contact_id = provider.message_contact(m.id)
                if contact_id:
                    return {"contact_id": contact_id}, kind
            elif kind == "link":
                link = provider.message_link(m.id)
                if link.url.startswith(("http://", "https://")):
                    return {"title": link.title or link.url, "url": link.url, "desc": link.description or None,
                            "thumb_url": link.thumbnail_url if link.thumbnail_url.startswith("http") else None}, kind
            else:
                place = provider.message_location(m.id)
                if -90 <= place.latitude <= 90 and -180 <= place.longitude <= 180:
                    return {"latitude": place.latitude, "longitude": place.longitude, "title": place.name or None,
                            "address": place.address or None}, kind
        except grpc.RpcError:
            pass
        return {"text": f"[{kind}] {m.text}".strip()}, "text"

    def on_room_event(self, provider, kind, payload):
        room_id = payload.get("roomId")
        if not room_id or not provider.account_id:
            return
        if kind == EV.EVENT_TYPE_ROOM_TOPIC:
            self.emit(EventType.ROOM_UPDATED, provider.account_id, {"room_id": room_id, "topic": payload.get("newTopic")})
        elif kind == EV.EVENT_TYPE_ROOM_LEAVE:
            self.emit(EventType.ROOM_MEMBER_LEFT, provider.account_id,
                      {"room_id": room_id, "member_ids": payload.get("removeeIdList") or []})
        else:
            members = []
            for member_id in payload.get("inviteeIdList") or []:
                try:
                    m = provider.member(room_id, member_id)
                    members.append({"member_id": member_id, "name": m.name, "role": "member",
                                    "invited_by": payload.get("inviterId")})
                except grpc.RpcError:
                    members.append({"member_id": member_id, "name": "", "role": "member"})
            self.emit(EventType.ROOM_MEMBER_JOINED, provider.account_id, {"room_id": room_id, "members": members})
