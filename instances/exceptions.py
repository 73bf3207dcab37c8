"""Exceptions raised by :class:`instances.client.InstanceClient`.

Every failure of a call to an instance surfaces as one :class:`InstanceError` subclass carrying
the protocol error ``code`` (see :class:`instances.protocol.ErrorCode`), a readable ``message``,
the HTTP ``status`` when there was a response, and ``retry_after_s`` for rate limits. Callers
never see httpx exceptions or tracebacks from the transport.

``str(exc)`` is the technical form (``command: [code] message``, English, for logs and the
instance's ``error_message`` column); ``exc.user_message`` is what users read: a translated
sentence for the protocol code, with the instance's own detail where it helps (the URL that
could not be reached, the instance's reason for a refusal).
"""

from __future__ import annotations

from django.utils.translation import gettext, gettext_lazy as _

from instances.protocol import ErrorCode

#: One sentence, without detail, for every failure to talk to the instance: users must not learn
#: from it whether something else listens at an address (refused, silent, another service).
#: The technical reason is in the logs.
TRANSPORT_MESSAGE = _("Could not talk to the instance at its API URL; check that it is running, "
                      "its API URL and its proxy.")
TRANSPORT_CODES = frozenset({ErrorCode.UNREACHABLE, ErrorCode.TIMEOUT, ErrorCode.INVALID_RESPONSE})

#: Protocol error code -> the sentence users read (translated).
USER_MESSAGES = {
    ErrorCode.NOT_LOGGED_IN: _("The WeCom account is not logged in on the instance."),
    ErrorCode.ACCOUNT_OFFLINE: _("The WeCom account is offline on the instance."),
    ErrorCode.RATE_LIMITED: _("The instance is receiving too many requests and asks to slow down."),
    ErrorCode.RISK_CONTROL: _("WeCom risk control stopped the account; check the account before "
                              "sending again."),
    ErrorCode.TARGET_NOT_FOUND: _("The instance does not know the requested account, contact, "
                                  "group or login."),
    ErrorCode.UNSUPPORTED_TYPE: _("The instance does not support this message type."),
    ErrorCode.MEDIA_FETCH_FAILED: _("The instance could not download the media file."),
    ErrorCode.CLIENT_VERSION_MISMATCH: _("The instance does not work with the installed WeCom "
                                         "client version."),
    ErrorCode.INVALID_REQUEST: _("The request to the instance is invalid; check the instance's "
                                 "settings (API URL, proxy) and the values sent."),
    ErrorCode.UNSUPPORTED_PROTOCOL_VERSION: _("The instance speaks another version of the "
                                              "instance protocol."),
    ErrorCode.INTERNAL: _("The instance failed with an internal error."),
    ErrorCode.UNAUTHORIZED: _("The instance refused the platform's API token; check the "
                              "instance's token."),
    ErrorCode.UNREACHABLE: TRANSPORT_MESSAGE,
    ErrorCode.TIMEOUT: TRANSPORT_MESSAGE,
    ErrorCode.INVALID_RESPONSE: TRANSPORT_MESSAGE,
}
UNKNOWN_ERROR_MESSAGE = _("The call to the instance failed.")
#: Codes whose sentence says it all: the instance's detail text is left out for users.
CODES_WITHOUT_DETAIL = frozenset({
    ErrorCode.NOT_LOGGED_IN, ErrorCode.ACCOUNT_OFFLINE, ErrorCode.RATE_LIMITED,
    ErrorCode.UNAUTHORIZED, *TRANSPORT_CODES,
})


def user_message_for(code, detail=None, retry_after_s=None):
    """The translated sentence for a protocol error code, in the active language."""
    text = str(USER_MESSAGES.get(code, UNKNOWN_ERROR_MESSAGE))
    if retry_after_s:
        text = gettext("%(message)s Try again in %(seconds)s seconds.") % {
            "message": text, "seconds": f"{float(retry_after_s):g}"}
    if detail and code not in CODES_WITHOUT_DETAIL:
        text = gettext("%(message)s (Detail: %(detail)s)") % {"message": text, "detail": detail}
    return text


class InstanceError(Exception):
    """Base class: a call to an instance failed."""

    code = ErrorCode.INTERNAL
    #: True when the same call may succeed later without any change (transport, 5xx, 429).
    transient = False
    #: True when the answer was not the protocol's (no envelope: any HTTP service answers so).
    without_envelope = False

    def __init__(self, message="", *, code=None, status=None, retry_after_s=None, command=None, details=None):
        self.message = str(message) or self.__class__.__name__
        if code is not None:
            self.code = code
        self.status = status
        self.retry_after_s = retry_after_s
        self.command = command
        self.details = details or {}
        super().__init__(self.message)

    def __str__(self):
        prefix = f"{self.command}: " if self.command else ""
        return f"{prefix}[{self.code}] {self.message}"

    @property
    def is_transport(self):
        """The instance was not heard (refused, silent, or something else answered): users are
        told one thing for all of these, so that an address's answer does not tell them what
        listens there (issue 12)."""
        return self.code in TRANSPORT_CODES or self.without_envelope

    @property
    def public_code(self):
        """The code users and API clients see: `unreachable` for every transport failure."""
        return ErrorCode.UNREACHABLE if self.is_transport else self.code

    @property
    def user_message(self):
        """What users read, translated into the active language (see the module docstring)."""
        if self.is_transport:
            return str(TRANSPORT_MESSAGE)
        detail = self.message if self.message != self.__class__.__name__ else None
        return user_message_for(self.code, detail, self.retry_after_s)

    def as_dict(self):
        """JSON-friendly form, e.g. to record on an instance or an account."""
        return {
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "retry_after_s": self.retry_after_s,
            "command": self.command,
        }


