"""The event table: event types and the schema of each event's data."""

from __future__ import annotations

from .constants import (
    CONVERSATION_TYPES,
    LOGIN_STATUSES,
    MESSAGE_FINAL_STATUSES,
    MESSAGE_TYPES,
    OFFLINE_REASONS,
)
from .schemas import (
    ACCOUNT,
    ACCOUNT_BRIEF,
    BOOL,
    CONTACT,
    ERROR_SCHEMA,
    ID,
    INT,
    MEMBER,
    MENTIONS,
    NESTR,
    NONNEG,
    NUM,
    ROOM,
    STR,
    TS_MS,
    array_of,
    enum_of,
    nullable,
    obj,
)


class EventType:
    INSTANCE_HEARTBEAT = "instance.heartbeat"
    INSTANCE_STARTED = "instance.started"
    INSTANCE_CLIENT_EXITED = "instance.client_exited"
    LOGIN_STATUS = "login.status"
    ACCOUNT_ONLINE = "account.online"
    ACCOUNT_OFFLINE = "account.offline"
    ACCOUNT_ABNORMAL = "account.abnormal"
    ACCOUNT_BANNED = "account.banned"
    MESSAGE_RECEIVED = "message.received"
    MESSAGE_STATUS = "message.status"
    CONTACT_ADDED = "contact.added"
    CONTACT_UPDATED = "contact.updated"
    CONTACT_REMOVED = "contact.removed"
    ROOM_UPDATED = "room.updated"
    ROOM_MEMBER_JOINED = "room.member_joined"
    ROOM_MEMBER_LEFT = "room.member_left"
    SYNC_COMPLETED = "sync.completed"
    # Revision 1.1, optional: runtimes whose upstream cannot replay (the puppet-service bridge,
    # docs/bridge.md) report a window of events they never received.
    INSTANCE_STREAM_GAP = "instance.stream_gap"


_ACCOUNT_TROUBLE = obj(
    ("account_id", "reason", "detail"),
    {"until_ms": nullable(TS_MS)},
    account_id=ID,
    reason=NESTR,
    detail=STR,
)

EVENT_DATA_SCHEMAS = {
    EventType.INSTANCE_HEARTBEAT: obj(
        ("uptime_s", "accounts", "queue_depth", "client_version", "client_running", "metrics"),
        uptime_s=NONNEG,
        accounts=array_of(ACCOUNT_BRIEF),
        queue_depth=NONNEG,
        client_version=STR,
        client_running=BOOL,
        metrics={
            "type": "object",
            "properties": {"cpu": NUM, "memory": NUM, "queue_depth": NUM},
            "required": ["cpu", "memory", "queue_depth"],
            "additionalProperties": NUM,
        },
    ),
    EventType.INSTANCE_STARTED: obj(("reason",), {"client_version": STR}, reason=STR),
    EventType.INSTANCE_CLIENT_EXITED: obj(("reason",), {"exit_code": nullable(INT)}, reason=STR),
    EventType.LOGIN_STATUS: obj(
        ("login_id", "status", "account_id"),
        login_id=ID,
        status=enum_of(LOGIN_STATUSES),
        account_id=nullable(ID),
    ),
    EventType.ACCOUNT_ONLINE: obj(("account_id",), {"profile": nullable(ACCOUNT)}, account_id=ID),
    EventType.ACCOUNT_OFFLINE: obj(("account_id", "reason"), account_id=ID, reason=enum_of(OFFLINE_REASONS)),
    EventType.ACCOUNT_ABNORMAL: _ACCOUNT_TROUBLE,
    EventType.ACCOUNT_BANNED: _ACCOUNT_TROUBLE,
    EventType.MESSAGE_RECEIVED: obj(
        (
            "message_id",
            "conversation_id",
            "conversation_type",
            "sender",
            "type",
            "content",
            "mentions",
            "mentions_self",
            "sent_at_ms",
            "is_self",
            "is_history",
        ),
        {"quoted_message_id": nullable(ID)},
        message_id=ID,
        conversation_id=ID,
        conversation_type=enum_of(CONVERSATION_TYPES),
        sender=obj(("id", "name"), id=ID, name=STR),
        type=enum_of(MESSAGE_TYPES),
        content={"type": "object"},
        mentions=MENTIONS,
        mentions_self=BOOL,
        sent_at_ms=TS_MS,
        is_self=BOOL,
        is_history=BOOL,
    ),
    EventType.MESSAGE_STATUS: obj(
        ("message_id", "client_msg_id", "status"),
        {"error": nullable(ERROR_SCHEMA), "sent_at_ms": nullable(TS_MS)},
        message_id=ID,
        client_msg_id=ID,
        status=enum_of(MESSAGE_FINAL_STATUSES),
    ),
    EventType.CONTACT_ADDED: obj(("contact",), contact=CONTACT),
    EventType.CONTACT_UPDATED: obj(("contact",), contact=CONTACT),
    EventType.CONTACT_REMOVED: obj(("contact",), contact=obj(("contact_id",), contact_id=ID)),
    EventType.ROOM_UPDATED: obj(("room_id",), {"topic": nullable(STR), "room": ROOM}, room_id=ID),
    EventType.ROOM_MEMBER_JOINED: obj(("room_id", "members"), room_id=ID, members=array_of(MEMBER, minItems=1)),
    EventType.ROOM_MEMBER_LEFT: obj(("room_id", "member_ids"), room_id=ID, member_ids=array_of(ID, minItems=1)),
    EventType.SYNC_COMPLETED: obj(
        ("sync_id", "scope", "counts"),
        sync_id=ID,
        scope=enum_of(("contacts", "rooms", "members", "all")),
        counts={"type": "object", "additionalProperties": NONNEG},
    ),
}
EVENT_DATA_SCHEMAS[EventType.INSTANCE_STREAM_GAP] = obj(
    ("from_ms", "to_ms", "detail"), {"account_id": nullable(ID)}, from_ms=TS_MS, to_ms=TS_MS, detail=STR
)
EVENT_TYPES = tuple(EVENT_DATA_SCHEMAS)
#: Event types only some runtimes emit (the simulator never loses events, so never a gap).
OPTIONAL_EVENT_TYPES = (EventType.INSTANCE_STREAM_GAP,)
#: Events that concern one account carry its id in the envelope's ``account_id``.
INSTANCE_LEVEL_EVENTS = (
    EventType.INSTANCE_HEARTBEAT,
    EventType.INSTANCE_STARTED,
    EventType.INSTANCE_CLIENT_EXITED,
    EventType.INSTANCE_STREAM_GAP,
)

EVENT_ENVELOPE_SCHEMA = obj(
    ("event_id", "type", "instance_id", "account_id", "seq", "ts_ms", "data"),
    event_id=ID,
    type=enum_of(EVENT_TYPES),
    instance_id=STR,
    account_id=nullable(ID),
    seq={"type": "integer", "minimum": 1},
    ts_ms=TS_MS,
    data={"type": "object"},
)

