"""JSON schemas (draft-07) of the protocol's objects, requests and responses."""

from __future__ import annotations

from .constants import (
    ACCOUNT_STATUSES,
    BATCH_ITEM_STATUSES,
    CONVERSATION_TYPES,
    LOGIN_STATUSES,
    MAX_BATCH_SEND,
    MAX_WEBHOOK_BATCH,
    MAX_PAGE_LIMIT,
    MEMBER_ROLES,
    MESSAGE_STATUSES,
    MESSAGE_TYPES,
)


def obj(required=None, optional=None, *, extra=True, **props):
    """Object schema with ``props`` and ``optional`` properties; ``required`` defaults to ``props``."""
    properties = dict(props)
    properties.update(optional or {})
    schema = {"type": "object", "properties": properties, "required": list(props if required is None else required)}
    if not extra:
        schema["additionalProperties"] = False
    return schema


STR = {"type": "string"}
NESTR = {"type": "string", "minLength": 1}
ID = {"type": "string", "minLength": 1, "maxLength": 100}
INT = {"type": "integer"}
NONNEG = {"type": "integer", "minimum": 0}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
TS_MS = {"type": "integer", "minimum": 0}
URL = {"type": "string", "pattern": r"^https?://", "maxLength": 2000}


def nullable(schema):
    """Allow null. Scalar schemas get ``"type": [t, "null"]`` (compiles to far faster code
    than ``anyOf``, which matters for pages of 500 items)."""
    kind = schema.get("type")
    if isinstance(kind, str) and kind not in ("object", "array"):
        nullable = {**schema, "type": [kind, "null"]}
        if "enum" in schema:
            nullable["enum"] = [*schema["enum"], None]
        return nullable
    return {"anyOf": [schema, {"type": "null"}]}


def enum_of(values):
    return {"type": "string", "enum": list(values)}


def array_of(items, **kw):
    return {"type": "array", "items": items, **kw}


ERROR_SCHEMA = obj(
    ("code", "message"),
    {"retry_after_s": nullable(NONNEG)},
    code=NESTR,
    message=STR,
)
ENVELOPE_SCHEMA = {
    "type": "object",
    "properties": {
        "ok": BOOL,
        "data": nullable({"type": "object"}),
        "error": nullable(ERROR_SCHEMA),
    },
    "required": ["ok"],
}

ACCOUNT_BRIEF = obj(("account_id", "status"), account_id=ID, status=enum_of(ACCOUNT_STATUSES))
ACCOUNT = obj(
    ("account_id", "nickname", "avatar", "status"),
    {
        "phone": nullable(STR),
        "email": nullable(STR),
        "gender": nullable({"type": "integer", "enum": [0, 1, 2]}),
        "region": nullable(STR),
        "signature": nullable(STR),
        "corp_name": nullable(STR),
    },
    account_id=ID,
    nickname=STR,
    avatar=nullable(STR),
    status=enum_of(ACCOUNT_STATUSES),
)
CONTACT = obj(
    ("contact_id", "name", "kind"),
    {
        "remark": nullable(STR),
        "avatar": nullable(STR),
        "gender": nullable({"type": "integer", "enum": [0, 1, 2]}),
        "region": nullable(STR),
        "signature": nullable(STR),
        "phone": nullable(STR),
        "corp_name": nullable(STR),
        "is_external": BOOL,
        "added_at_ms": nullable(TS_MS),
    },
    contact_id=ID,
    name=STR,
    kind=enum_of(("friend", "official")),
)
ROOM = obj(
    ("room_id", "topic", "member_count"),
    {
        "avatar": nullable(STR),
        "notice": nullable(STR),
        "owner_id": nullable(STR),
        "max_member_count": NONNEG,
        "my_role": enum_of(MEMBER_ROLES),
        "joined_at_ms": nullable(TS_MS),
    },
    room_id=ID,
    topic=STR,
    member_count=NONNEG,
)
MEMBER = obj(
    ("member_id", "name", "role"),
    {
        "room_alias": nullable(STR),
        "avatar": nullable(STR),
        "joined_at_ms": nullable(TS_MS),
        "invited_by": nullable(STR),
    },
    member_id=ID,
    name=STR,
    role=enum_of(MEMBER_ROLES),
)

