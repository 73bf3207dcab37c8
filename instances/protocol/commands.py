"""The command table: method, path, idempotency and schemas of every command."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .constants import (
    ACCOUNT_STATUSES,
    LOGIN_STATUSES,
    MAX_BATCH_SEND,
    MAX_PAGE_LIMIT,
    MESSAGE_STATUSES,
    MESSAGE_TYPES,
    PATH_PREFIX,
)
from .schemas import (
    ACCOUNT,
    ACCOUNT_BRIEF,
    BOOL,
    CONFIG_REQUEST,
    CONTACT,
    ID,
    LOGIN,
    MEMBER,
    MESSAGE_STATUS,
    NESTR,
    NONNEG,
    PAGE_QUERY,
    ROOM,
    SEND_BATCH_REQUEST,
    SEND_BATCH_RESULT,
    SEND_REQUEST,
    STR,
    TS_MS,
    array_of,
    enum_of,
    nullable,
    obj,
    page_of,
)


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
        obj(
            (
                "runtime",
                "client_version",
                "protocol_version",
                "uptime_s",
                "accounts",
                "queue_depth",
                "client_running",
            ),
            {"runtime_version": nullable(STR)},
            runtime=NESTR,
            client_version=STR,
            protocol_version=NESTR,
            uptime_s=NONNEG,
            accounts=array_of(ACCOUNT_BRIEF),
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
        obj(
            ("send_types", "mentions", "mention_all", "recall", "location", "max_page_limit", "protocol_versions"),
            # revision 1.1; absent or 0: the instance has no batch send
            {"batch_send_max": {"type": "integer", "minimum": 0, "maximum": MAX_BATCH_SEND}},
            send_types=array_of(enum_of(MESSAGE_TYPES)),
            mentions=BOOL,
            mention_all=BOOL,
            recall=BOOL,
            location=BOOL,
            max_page_limit=NONNEG,
            protocol_versions=array_of(STR),
        ),
        idempotent=True,
        summary="What this runtime can do.",
    ),
    _cmd(
        "push_config",
        "PUT",
        "/config",
        200,
        obj(("applied", "config"), applied=array_of(STR), config={"type": "object"}),
        request=CONFIG_REQUEST,
        idempotent=True,
        summary="Replace the given configuration keys (absent keys unchanged).",
    ),
    _cmd(
        "restart",
        "POST",
        "/restart",
        202,
        obj(("restarting",), restarting={"const": True}),
        request=obj((), {"reason": nullable(STR)}),
        summary="Restart the WeCom client; answers before the restart happens.",
    ),
    _cmd(
        "start_login",
        "POST",
        "/logins",
        201,
        obj(
            ("login_id", "qrcode", "expires_at_ms", "status"),
            login_id=ID,
            qrcode=obj(("content",), {"image_url": nullable(STR)}, content=NESTR),
            expires_at_ms=TS_MS,
            status=enum_of(LOGIN_STATUSES),
        ),
        request=obj((), {"account_id": nullable(ID)}),
        summary="Start a QR-code login; the QR code's content is what a phone scans.",
    ),
    _cmd("get_login", "GET", "/logins/{login_id}", 200, LOGIN, idempotent=True, summary="Login status."),
    _cmd(
        "verify_login",
        "POST",
        "/logins/{login_id}/verify",
        200,
        LOGIN,
        request=obj(("code",), code={"type": "string", "minLength": 1, "maxLength": 20}),
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
        obj(("items",), items=array_of(ACCOUNT)),
        idempotent=True,
        summary="Accounts known to the instance (all states).",
    ),
    _cmd(
        "logout_account",
        "POST",
        "/accounts/{account_id}/logout",
        200,
        obj(("account_id", "status"), account_id=ID, status=enum_of(ACCOUNT_STATUSES)),
        summary="Log an account out; emits account.offline(reason=logout).",
    ),
    _cmd(
        "list_contacts",
        "GET",
        "/accounts/{account_id}/contacts",
        200,
        page_of(CONTACT),
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
        page_of(ROOM),
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
        page_of(MEMBER),
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
        obj(
            ("message_id", "client_msg_id", "status", "duplicate"),
            message_id=ID,
            client_msg_id=ID,
            status=enum_of(MESSAGE_STATUSES),
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
        obj(("results",), results=array_of(SEND_BATCH_RESULT)),
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
        obj(
            ("events", "last_seq", "has_more"),
            events=array_of({"type": "object"}),
            last_seq=NONNEG,
            has_more=BOOL,
        ),
        query=obj(
            ("after_seq",),
            {"limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT}},
            after_seq=NONNEG,
        ),
        idempotent=True,
        summary="Replay: events with seq > after_seq, oldest first.",
    ),
]
COMMANDS = {c.name: c for c in COMMAND_LIST}

