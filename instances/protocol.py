"""Instance protocol v1: the single source of truth shared by the client, the simulator and
the webhook intake.

Everything a party to the protocol needs lives here: the version, the command table (method,
path, idempotency, request and response JSON schemas), the event table (data schemas), error
codes with their HTTP statuses, paging limits, the risk-control defaults and the webhook
signature helpers. ``docs/instance-protocol.md`` is the prose version of this module; the
contract test (``instances/tests/test_contract.py``) keeps the client and the simulator in step
with it.

This module has no Django dependency so that the simulator can run without a database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache

# ---------------------------------------------------------------------------------------------
# Version
# ---------------------------------------------------------------------------------------------

#: Major version of the protocol. A breaking change bumps it and moves every path to /v<N>/.
PROTOCOL_VERSION = "1"
#: Minor revision: additive changes only (new optional fields, new commands, new event types).
PROTOCOL_REVISION = "1.1"
#: Sent on every request and every response (``X-Protocol-Version: 1.0``).
VERSION_HEADER = "X-Protocol-Version"
PATH_PREFIX = f"/v{PROTOCOL_VERSION}"

# ---------------------------------------------------------------------------------------------
# Error codes
# ---------------------------------------------------------------------------------------------


class ErrorCode:
    """String error codes of the response envelope (numeric codes collide across runtimes)."""

    NOT_LOGGED_IN = "not_logged_in"
    ACCOUNT_OFFLINE = "account_offline"
    RATE_LIMITED = "rate_limited"
    RISK_CONTROL = "risk_control"
    TARGET_NOT_FOUND = "target_not_found"
    UNSUPPORTED_TYPE = "unsupported_type"
    MEDIA_FETCH_FAILED = "media_fetch_failed"
    CLIENT_VERSION_MISMATCH = "client_version_mismatch"
    INVALID_REQUEST = "invalid_request"
    INTERNAL = "internal"
    # Added by this project to the starting point:
    UNAUTHORIZED = "unauthorized"
    UNSUPPORTED_PROTOCOL_VERSION = "unsupported_protocol_version"
    # Client-side only (never sent by an instance): transport failures and bad responses.
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    INVALID_RESPONSE = "invalid_response"


#: Codes an instance may put in the error envelope, with the HTTP status it answers with.
ERROR_HTTP_STATUS = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.UNSUPPORTED_PROTOCOL_VERSION: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.RISK_CONTROL: 403,
    ErrorCode.TARGET_NOT_FOUND: 404,
    ErrorCode.NOT_LOGGED_IN: 409,
    ErrorCode.ACCOUNT_OFFLINE: 409,
    ErrorCode.CLIENT_VERSION_MISMATCH: 409,
    ErrorCode.UNSUPPORTED_TYPE: 422,
    ErrorCode.MEDIA_FETCH_FAILED: 422,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
}
INSTANCE_ERROR_CODES = tuple(ERROR_HTTP_STATUS)
#: In a batch send, an item refused with one of these codes concerns the whole account: the
#: instance attempts none of the items after it (they come back ``not_attempted``).
BATCH_STOP_CODES = (
    ErrorCode.RISK_CONTROL,
    ErrorCode.NOT_LOGGED_IN,
    ErrorCode.ACCOUNT_OFFLINE,
    ErrorCode.RATE_LIMITED,
    ErrorCode.CLIENT_VERSION_MISMATCH,
)

# ---------------------------------------------------------------------------------------------
# Enumerations
# ---------------------------------------------------------------------------------------------

ACCOUNT_STATUSES = ("online", "offline", "abnormal", "banned")
LOGIN_STATUSES = ("waiting", "scanned", "need_verify", "confirmed", "expired", "cancelled")
LOGIN_FINAL_STATUSES = ("confirmed", "expired", "cancelled")
CONVERSATION_TYPES = ("single", "room")
MESSAGE_TYPES = ("text", "image", "video", "file", "link", "card", "location")
#: Status of an outbound message: ``queued`` on acceptance, then exactly one final status.
MESSAGE_STATUSES = ("queued", "sent", "failed", "rate_limited", "risk_control")
MESSAGE_FINAL_STATUSES = ("sent", "failed", "rate_limited", "risk_control")
#: Status of an item of a batch send that the instance did not look at, because an earlier item
#: of the same batch stopped the account (see ``BATCH_STOP_CODES``). Nothing of it is kept: a
#: later send with its client_msg_id is a first send.
NOT_ATTEMPTED = "not_attempted"
BATCH_ITEM_STATUSES = (*MESSAGE_STATUSES, NOT_ATTEMPTED)
MEMBER_ROLES = ("owner", "admin", "member")
OFFLINE_REASONS = ("logout", "kicked", "network", "client_exit")

# ---------------------------------------------------------------------------------------------
# Paging, timing and risk-control defaults
# ---------------------------------------------------------------------------------------------

DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 500
DEFAULT_EVENTS_LIMIT = 500
#: Most messages in one batch send (``send_messages``, revision 1.1).
MAX_BATCH_SEND = 100

DEFAULT_HEARTBEAT_INTERVAL_S = 30
#: The platform marks an instance offline after this many missed heartbeats.
MISSED_HEARTBEATS_OFFLINE = 3
DEFAULT_LOGIN_TTL_S = 120

#: Careful defaults: there are no official numbers for client runtimes.
DEFAULT_RATE_LIMITS = {
    "per_conversation_interval_s": 3.0,  # one message per 3 s per conversation
    "recipient_pause_min_s": 3.0,  # random 3-5 s pause between recipients
    "recipient_pause_max_s": 5.0,
    "per_account_per_min": 30,  # at most 30-40 a minute per account
}

# ---------------------------------------------------------------------------------------------
# Webhook signature
# ---------------------------------------------------------------------------------------------

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
EVENT_ID_HEADER = "X-Event-Id"
SEQ_HEADER = "X-Event-Seq"
INSTANCE_ID_HEADER = "X-Instance-Id"
SIGNATURE_PREFIX = "sha256="
#: Allowed clock difference between the instance and the platform, seconds, either way.
SIGNATURE_TOLERANCE_S = 300


class SignatureError(ValueError):
    """A webhook signature or timestamp was refused; ``reason`` says which check failed."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _as_bytes(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")


