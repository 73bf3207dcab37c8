"""Exceptions raised by :class:`instances.client.InstanceClient`.

Every failure of a call to an instance surfaces as one :class:`InstanceError` subclass carrying
the protocol error ``code`` (see :class:`instances.protocol.ErrorCode`), a readable ``message``,
the HTTP ``status`` when there was a response, and ``retry_after_s`` for rate limits. Callers
never see httpx exceptions or tracebacks from the transport.
"""

from __future__ import annotations

from instances.protocol import ErrorCode


class InstanceError(Exception):
    """Base class: a call to an instance failed."""

    code = ErrorCode.INTERNAL
    #: True when the same call may succeed later without any change (transport, 5xx, 429).
    transient = False

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
