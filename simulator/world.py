"""What happens to the simulated accounts: bans, risk control, client exits, address-book
changes and QR logins (the `/sim/` endpoints and tests call these)."""
from __future__ import annotations

import uuid

from instances import protocol
from instances.protocol import ErrorCode, EventType
from simulator.base import (
    SimError,
    _decode_cursor,
    _encode_cursor,
    now_ms,
)
from simulator.data import build_account, person_name


class WorldMixin:
    """Account, address-book and login changes of a :class:`simulator.server.Simulator`."""

    def ban(self, account_id, detail="Account banned by WeCom (simulated)."):
        with self.lock:
            acc = self.accounts[account_id]
            acc.status = "banned"
            acc.was_online = False
            return self.emit(
                EventType.ACCOUNT_BANNED,
                account_id,
                {"account_id": account_id, "reason": "banned", "detail": detail, "until_ms": None},
            )

    def mark_abnormal(self, account_id, reason="risk_control", detail="Sending restricted (simulated).", until_ms=None):
        with self.lock:
            acc = self.accounts[account_id]
            if acc.status == "abnormal":
                return None
            acc.status = "abnormal"
            return self.emit(
                EventType.ACCOUNT_ABNORMAL,
                account_id,
                {"account_id": account_id, "reason": reason, "detail": detail, "until_ms": until_ms},
            )

    def client_exit(self, reason="crash"):
        """The WeCom client exits: accounts go offline; the runtime keeps answering."""
        with self.lock:
            if not self.client_running:
                return
            self.client_running = False
            self.emit(EventType.INSTANCE_CLIENT_EXITED, None, {"reason": reason, "exit_code": 1 if reason == "crash" else 0})
            for acc in self.accounts.values():
                acc.was_online = acc.status == "online"
                if acc.status == "online":
                    acc.status = "offline"
                    self.emit(EventType.ACCOUNT_OFFLINE, acc.account_id, {"account_id": acc.account_id, "reason": "client_exit"})

    def _start_client(self, reason):
        with self.lock:
            self.client_running = True
            self.emit(EventType.INSTANCE_STARTED, None, {"reason": reason, "client_version": self.client_version})
            for acc in self.accounts.values():
                if acc.was_online and acc.status == "offline":
                    acc.status = "online"
                    acc.was_online = False
                    self.emit(EventType.ACCOUNT_ONLINE, acc.account_id, {"account_id": acc.account_id, "profile": acc.as_dict()})

    def add_contact(self, account_id, name=None):
        with self.lock:
            acc = self._account(account_id)
            cid = f"{acc.account_id}_n{uuid.uuid4().hex[:8]}"
            contact = {
                "contact_id": cid,
                "name": name or person_name(self.rng),
                "kind": "friend",
                "remark": None,
                "avatar": None,
                "is_external": True,
                "added_at_ms": now_ms(),
            }
            acc.contacts.append(contact)
            acc.contact_index[cid] = contact
            self.emit(EventType.CONTACT_ADDED, acc.account_id, {"contact": dict(contact)})
            return contact

    def update_contact(self, account_id, contact_id=None, **changes):
        """Change a contact (default: its remark) and emit contact.updated."""
        with self.lock:
            acc = self._account(account_id)
            contact = acc.contact_index.get(contact_id) if contact_id else (acc.contacts[0] if acc.contacts else None)
            if contact is None:
                raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No contact {contact_id}.")
            contact.update(changes or {"remark": f"备注{self.rng.randrange(1000)}"})
            return self.emit(EventType.CONTACT_UPDATED, acc.account_id, {"contact": dict(contact)})

    def remove_contact(self, account_id, contact_id=None):
        """Delete a contact (default: the last one) and emit contact.removed."""
        with self.lock:
            acc = self._account(account_id)
            contact = acc.contact_index.get(contact_id) if contact_id else (acc.contacts[-1] if acc.contacts else None)
            if contact is None:
                raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No contact {contact_id}.")
            acc.contacts.remove(contact)
            del acc.contact_index[contact["contact_id"]]
            return self.emit(EventType.CONTACT_REMOVED, acc.account_id, {"contact": {"contact_id": contact["contact_id"]}})

    def _room(self, acc, room_id):
        room = acc.room_index.get(room_id) if room_id else (acc.rooms[0] if acc.rooms else None)
        if room is None:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No room {room_id}.")
        return room

    def rename_room(self, account_id, room_id=None, topic=None):
        with self.lock:
            acc = self._account(account_id)
            room = self._room(acc, room_id)
            room["topic"] = topic or f"{room['topic'].split('·')[0]}·{self.rng.randrange(100)}"
            return self.emit(
                EventType.ROOM_UPDATED,
                acc.account_id,
                {"room_id": room["room_id"], "topic": room["topic"], "room": dict(room)},
            )

    def member_join(self, account_id, room_id=None, name=None):
        with self.lock:
            acc = self._account(account_id)
            room = self._room(acc, room_id)
            member = {
                "member_id": f"wxid_j{uuid.uuid4().hex[:10]}",
                "name": name or person_name(self.rng),
                "role": "member",
                "room_alias": None,
                "avatar": None,
                "joined_at_ms": now_ms(),
                "invited_by": acc.account_id,
            }
            acc.members[room["room_id"]].append(member)
            room["member_count"] = len(acc.members[room["room_id"]])
            return self.emit(EventType.ROOM_MEMBER_JOINED, acc.account_id, {"room_id": room["room_id"], "members": [dict(member)]})

    def member_leave(self, account_id, room_id=None, member_id=None):
        with self.lock:
            acc = self._account(account_id)
            room = self._room(acc, room_id)
            members = acc.members[room["room_id"]]
            others = [m for m in members if m["member_id"] != acc.account_id and m["role"] != "owner"]
            member = next((m for m in members if m["member_id"] == member_id), None) if member_id else (others[-1] if others else None)
            if member is None:
                raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No member {member_id} to remove.")
            members.remove(member)
            room["member_count"] = len(members)
            return self.emit(EventType.ROOM_MEMBER_LEFT, acc.account_id, {"room_id": room["room_id"], "member_ids": [member["member_id"]]})

    def churn(self, account_id):
        """One of each incremental change: contact added/updated/removed, room renamed,
        member joined and left. Returns the events."""
        with self.lock:
            self.add_contact(account_id)
            added = self.events[-1]
            return [
                added,
                self.update_contact(account_id),
                self.remove_contact(account_id),
                self.rename_room(account_id),
                self.member_join(account_id),
                self.member_leave(account_id),
            ]

    # ================================================================= helpers

    def _account(self, account_id):
        acc = self.accounts.get(account_id)
        if acc is None:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No account {account_id} on this instance.")
        return acc

    def _online_account(self, account_id, *, sending=False):
        acc = self._account(account_id)
        if not self.client_running:
            raise SimError(ErrorCode.ACCOUNT_OFFLINE, "The WeCom client is not running.")
        if acc.status == "banned":
            if sending:
                raise SimError(ErrorCode.RISK_CONTROL, f"Account {account_id} is banned.")
            raise SimError(ErrorCode.NOT_LOGGED_IN, f"Account {account_id} is banned and logged out.")
        if acc.status == "offline":
            raise SimError(ErrorCode.NOT_LOGGED_IN, f"Account {account_id} is not logged in.")
        return acc

    @staticmethod
    def _paginate(items, query):
        limit = query.get("limit", protocol.DEFAULT_PAGE_LIMIT)
        offset = _decode_cursor(query["cursor"]) if query.get("cursor") else 0
        chunk = items[offset : offset + limit]
        nxt = offset + limit
        return {"items": [dict(i) for i in chunk], "next_cursor": _encode_cursor(nxt) if nxt < len(items) else None}

    def _login_view(self, login):
        return {k: login[k] for k in ("login_id", "status", "account_id", "expires_at_ms")}

    def _set_login(self, login, status):
        login["status"] = status
        self.emit(
            EventType.LOGIN_STATUS,
            login["account_id"] if status == "confirmed" else None,
            {"login_id": login["login_id"], "status": status, "account_id": login["account_id"]},
        )

    def _find_login(self, login_id):
        login = self.logins.get(login_id)
        if login is None:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No login {login_id}.")
        if login["status"] not in protocol.LOGIN_FINAL_STATUSES and now_ms() >= login["expires_at_ms"]:
            self._set_login(login, "expired")
        return login

    # ================================================================= /sim/ actions

    def scan(self, login_id):
        with self.lock:
            login = self._find_login(login_id)
            if login["status"] != "waiting":
                raise SimError(ErrorCode.INVALID_REQUEST, f"Login {login_id} is {login['status']}, not waiting.")
            self._set_login(login, "scanned")
            return self._login_view(login)

    def confirm(self, login_id, account_id=None, need_verify=False):
        with self.lock:
            login = self._find_login(login_id)
            if login["status"] == "waiting":
                self._set_login(login, "scanned")
            if login["status"] != "scanned":
                raise SimError(ErrorCode.INVALID_REQUEST, f"Login {login_id} is {login['status']}, not scanned.")
            if account_id:
                login["account_id"] = account_id
            if need_verify:
                login["verify_code"] = f"{self.rng.randrange(0, 1_000_000):06d}"
                self._set_login(login, "need_verify")
                return {**self._login_view(login), "verify_code": login["verify_code"]}
            self._complete_login(login)
            return self._login_view(login)

    def _complete_login(self, login):
        aid = login["account_id"]
        if aid and aid in self.accounts:
            acc = self.accounts[aid]
        else:
            index = max((a.index for a in self.accounts.values()), default=-1) + 1
            acc = build_account(self.seed, index, created_ms=now_ms(), status="offline", **self.sizes)
            self.accounts[acc.account_id] = acc
        acc.status = "online"
        acc.was_online = False
        login["account_id"] = acc.account_id
        self._set_login(login, "confirmed")
        self.emit(EventType.ACCOUNT_ONLINE, acc.account_id, {"account_id": acc.account_id, "profile": acc.as_dict()})
        self.emit(
            EventType.SYNC_COMPLETED,
            acc.account_id,
            {
                "sync_id": f"sync_{uuid.uuid4().hex[:12]}",
                "scope": "all",
                "counts": {
                    "contacts": len(acc.contacts),
                    "rooms": len(acc.rooms),
                    "members": sum(len(m) for m in acc.members.values()),
                },
            },
        )
        if self.history_on_login and self.client_running:
            self.chatter(self.history_on_login, account_id=acc.account_id, is_history=True)
