"""The protocol commands the simulator serves: one ``cmd_<name>`` method per command of
`instances.protocol.COMMANDS`."""
from __future__ import annotations

import hmac
import logging
import math
import time
import uuid

from instances import protocol
from instances.protocol import ErrorCode, EventType
from simulator.base import (
    RUNTIME,
    RUNTIME_VERSION,
    SimError,
    now_ms,
)

logger = logging.getLogger("simulator")


class CommandsMixin:
    """The protocol commands of a :class:`simulator.server.Simulator`."""

    # ================================================================= protocol commands

    def cmd_health(self, path, query, body):
        with self.lock:
            return 200, {
                "runtime": RUNTIME,
                "runtime_version": RUNTIME_VERSION,
                "client_version": self.client_version,
                "protocol_version": protocol.PROTOCOL_REVISION,
                "uptime_s": self.uptime_s,
                "accounts": [a.brief() for a in self.accounts.values()],
                "queue_depth": len(self.pending_sends),
                "client_running": self.client_running,
            }

    def cmd_capabilities(self, path, query, body):
        return 200, {
            "send_types": list(protocol.MESSAGE_TYPES),
            "mentions": True,
            "mention_all": True,
            "recall": False,
            "location": True,
            "max_page_limit": protocol.MAX_PAGE_LIMIT,
            "batch_send_max": self.batch_send_max,
            "protocol_versions": [protocol.PROTOCOL_REVISION],
        }

    def _config_view(self):
        cfg = self.config
        proxy = cfg["proxy"]
        return {
            "instance_id": self.instance_id,
            "webhook_url": cfg["webhook_url"],
            "webhook_secret_set": bool(cfg["webhook_secret"]),
            "heartbeat_interval_s": cfg["heartbeat_interval_s"],
            "webhook_batch_max": cfg.get("webhook_batch_max"),
            "proxy": None
            if not proxy
            else {
                "host": proxy["host"],
                "port": proxy["port"],
                "username": proxy.get("username"),
                "password_set": bool(proxy.get("password")),
            },
            "rate_limits": dict(cfg["rate_limits"]),
        }

    def cmd_push_config(self, path, query, body):
        with self.event_cond:
            applied = []
            before = (self.config["webhook_url"], self.config["heartbeat_interval_s"])
            for key, value in body.items():
                if key == "instance_id":
                    if value:
                        self.instance_id = value
                elif key == "rate_limits":
                    self.config["rate_limits"].update(value)
                else:
                    self.config[key] = value
                applied.append(key)
            if (self.config["webhook_url"], self.config["heartbeat_interval_s"]) != before:
                # a new webhook or interval: heartbeat now, then on the new interval (an
                # unchanged push leaves the schedule alone, so frequent pushes cannot starve it)
                self._next_heartbeat = time.monotonic()
            self.event_cond.notify_all()
            return 200, {"applied": sorted(applied), "config": self._config_view()}

    def cmd_restart(self, path, query, body):
        with self.lock:
            self.restart_count += 1
            reason = body.get("reason") or "restart"
            if self.client_running:
                self.client_exit("restart")
            self._restart_due = time.monotonic() + self.restart_delay_s
            logger.info("simulator restart requested: %s", reason)
            return 202, {"restarting": True}

    def cmd_start_login(self, path, query, body):
        with self.lock:
            if not self.client_running:
                raise SimError(ErrorCode.ACCOUNT_OFFLINE, "The WeCom client is not running.")
            target = body.get("account_id")
            if target:
                acc = self._account(target)
                if acc.status == "online":
                    raise SimError(ErrorCode.INVALID_REQUEST, f"Account {target} is already online.")
            login_id = f"lg_{uuid.uuid4().hex[:16]}"
            login = {
                "login_id": login_id,
                "status": "waiting",
                "account_id": target,
                "expires_at_ms": now_ms() + int(self.login_ttl_s * 1000),
                "verify_code": None,
            }
            self.logins[login_id] = login
            self.emit(EventType.LOGIN_STATUS, None, {"login_id": login_id, "status": "waiting", "account_id": target})
            return 201, {
                "login_id": login_id,
                "qrcode": {"content": f"{self.url}/sim/scan/{login_id}", "image_url": None},
                "expires_at_ms": login["expires_at_ms"],
                "status": "waiting",
            }

    def cmd_get_login(self, path, query, body):
        with self.lock:
            return 200, self._login_view(self._find_login(path["login_id"]))

    def cmd_verify_login(self, path, query, body):
        with self.lock:
            login = self._find_login(path["login_id"])
            if login["status"] != "need_verify":
                raise SimError(ErrorCode.INVALID_REQUEST, f"Login is {login['status']}, no code expected.")
            if not hmac.compare_digest(str(body["code"]), str(login["verify_code"])):
                raise SimError(ErrorCode.INVALID_REQUEST, "code: wrong verification code")
            self._complete_login(login)
            return 200, self._login_view(login)

    def cmd_cancel_login(self, path, query, body):
        with self.lock:
            login = self._find_login(path["login_id"])
            if login["status"] not in protocol.LOGIN_FINAL_STATUSES:
                self._set_login(login, "cancelled")
            return 200, self._login_view(login)

    def cmd_list_accounts(self, path, query, body):
        with self.lock:
            return 200, {"items": [a.as_dict() for a in self.accounts.values()]}

    def cmd_logout_account(self, path, query, body):
        with self.lock:
            acc = self._account(path["account_id"])
            if acc.status in ("online", "abnormal"):
                acc.status = "offline"
                self.emit(EventType.ACCOUNT_OFFLINE, acc.account_id, {"account_id": acc.account_id, "reason": "logout"})
            acc.was_online = False
            return 200, {"account_id": acc.account_id, "status": acc.status}

    def cmd_list_contacts(self, path, query, body):
        with self.lock:
            acc = self._online_account(path["account_id"])
            return 200, self._paginate(acc.contacts, query)

    def cmd_list_rooms(self, path, query, body):
        with self.lock:
            acc = self._online_account(path["account_id"])
            return 200, self._paginate(acc.rooms, query)

    def cmd_list_room_members(self, path, query, body):
        with self.lock:
            acc = self._online_account(path["account_id"])
            members = acc.members.get(path["room_id"])
            if members is None:
                raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No room {path['room_id']} for this account.")
            return 200, self._paginate(members, query)

    def cmd_send_message(self, path, query, body):
        with self.lock:
            acc = self._account(path["account_id"])
            return 202, self._accept_send(acc, body)

    def cmd_send_messages(self, path, query, body):
        """Revision 1.1: each item as cmd_send_message would take it, in order; after an item
        refused with a BATCH_STOP_CODES code, the rest are not attempted."""
        if not self.batch_send_max:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, "No such command: POST .../messages/batch.")
        if len(body["messages"]) > self.batch_send_max:
            raise SimError(ErrorCode.INVALID_REQUEST, f"messages: at most {self.batch_send_max} per batch.")
        results = []
        with self.lock:
            acc = self._account(path["account_id"])
            self.batch_sizes.append(len(body["messages"]))
            stopped = False
            for item in body["messages"]:
                cmid = item.get("client_msg_id") if isinstance(item, dict) else None
                cmid = cmid if isinstance(cmid, str) else None
                if stopped:
                    results.append({"client_msg_id": cmid, "status": protocol.NOT_ATTEMPTED, "message_id": None,
                                    "duplicate": False, "error": None})
                    continue
                errors = protocol.schema_errors("request", "send_message", item)
                try:
                    if errors:
                        raise SimError(ErrorCode.INVALID_REQUEST, "; ".join(errors[:5]))
                    results.append({**self._accept_send(acc, item), "error": None})
                except SimError as err:
                    status = err.code if err.code in ("rate_limited", "risk_control") else "failed"
                    results.append({"client_msg_id": cmid, "status": status, "message_id": None, "duplicate": False,
                                    "error": {"code": err.code, "message": err.message,
                                              "retry_after_s": err.retry_after_s}})
                    stopped = err.code in protocol.BATCH_STOP_CODES
        return 202, {"results": results}

    def _accept_send(self, acc, body):
        """Take one send (under self.lock): its answer, or SimError."""
        cmid = body["client_msg_id"]
        self.receipts[cmid] += 1
        existing = self.by_client_msg_id.get(cmid)
        if existing is not None:
            record = self.messages[existing]
            return {
                "message_id": record["message_id"],
                "client_msg_id": cmid,
                "status": record["status"],
                "duplicate": True,
            }
        acc = self._online_account(acc.account_id, sending=True)
        if acc.status == "abnormal":
            raise SimError(ErrorCode.RISK_CONTROL, f"Account {acc.account_id} is restricted by risk control.")
        ctype, conv = body["conversation_type"], body["conversation_id"]
        if ctype == "single" and conv not in acc.contact_index:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, f"conversation_id: no contact {conv}.")
        if ctype == "room" and conv not in acc.room_index:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, f"conversation_id: no room {conv}.")
        mentions = body.get("mentions")
        if mentions and ctype != "room":
            raise SimError(ErrorCode.INVALID_REQUEST, "mentions: only in rooms.")
        if isinstance(mentions, list):
            member_ids = {m["member_id"] for m in acc.members[conv]}
            unknown = [m for m in mentions if m not in member_ids]
            if unknown:
                raise SimError(ErrorCode.TARGET_NOT_FOUND, f"mentions: not members: {', '.join(unknown[:5])}.")
        if body["type"] == "card" and body["content"]["contact_id"] not in acc.contact_index:
            raise SimError(ErrorCode.TARGET_NOT_FOUND, "content.contact_id: no such contact.")
        mono = time.monotonic()
        if self.rate_limit_per_min > 0:
            while acc.send_times and acc.send_times[0] <= mono - 60:
                acc.send_times.popleft()
            if len(acc.send_times) >= self.rate_limit_per_min:
                wait = max(1, math.ceil(acc.send_times[0] + 60 - mono))
                raise SimError(
                    ErrorCode.RATE_LIMITED,
                    f"More than {self.rate_limit_per_min} messages a minute for this account.",
                    retry_after_s=wait,
                )
        if self.risk_control_after > 0 and acc.accepted_sends >= self.risk_control_after:
            self.mark_abnormal(acc.account_id, detail=f"Risk control after {acc.accepted_sends} messages.")
            raise SimError(ErrorCode.RISK_CONTROL, f"Account {acc.account_id} hit risk control.")
        acc.send_times.append(mono)
        acc.accepted_sends += 1
        message_id = f"msg_{uuid.uuid4().hex}"
        record = {
            "message_id": message_id,
            "client_msg_id": cmid,
            "account_id": acc.account_id,
            "request": body,
            "status": "queued",
            "error": None,
            "sent_at_ms": None,
            "due": mono + self.send_delay_ms / 1000.0,
        }
        self.messages[message_id] = record
        self.by_client_msg_id[cmid] = message_id
        self.pending_sends.append(message_id)
        return {"message_id": message_id, "client_msg_id": cmid, "status": "queued", "duplicate": False}

    def _finish_send(self, record):
        acc = self.accounts.get(record["account_id"])
        req = record["request"]
        error = None
        if acc is None or acc.status in ("offline",) or not self.client_running:
            status, error = "failed", {"code": ErrorCode.ACCOUNT_OFFLINE, "message": "Account went offline before sending."}
        elif acc.status in ("banned", "abnormal"):
            status, error = "risk_control", {"code": ErrorCode.RISK_CONTROL, "message": "Account restricted."}
        elif req["type"] in ("image", "video", "file") and "fail" in req["content"].get("url", ""):
            status, error = "failed", {"code": ErrorCode.MEDIA_FETCH_FAILED, "message": "Could not download the media."}
        else:
            status = "sent"
        record["status"] = status
        record["error"] = error
        if status == "sent":
            record["sent_at_ms"] = now_ms()
        if error:
            error = {**error, "retry_after_s": None}
            record["error"] = error
        self.emit(
            EventType.MESSAGE_STATUS,
            record["account_id"],
            {
                "message_id": record["message_id"],
                "client_msg_id": record["client_msg_id"],
                "status": status,
                "error": error,
                "sent_at_ms": record["sent_at_ms"],
            },
        )

    def cmd_get_message_status(self, path, query, body):
        with self.lock:
            acc = self._account(path["account_id"])
            key = path["message_id"]
            record = self.messages.get(key) or self.messages.get(self.by_client_msg_id.get(key, ""))
            if record is None or record["account_id"] != acc.account_id:
                raise SimError(ErrorCode.TARGET_NOT_FOUND, f"No message {key} for this account.")
            return 200, {k: record[k] for k in ("message_id", "client_msg_id", "status", "error", "sent_at_ms")}

    def cmd_events_after(self, path, query, body):
        after = query["after_seq"]
        limit = query.get("limit", protocol.DEFAULT_EVENTS_LIMIT)
        events, has_more = self.events_since(after, limit)
        with self.lock:
            return 200, {"events": events, "last_seq": self.last_seq, "has_more": has_more}