def sign(body, secret, timestamp):
    """Return the ``X-Signature`` header value for a raw webhook body.

    ``sha256=`` + hex HMAC-SHA256, keyed with the instance's webhook secret, of the bytes
    ``b"<timestamp>.<raw body>"`` where ``timestamp`` is the ``X-Timestamp`` header value
    (integer Unix seconds).
    """
    message = _as_bytes(str(int(timestamp))) + b"." + _as_bytes(body)
    digest = hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signature_headers(body, secret, *, event_id, seq=None, instance_id=None, timestamp=None):
    """All headers an instance sends with one webhook delivery (freshly timestamped)."""
    ts = int(time.time() if timestamp is None else timestamp)
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(ts),
        EVENT_ID_HEADER: str(event_id),
        SIGNATURE_HEADER: sign(body, secret, ts),
        VERSION_HEADER: PROTOCOL_REVISION,
    }
    if seq is not None:
        headers[SEQ_HEADER] = str(seq)
    if instance_id is not None:
        headers[INSTANCE_ID_HEADER] = str(instance_id)
    return headers


def check_signature(body, secret, timestamp, signature, *, tolerance_s=SIGNATURE_TOLERANCE_S, now=None):
    """Raise :class:`SignatureError` unless the signature and the timestamp are acceptable.

    Checks, in order: a timestamp is present and an integer; it lies within ``tolerance_s``
    of ``now`` (refuses replays of captured requests); the signature has the ``sha256=``
    form; the HMAC matches (constant-time comparison). Replays inside the window are refused
    by the receiver's de-duplication on ``X-Event-Id``.
    """
    if not secret:
        raise SignatureError("no_secret")
    if timestamp is None or timestamp == "":
        raise SignatureError("missing_timestamp")
    try:
        ts = int(_as_bytes(timestamp).decode("ascii").strip())
    except (ValueError, UnicodeDecodeError):
        raise SignatureError("malformed_timestamp") from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise SignatureError("stale_timestamp")
    if not signature:
        raise SignatureError("missing_signature")
    signature = _as_bytes(signature).decode("ascii", "replace").strip()
    if not signature.startswith(SIGNATURE_PREFIX) or not re.fullmatch(
        r"[0-9a-fA-F]{64}", signature[len(SIGNATURE_PREFIX) :]
    ):
        raise SignatureError("malformed_signature")
    expected = sign(body, secret, ts)
    if not hmac.compare_digest(expected.lower(), signature.lower()):
        raise SignatureError("bad_signature")