#: Content schema of each message type (``content`` of sends and of ``message.received``).
CONTENT_SCHEMAS = {
    "text": obj(("text",), text={"type": "string", "minLength": 1, "maxLength": 10000}),
    "image": obj(("url",), url=URL),
    "video": obj(("url",), {"thumb_url": nullable(URL), "duration_s": nullable(NONNEG)}, url=URL),
    "file": obj(("url", "filename"), {"size": nullable(NONNEG)}, url=URL, filename=NESTR),
    "link": obj(
        ("title", "url"), {"desc": nullable(STR), "thumb_url": nullable(URL)}, title=NESTR, url=URL
    ),
    "card": obj(("contact_id",), contact_id=ID),
    "location": obj(
        ("latitude", "longitude"),
        {"title": nullable(STR), "address": nullable(STR)},
        latitude={"type": "number", "minimum": -90, "maximum": 90},
        longitude={"type": "number", "minimum": -180, "maximum": 180},
    ),
}

MENTIONS = {"anyOf": [array_of(ID, maxItems=500), {"const": "all"}, {"type": "null"}]}

MESSAGE_STATUS = obj(
    ("message_id", "client_msg_id", "status", "error", "sent_at_ms"),
    message_id=ID,
    client_msg_id=ID,
    status=enum_of(MESSAGE_STATUSES),
    error=nullable(ERROR_SCHEMA),
    sent_at_ms=nullable(TS_MS),
)
LOGIN = obj(
    ("login_id", "status", "account_id", "expires_at_ms"),
    login_id=ID,
    status=enum_of(LOGIN_STATUSES),
    account_id=nullable(ID),
    expires_at_ms=TS_MS,
)


def page_of(item):
    return obj(("items", "next_cursor"), items=array_of(item), next_cursor=nullable(STR))


PAGE_QUERY = obj(
    (),
    {"cursor": nullable(STR), "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT}},
)

SEND_REQUEST = {
    **obj(
        ("client_msg_id", "conversation_id", "conversation_type", "type", "content"),
        {"mentions": MENTIONS, "reply_to": nullable(ID)},
        client_msg_id=ID,
        conversation_id=ID,
        conversation_type=enum_of(CONVERSATION_TYPES),
        type=enum_of(MESSAGE_TYPES),
        content={"type": "object"},
    ),
    "allOf": [
        {
            "if": {"properties": {"type": {"const": t}}, "required": ["type"]},
            "then": {"properties": {"content": s}},
        }
        for t, s in CONTENT_SCHEMAS.items()
    ],
}

SEND_BATCH_REQUEST = obj(
    ("messages",),
    # Items are checked one by one (each against SEND_REQUEST): an invalid item is refused in
    # its own result, the others are sent.
    messages=array_of({"type": "object"}, minItems=1, maxItems=MAX_BATCH_SEND),
    extra=False,
)
SEND_BATCH_RESULT = obj(
    ("client_msg_id", "status"),
    {"message_id": nullable(ID), "duplicate": BOOL, "error": nullable(ERROR_SCHEMA)},
    client_msg_id={"type": ["string", "null"]},
    status=enum_of(BATCH_ITEM_STATUSES),
)

PROXY = nullable(
    obj(
        ("host", "port"),
        {"username": nullable(STR), "password": nullable(STR), "scheme": enum_of(("http", "socks5"))},
        host=NESTR,
        port={"type": "integer", "minimum": 1, "maximum": 65535},
    )
)
RATE_LIMITS = obj(
    (),
    {
        "per_conversation_interval_s": {"type": "number", "minimum": 0},
        "recipient_pause_min_s": {"type": "number", "minimum": 0},
        "recipient_pause_max_s": {"type": "number", "minimum": 0},
        "per_account_per_min": {"type": "integer", "minimum": 1},
    },
    extra=False,
)
CONFIG_REQUEST = obj(
    (),
    {
        "instance_id": nullable(STR),
        "webhook_url": nullable(URL),
        "webhook_secret": nullable(STR),
        "heartbeat_interval_s": {"type": "integer", "minimum": 1, "maximum": 3600},
        # Revision 1.2, optional: the most events the platform takes in one webhook delivery
        # (section 5.3); absent or 1, one event a request.
        "webhook_batch_max": {"type": "integer", "minimum": 1, "maximum": MAX_WEBHOOK_BATCH},
        "proxy": PROXY,
        "rate_limits": RATE_LIMITS,
        # Revision 1.1, optional: the puppet-service bridge's upstream endpoints, one token per
        # WeCom account (docs/bridge.md); runtimes that drive a client themselves ignore it.
        "puppet_services": array_of(
            obj(("token", "endpoint"), {"ca_file": nullable(STR), "server_name": nullable(STR)},
                 extra=False, token=NESTR, endpoint=NESTR),
            maxItems=500,
        ),
    },
    extra=False,
)


