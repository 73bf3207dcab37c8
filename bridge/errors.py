"""What a puppet-service failure means in our protocol's error codes.

Puppet-service answers almost every failure as gRPC ``UNKNOWN`` with the provider's free text
(a JavaScript ``Error.message``), so the code is read from the status first and from the text
second; text nothing matches becomes ``internal`` with the text kept as the message.
Whether the call may have had its effect (``ambiguous``) decides what the sender does: an
answered failure is final, a timeout or a lost connection after the call left is settled by
waiting for the echo, never by sending again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc

from instances.protocol import ErrorCode


class BridgeError(Exception):
    """An error the bridge answers in the protocol's envelope."""

    def __init__(self, code, message, retry_after_s=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    def as_dict(self):
        return {"code": self.code, "message": self.message, "retry_after_s": self.retry_after_s}


# Provider texts seen in puppet implementations (PadLocal, WorkPro/juzi, XP, the mock), most
# specific first. Matched case-insensitively anywhere in the details.
TEXT_RULES = [
    (re.compile(r"risk|banned|blocked|frozen|风控|封号|限制"), ErrorCode.RISK_CONTROL),
    (re.compile(r"too (many|fast|frequent)|rate.?limit|频繁|throttl"), ErrorCode.RATE_LIMITED),
    (re.compile(r"not (logged|login)|logged ?out|need login|未登录|no login"), ErrorCode.NOT_LOGGED_IN),
    (re.compile(r"offline|disconnect|not running|掉线"), ErrorCode.ACCOUNT_OFFLINE),
    (re.compile(r"not (exist|found)|unknown (contact|room|conversation)|no payload|不存在"), ErrorCode.TARGET_NOT_FOUND),
    (re.compile(r"not support|unsupported|not implemented|unimplemented"), ErrorCode.UNSUPPORTED_TYPE),
    (re.compile(r"download|fetch|file ?box"), ErrorCode.MEDIA_FETCH_FAILED),
]

# Statuses where the request may have reached the provider and had its effect.
AMBIGUOUS_STATUSES = {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                      grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL}


@dataclass
class Mapped:
    code: str
    message: str
    ambiguous: bool
    retry_after_s: int | None = None

    def as_dict(self):
        return {"code": self.code, "message": self.message, "retry_after_s": self.retry_after_s}


def map_rpc_error(exc: grpc.RpcError) -> Mapped:
    status = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else str(exc)) or status.name
    text = details.lower()
    if status == grpc.StatusCode.UNAUTHENTICATED or status == grpc.StatusCode.PERMISSION_DENIED:
        return Mapped(ErrorCode.ACCOUNT_OFFLINE, f"The provider refused the token: {details}", False)
    if status == grpc.StatusCode.UNIMPLEMENTED:
        return Mapped(ErrorCode.UNSUPPORTED_TYPE, f"The provider does not implement this call: {details}", False)
    if status == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return Mapped(ErrorCode.RATE_LIMITED, f"The provider is overloaded: {details}", False, 60)
    if status in AMBIGUOUS_STATUSES:
        return Mapped(ErrorCode.ACCOUNT_OFFLINE, f"The provider did not answer ({status.name}): {details}", True)
    for pattern, code in TEXT_RULES:
        if pattern.search(text):
            return Mapped(code, f"Provider: {details}", False, 60 if code == ErrorCode.RATE_LIMITED else None)
    return Mapped(ErrorCode.INTERNAL, f"Provider error ({status.name}): {details}", False)