def verify(body, secret, timestamp, signature, *, tolerance_s=SIGNATURE_TOLERANCE_S, now=None):
    """True when :func:`check_signature` accepts the delivery, else False."""
    try:
        check_signature(body, secret, timestamp, signature, tolerance_s=tolerance_s, now=now)
    except SignatureError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# JSON schema building blocks
# ---------------------------------------------------------------------------------------------


def _obj(required=None, optional=None, *, extra=True, **props):
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


def _nullable(schema):
    """Allow null. Scalar schemas get ``"type": [t, "null"]`` (compiles to far faster code
    than ``anyOf``, which matters for pages of 500 items)."""
    kind = schema.get("type")
    if isinstance(kind, str) and kind not in ("object", "array"):
        nullable = {**schema, "type": [kind, "null"]}
        if "enum" in schema:
            nullable["enum"] = [*schema["enum"], None]
        return nullable
    return {"anyOf": [schema, {"type": "null"}]}


def _enum(values):
    return {"type": "string", "enum": list(values)}


def _array(items, **kw):
    return {"type": "array", "items": items, **kw}


ERROR_SCHEMA = _obj(
    ("code", "message"),
    {"retry_after_s": _nullable(NONNEG)},
    code=NESTR,
    message=STR,
)
ENVELOPE_SCHEMA = {
    "type": "object",
    "properties": {
        "ok": BOOL,
        "data": _nullable({"type": "object"}),
        "error": _nullable(ERROR_SCHEMA),
    },
    "required": ["ok"],
}

ACCOUNT_BRIEF = _obj(("account_id", "status"), account_id=ID, status=_enum(ACCOUNT_STATUSES))
ACCOUNT = _obj(
    ("account_id", "nickname", "avatar", "status"),
    {
        "phone": _nullable(STR),
        "email": _nullable(STR),
        "gender": _nullable({"type": "integer", "enum": [0, 1, 2]}),
        "region": _nullable(STR),
        "signature": _nullable(STR),
        "corp_name": _nullable(STR),
    },
    account_id=ID,
    nickname=STR,
    avatar=_nullable(STR),
    status=_enum(ACCOUNT_STATUSES),
)
CONTACT = _obj(
    ("contact_id", "name", "kind"),
    {
        "remark": _nullable(STR),
        "avatar": _nullable(STR),
        "gender": _nullable({"type": "integer", "enum": [0, 1, 2]}),
        "region": _nullable(STR),
        "signature": _nullable(STR),
        "phone": _nullable(STR),
        "corp_name": _nullable(STR),
        "is_external": BOOL,
        "added_at_ms": _nullable(TS_MS),
    },
    contact_id=ID,
    name=STR,
    kind=_enum(("friend", "official")),
)
ROOM = _obj(
    ("room_id", "topic", "member_count"),
    {
        "avatar": _nullable(STR),
        "notice": _nullable(STR),
        "owner_id": _nullable(STR),
        "max_member_count": NONNEG,
        "my_role": _enum(MEMBER_ROLES),
        "joined_at_ms": _nullable(TS_MS),
    },
    room_id=ID,
    topic=STR,
    member_count=NONNEG,
)
MEMBER = _obj(
    ("member_id", "name", "role"),
    {
        "room_alias": _nullable(STR),
        "avatar": _nullable(STR),
        "joined_at_ms": _nullable(TS_MS),
        "invited_by": _nullable(STR),
    },
    member_id=ID,
    name=STR,
    role=_enum(MEMBER_ROLES),
)