class InstanceUnreachable(InstanceError):
    """No connection to the instance (refused, DNS, proxy, TLS, connection reset)."""

    code = ErrorCode.UNREACHABLE
    transient = True


class InstanceTimeout(InstanceError):
    """The instance did not answer within the configured timeout."""

    code = ErrorCode.TIMEOUT
    transient = True


class InstanceAuthError(InstanceError):
    """The instance refused the token (401/403 without a protocol error code)."""

    code = ErrorCode.UNAUTHORIZED


class NotLoggedIn(InstanceError):
    code = ErrorCode.NOT_LOGGED_IN


class AccountOffline(InstanceError):
    code = ErrorCode.ACCOUNT_OFFLINE


class RateLimited(InstanceError):
    """The instance (or the WeCom client) asks to slow down; see ``retry_after_s``."""

    code = ErrorCode.RATE_LIMITED
    transient = True

    def __init__(self, message="", *, retry_after_s=None, **kw):
        super().__init__(message, retry_after_s=retry_after_s, **kw)


class RiskControl(InstanceError):
    """The account hit WeCom risk control: stop sending for it; never retry automatically."""

    code = ErrorCode.RISK_CONTROL


class TargetNotFound(InstanceError):
    code = ErrorCode.TARGET_NOT_FOUND


class UnsupportedType(InstanceError):
    code = ErrorCode.UNSUPPORTED_TYPE


class MediaFetchFailed(InstanceError):
    code = ErrorCode.MEDIA_FETCH_FAILED


class ClientVersionMismatch(InstanceError):
    """The runtime does not work with the installed WeCom client build."""

    code = ErrorCode.CLIENT_VERSION_MISMATCH


class InvalidRequest(InstanceError):
    code = ErrorCode.INVALID_REQUEST


class ProtocolVersionMismatch(InvalidRequest):
    """The instance speaks another major version of the protocol."""

    code = ErrorCode.UNSUPPORTED_PROTOCOL_VERSION


class InstanceInternalError(InstanceError):
    """The instance failed (5xx, ``internal``)."""

    code = ErrorCode.INTERNAL
    transient = True


class InvalidResponse(InstanceError):
    """The instance answered something that does not follow the protocol."""

    code = ErrorCode.INVALID_RESPONSE


#: Protocol error code -> exception class.
EXCEPTION_BY_CODE = {
    ErrorCode.NOT_LOGGED_IN: NotLoggedIn,
    ErrorCode.ACCOUNT_OFFLINE: AccountOffline,
    ErrorCode.RATE_LIMITED: RateLimited,
    ErrorCode.RISK_CONTROL: RiskControl,
    ErrorCode.TARGET_NOT_FOUND: TargetNotFound,
    ErrorCode.UNSUPPORTED_TYPE: UnsupportedType,
    ErrorCode.MEDIA_FETCH_FAILED: MediaFetchFailed,
    ErrorCode.CLIENT_VERSION_MISMATCH: ClientVersionMismatch,
    ErrorCode.INVALID_REQUEST: InvalidRequest,
    ErrorCode.UNSUPPORTED_PROTOCOL_VERSION: ProtocolVersionMismatch,
    ErrorCode.INTERNAL: InstanceInternalError,
    ErrorCode.UNAUTHORIZED: InstanceAuthError,
    ErrorCode.UNREACHABLE: InstanceUnreachable,
    ErrorCode.TIMEOUT: InstanceTimeout,
    ErrorCode.INVALID_RESPONSE: InvalidResponse,
}


def exception_for(code, message="", **kw):
    """Build the exception for a protocol error code (unknown codes -> InstanceError)."""
    cls = EXCEPTION_BY_CODE.get(code, InstanceError)
    if cls is InstanceError:
        return InstanceError(message, code=code or ErrorCode.INTERNAL, **kw)
    return cls(message, **kw)


class EventNotReady(Exception):
    """An event that cannot be applied yet but will be later (a `message.received` for an
    account whose `account.online` has not been applied: events are processed in parallel).

    Raised by event handlers; `instances.services.process_event` puts the event back to be
    processed again after a back-off instead of marking it done or failed."""
