"""Version, error codes, statuses and limits of instance protocol v1."""

from __future__ import annotations

# Version

#: Major version of the protocol. A breaking change bumps it and moves every path to /v<N>/.
PROTOCOL_VERSION = "1"
#: Minor revision: additive changes only (new optional fields, new commands, new event types).
PROTOCOL_REVISION = "1.2"
#: Sent on every request and every response (``X-Protocol-Version: 1.0``).
VERSION_HEADER = "X-Protocol-Version"
PATH_PREFIX = f"/v{PROTOCOL_VERSION}"


# Error codes


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


# Statuses and enums

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


# Limits and defaults

DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 500
DEFAULT_EVENTS_LIMIT = 500
#: Most messages in one batch send (``send_messages``, revision 1.1).
MAX_BATCH_SEND = 100
#: Most events in one webhook delivery (revision 1.2): the platform announces its own limit, at
#: most this, as ``webhook_batch_max`` in the config push; without it, one event a request.
MAX_WEBHOOK_BATCH = 500

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