#: Content schema of each message type (``content`` of sends and of ``message.received``).
CONTENT_SCHEMAS = {
    "text": _obj(("text",), text={"type": "string", "minLength": 1, "maxLength": 10000}),
    "image": _obj(("url",), url=URL),
    "video": _obj(("url",), {"thumb_url": _nullable(URL), "duration_s": _nullable(NONNEG)}, url=URL),
    "file": _obj(("url", "filename"), {"size": _nullable(NONNEG)}, url=URL, filename=NESTR),
    "link": _obj(
        ("title", "url"), {"desc": _nullable(STR), "thumb_url": _nullable(URL)}, title=NESTR, url=URL
    ),
    "card": _obj(("contact_id",), contact_id=ID),
    "location": _obj(
        ("latitude", "longitude"),
        {"title": _nullable(STR), "address": _nullable(STR)},
        latitude={"type": "number", "minimum": -90, "maximum": 90},
        longitude={"type": "number", "minimum": -180, "maximum": 180},
    ),
}

MENTIONS = {"anyOf": [_array(ID, maxItems=500), {"const": "all"}, {"type": "null"}]}

MESSAGE_STATUS = _obj(
    ("message_id", "client_msg_id", "status", "error", "sent_at_ms"),
    message_id=ID,
    client_msg_id=ID,
    status=_enum(MESSAGE_STATUSES),
    error=_nullable(ERROR_SCHEMA),
    sent_at_ms=_nullable(TS_MS),
)
LOGIN = _obj(
    ("login_id", "status", "account_id", "expires_at_ms"),
    login_id=ID,
    status=_enum(LOGIN_STATUSES),
    account_id=_nullable(ID),
    expires_at_ms=TS_MS,
)


def _page(item):
    return _obj(("items", "next_cursor"), items=_array(item), next_cursor=_nullable(STR))


