"""Who and what the current unit of work is: one request, one command, one task.

The request middleware, the management command base and the Celery signals put an `Actor` into a
context variable; the system log handler and the audit trail read it. Context variables (not
thread-locals) keep it correct under ASGI, threads and Celery's pool alike.
"""
import contextvars
import re
import secrets
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

SOURCES = ("admin", "api", "web", "command", "task", "system")

_actor = contextvars.ContextVar("wework_monitoring_actor", default=None)

# An incoming X-Request-ID is accepted when it is short and made of safe characters only
# (it ends up in logs, headers and database columns).
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{8,64}$")
# W3C trace context: version-traceid-parentid-flags, ids lowercase hex and not all zeros.
TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True)
class Actor:
    """The context of the current unit of work.

    `user` may be a user object or None; `request` (when set) is the Django HttpRequest, read
    lazily so that a user authenticated later by DRF is still seen.
    """

    source: str = "system"
    user: object = None
    ip: str | None = None
    user_agent: str | None = None
    session_id: str | None = None
    request_id: str | None = None
    span_id: str | None = None
    request_url: str | None = None
    request_method: str | None = None
    instance_id: int | None = None
    request: object = field(default=None, repr=False, compare=False)

    def resolved_user(self):
        user = self.user
        if user is None and self.request is not None:
            user = getattr(self.request, "user", None)
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        return user

    @property
    def user_id(self):
        user = self.resolved_user()
        return getattr(user, "pk", None) if user is not None else None

    @property
    def username(self):
        user = self.resolved_user()
        if user is None:
            return None
        return str(user.get_username())[:50]


def new_trace_id():
    """A W3C-compatible 32-hex-digit trace id."""
    return uuid.uuid4().hex


def new_span_id():
    return secrets.token_hex(8)


def parse_traceparent(value):
    """(trace_id, parent_span_id) from a valid `traceparent` header, else None."""
    if not value:
        return None
    match = TRACEPARENT_RE.match(value.strip().lower())
    if not match:
        return None
    version, trace_id, parent_id, _flags = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id, parent_id


def valid_request_id(value):
    return bool(value) and bool(REQUEST_ID_RE.match(value))


def current():
    """The current Actor, or None outside any unit of work."""
    return _actor.get()


def set_actor(actor):
    """Install `actor`; returns the token for `reset_actor`."""
    return _actor.set(actor)


def reset_actor(token):
    _actor.reset(token)


@contextmanager
def use_actor(actor):
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)


def derive(**changes):
    """The current actor with some fields changed (a new one when none is set)."""
    base = _actor.get() or Actor()
    return replace(base, **changes)