PAGE_QUERY = _obj(
    (),
    {"cursor": _nullable(STR), "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT}},
)

SEND_REQUEST = {
    **_obj(
        ("client_msg_id", "conversation_id", "conversation_type", "type", "content"),
        {"mentions": MENTIONS, "reply_to": _nullable(ID)},
        client_msg_id=ID,
        conversation_id=ID,
        conversation_type=_enum(CONVERSATION_TYPES),
        type=_enum(MESSAGE_TYPES),
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

SEND_BATCH_REQUEST = _obj(
    ("messages",),
    # Items are checked one by one (each against SEND_REQUEST): an invalid item is refused in
    # its own result, the others are sent.
    messages=_array({"type": "object"}, minItems=1, maxItems=MAX_BATCH_SEND),
    extra=False,
)
SEND_BATCH_RESULT = _obj(
    ("client_msg_id", "status"),
    {"message_id": _nullable(ID), "duplicate": BOOL, "error": _nullable(ERROR_SCHEMA)},
    client_msg_id={"type": ["string", "null"]},
    status=_enum(BATCH_ITEM_STATUSES),
)

PROXY = _nullable(
    _obj(
        ("host", "port"),
        {"username": _nullable(STR), "password": _nullable(STR), "scheme": _enum(("http", "socks5"))},
        host=NESTR,
        port={"type": "integer", "minimum": 1, "maximum": 65535},
    )
)
RATE_LIMITS = _obj(
    (),
    {
        "per_conversation_interval_s": {"type": "number", "minimum": 0},
        "recipient_pause_min_s": {"type": "number", "minimum": 0},
        "recipient_pause_max_s": {"type": "number", "minimum": 0},
        "per_account_per_min": {"type": "integer", "minimum": 1},
    },
    extra=False,
)
CONFIG_REQUEST = _obj(
    (),
    {
        "instance_id": _nullable(STR),
        "webhook_url": _nullable(URL),
        "webhook_secret": _nullable(STR),
        "heartbeat_interval_s": {"type": "integer", "minimum": 1, "maximum": 3600},
        "proxy": PROXY,
        "rate_limits": RATE_LIMITS,
        # Revision 1.1, optional: the puppet-service bridge's upstream endpoints, one token per
        # WeCom account (docs/bridge.md); runtimes that drive a client themselves ignore it.
        "puppet_services": _array(
            _obj(("token", "endpoint"), {"ca_file": _nullable(STR), "server_name": _nullable(STR)},
                 extra=False, token=NESTR, endpoint=NESTR),
            maxItems=500,
        ),
    },
    extra=False,
)


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command of the instance API.

    ``name`` is the client's method name and the simulator's handler key; ``path`` uses
    ``{placeholders}``; ``idempotent`` commands may be retried by the client after a timeout,
    a connection failure, a 5xx or (GETs only) a short 429.
    """

    name: str
    method: str
    path: str
    status: int
    response: dict
    request: dict | None = None
    query: dict | None = None
    idempotent: bool = False
    paged: bool = False
    summary: str = ""
    path_params: tuple = field(default=())

    def url_path(self, **params):
        """Fill the path's placeholders (values must be URL-safe ids)."""
        from urllib.parse import quote

        return PATH_PREFIX + self.path.format(**{k: quote(str(v), safe="") for k, v in params.items()})


def _cmd(name, method, path, status, response, **kw):
    return Command(
        name=name,
        method=method,
        path=path,
        status=status,
        response=response,
        path_params=tuple(re.findall(r"{(\w+)}", path)),
        **kw,
    )


COMMAND_LIST = [
    _cmd(
        "health",
        "GET",
        "/health",
        200,
        _obj(
            (
                "runtime",
                "client_version",
                "protocol_version",
                "uptime_s",
                "accounts",
                "queue_depth",
                "client_running",
            ),
            {"runtime_version": _nullable(STR)},
            runtime=NESTR,
            client_version=STR,
            protocol_version=NESTR,
            uptime_s=NONNEG,
            accounts=_array(ACCOUNT_BRIEF),
            queue_depth=NONNEG,
            client_running=BOOL,
        ),
        idempotent=True,
        summary="Liveness, versions and account states.",
    ),
    _cmd(
        "capabilities",
        "GET",
        "/capabilities",
        200,
        _obj(
            ("send_types", "mentions", "mention_all", "recall", "location", "max_page_limit", "protocol_versions"),
            # revision 1.1; absent or 0: the instance has no batch send
            {"batch_send_max": {"type": "integer", "minimum": 0, "maximum": MAX_BATCH_SEND}},
            send_types=_array(_enum(MESSAGE_TYPES)),
            mentions=BOOL,
            mention_all=BOOL,
            recall=BOOL,
            location=BOOL,
            max_page_limit=NONNEG,
            protocol_versions=_array(STR),
        ),
        idempotent=True,
        summary="What this runtime can do.",
    ),
    _cmd(
        "push_config",
        "PUT",
        "/config",
        200,
        _obj(("applied", "config"), applied=_array(STR), config={"type": "object"}),
        request=CONFIG_REQUEST,
        idempotent=True,
        summary="Replace the given configuration keys (absent keys unchanged).",
    ),
    _cmd(
        "restart",
        "POST",
        "/restart",
        202,
        _obj(("restarting",), restarting={"const": True}),
        request=_obj((), {"reason": _nullable(STR)}),
        summary="Restart the WeCom client; answers before the restart happens.",
    ),
    _cmd(
        "start_login",
        "POST",
        "/logins",
        201,
        _obj(
            ("login_id", "qrcode", "expires_at_ms", "status"),
            login_id=ID,
            qrcode=_obj(("content",), {"image_url": _nullable(STR)}, content=NESTR),
            expires_at_ms=TS_MS,
            status=_enum(LOGIN_STATUSES),
        ),
        request=_obj((), {"account_id": _nullable(ID)}),
        summary="Start a QR-code login; the QR code's content is what a phone scans.",
    ),
    _cmd("get_login", "GET", "/logins/{login_id}", 200, LOGIN, idempotent=True, summary="Login status."),
    _cmd(
        "verify_login",
        "POST",
        "/logins/{login_id}/verify",
        200,
        LOGIN,
        request=_obj(("code",), code={"type": "string", "minLength": 1, "maxLength": 20}),
        summary="Submit the verification code when the status is need_verify.",
    ),
    _cmd(
        "cancel_login",
        "DELETE",
        "/logins/{login_id}",
        200,
        LOGIN,
        idempotent=True,
        summary="Cancel a login that is not final yet (idempotent).",
    ),
    _cmd(
        "list_accounts",
        "GET",
        "/accounts",
        200,
        _obj(("items",), items=_array(ACCOUNT)),
        idempotent=True,
        summary="Accounts known to the instance (all states).",
    ),
    _cmd(
        "logout_account",
        "POST",
        "/accounts/{account_id}/logout",
        200,
        _obj(("account_id", "status"), account_id=ID, status=_enum(ACCOUNT_STATUSES)),
        summary="Log an account out; emits account.offline(reason=logout).",
    ),
    _cmd(
        "list_contacts",
        "GET",
        "/accounts/{account_id}/contacts",
        200,
        _page(CONTACT),
        query=PAGE_QUERY,
        idempotent=True,
        paged=True,
        summary="Contacts of an account, paged.",
    ),
    _cmd(
        "list_rooms",
        "GET",
        "/accounts/{account_id}/rooms",
        200,
        _page(ROOM),
        query=PAGE_QUERY,
        idempotent=True,
        paged=True,
        summary="Rooms (group chats) of an account, paged.",
    ),
    _cmd(
        "list_room_members",
        "GET",
        "/accounts/{account_id}/rooms/{room_id}/members",
        200,
        _page(MEMBER),
        query=PAGE_QUERY,
        idempotent=True,
        paged=True,
        summary="Members of one room, paged.",
    ),
    _cmd(
        "send_message",
        "POST",
        "/accounts/{account_id}/messages",
        202,
        _obj(
            ("message_id", "client_msg_id", "status", "duplicate"),
            message_id=ID,
            client_msg_id=ID,
            status=_enum(MESSAGE_STATUSES),
            duplicate=BOOL,
        ),
        request=SEND_REQUEST,
        idempotent=True,  # by client_msg_id
        summary="Queue a message; idempotent by client_msg_id; the outcome arrives as message.status.",
    ),
    _cmd(
        "send_messages",
        "POST",
        "/accounts/{account_id}/messages/batch",
        202,
        _obj(("results",), results=_array(SEND_BATCH_RESULT)),
        request=SEND_BATCH_REQUEST,
        idempotent=True,  # every item by its client_msg_id
        summary="Revision 1.1: queue up to MAX_BATCH_SEND messages in order, each exactly as "
        "send_message would; one result per message, in order. After an item refused with a "
        "BATCH_STOP_CODES code the rest are not_attempted.",
    ),
    _cmd(
        "get_message_status",
        "GET",
        "/accounts/{account_id}/messages/{message_id}",
        200,
        MESSAGE_STATUS,
        idempotent=True,
        summary="Status of an outbound message (by message_id or client_msg_id).",
    ),
    _cmd(
        "events_after",
        "GET",
        "/events",
        200,
        _obj(
            ("events", "last_seq", "has_more"),
            events=_array({"type": "object"}),
            last_seq=NONNEG,
            has_more=BOOL,
        ),
        query=_obj(
            ("after_seq",),
            {"limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT}},
            after_seq=NONNEG,
        ),
        idempotent=True,
        summary="Replay: events with seq > after_seq, oldest first.",
    ),
]
COMMANDS = {c.name: c for c in COMMAND_LIST}

# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


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


_ACCOUNT_TROUBLE = _obj(
    ("account_id", "reason", "detail"),
    {"until_ms": _nullable(TS_MS)},
    account_id=ID,
    reason=NESTR,
    detail=STR,
)

EVENT_DATA_SCHEMAS = {
    EventType.INSTANCE_HEARTBEAT: _obj(
        ("uptime_s", "accounts", "queue_depth", "client_version", "client_running", "metrics"),
        uptime_s=NONNEG,
        accounts=_array(ACCOUNT_BRIEF),
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
    EventType.INSTANCE_STARTED: _obj(("reason",), {"client_version": STR}, reason=STR),
    EventType.INSTANCE_CLIENT_EXITED: _obj(("reason",), {"exit_code": _nullable(INT)}, reason=STR),
    EventType.LOGIN_STATUS: _obj(
        ("login_id", "status", "account_id"),
        login_id=ID,
        status=_enum(LOGIN_STATUSES),
        account_id=_nullable(ID),
    ),
    EventType.ACCOUNT_ONLINE: _obj(("account_id",), {"profile": _nullable(ACCOUNT)}, account_id=ID),
    EventType.ACCOUNT_OFFLINE: _obj(("account_id", "reason"), account_id=ID, reason=_enum(OFFLINE_REASONS)),
    EventType.ACCOUNT_ABNORMAL: _ACCOUNT_TROUBLE,
    EventType.ACCOUNT_BANNED: _ACCOUNT_TROUBLE,
    EventType.MESSAGE_RECEIVED: _obj(
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
        {"quoted_message_id": _nullable(ID)},
        message_id=ID,
        conversation_id=ID,
        conversation_type=_enum(CONVERSATION_TYPES),
        sender=_obj(("id", "name"), id=ID, name=STR),
        type=_enum(MESSAGE_TYPES),
        content={"type": "object"},
        mentions=MENTIONS,
        mentions_self=BOOL,
        sent_at_ms=TS_MS,
        is_self=BOOL,
        is_history=BOOL,
    ),
    EventType.MESSAGE_STATUS: _obj(
        ("message_id", "client_msg_id", "status"),
        {"error": _nullable(ERROR_SCHEMA), "sent_at_ms": _nullable(TS_MS)},
        message_id=ID,
        client_msg_id=ID,
        status=_enum(MESSAGE_FINAL_STATUSES),
    ),
    EventType.CONTACT_ADDED: _obj(("contact",), contact=CONTACT),
    EventType.CONTACT_UPDATED: _obj(("contact",), contact=CONTACT),
    EventType.CONTACT_REMOVED: _obj(("contact",), contact=_obj(("contact_id",), contact_id=ID)),
    EventType.ROOM_UPDATED: _obj(("room_id",), {"topic": _nullable(STR), "room": ROOM}, room_id=ID),
    EventType.ROOM_MEMBER_JOINED: _obj(("room_id", "members"), room_id=ID, members=_array(MEMBER, minItems=1)),
    EventType.ROOM_MEMBER_LEFT: _obj(("room_id", "member_ids"), room_id=ID, member_ids=_array(ID, minItems=1)),
    EventType.SYNC_COMPLETED: _obj(
        ("sync_id", "scope", "counts"),
        sync_id=ID,
        scope=_enum(("contacts", "rooms", "members", "all")),
        counts={"type": "object", "additionalProperties": NONNEG},
    ),
}
EVENT_DATA_SCHEMAS[EventType.INSTANCE_STREAM_GAP] = _obj(
    ("from_ms", "to_ms", "detail"), {"account_id": _nullable(ID)}, from_ms=TS_MS, to_ms=TS_MS, detail=STR
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

EVENT_ENVELOPE_SCHEMA = _obj(
    ("event_id", "type", "instance_id", "account_id", "seq", "ts_ms", "data"),
    event_id=ID,
    type=_enum(EVENT_TYPES),
    instance_id=STR,
    account_id=_nullable(ID),
    seq={"type": "integer", "minimum": 1},
    ts_ms=TS_MS,
    data={"type": "object"},
)

# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------


def _schema_for(kind, name):
    if kind == "response":
        return COMMANDS[name].response
    if kind == "request":
        return COMMANDS[name].request
    if kind == "query":
        return COMMANDS[name].query
    if kind == "event":
        return EVENT_DATA_SCHEMAS[name]
    if kind == "envelope":
        return EVENT_ENVELOPE_SCHEMA if name == "event" else ENVELOPE_SCHEMA
    if kind == "content":
        return CONTENT_SCHEMAS[name]
    raise KeyError((kind, name))


@lru_cache(maxsize=None)
def _validator_for(kind, name):
    """Compiled validator (fastjsonschema, draft-07): ~20x faster than interpreting the
    schema, which matters for pages of 500 contacts."""
    import fastjsonschema

    if (kind, name) == ("request", "send_message"):
        return _send_request_validator()
    return fastjsonschema.compile(_schema_for(kind, name))


def _send_request_validator():
    """SEND_REQUEST checked as its schema says, but with the content schema picked by `type`
    instead of evaluating its if/then branches (fastjsonschema raises and catches an exception
    for every branch that does not apply: most of the cost of a send's validation)."""
    import fastjsonschema
    from fastjsonschema import JsonSchemaValueException

    base = fastjsonschema.compile({k: v for k, v in SEND_REQUEST.items() if k != "allOf"})
    content = {t: fastjsonschema.compile(s) for t, s in CONTENT_SCHEMAS.items()}

    def validate(data):
        base(data)
        check = content.get(data["type"])
        try:
            check(data["content"])
        except JsonSchemaValueException as exc:
            raise JsonSchemaValueException(
                "data.content" + exc.message[len("data"):], exc.value, "data.content" + (exc.name or "")[len("data"):],
                exc.definition, exc.rule,
            ) from None
        return data

    return validate


def all_schemas():
    """Every (kind, name, schema) of the protocol, e.g. to check them against the meta-schema."""
    for name, command in COMMANDS.items():
        for kind in ("request", "query", "response"):
            schema = getattr(command, kind)
            if schema is not None:
                yield kind, name, schema
    for name, schema in EVENT_DATA_SCHEMAS.items():
        yield "event", name, schema
    for name, schema in CONTENT_SCHEMAS.items():
        yield "content", name, schema
    yield "envelope", "event", EVENT_ENVELOPE_SCHEMA
    yield "envelope", "response", ENVELOPE_SCHEMA


def schema_errors(kind, name, instance):
    """Messages for ``instance`` against a protocol schema (empty list if valid; the first
    violation otherwise, naming the field, e.g. ``content must contain ['text'] properties``).

    ``kind`` is one of ``response``, ``request``, ``query`` (``name`` = command name),
    ``event`` (``name`` = event type; validates the data), ``content`` (``name`` = message
    type), ``envelope`` (``name`` = ``event`` or ``response``).
    """
    from fastjsonschema import JsonSchemaValueException

    try:
        _validator_for(kind, name)(instance)
    except JsonSchemaValueException as exc:
        message = exc.message
        if message.startswith("data."):
            message = message[len("data.") :]
        elif message.startswith("data "):
            message = "(root) " + message[len("data ") :]
        return [message]
    return []


def event_errors(event):
    """Validate a whole event (envelope and data); list of messages, empty if valid."""
    errors = schema_errors("envelope", "event", event)
    if errors:
        return errors
    return [f"data.{m}" for m in schema_errors("event", event["type"], event["data"])]
