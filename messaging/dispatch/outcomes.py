"""Outcomes of sends: what the dispatcher does with each answer of the instance.

Error codes of the protocol (docs/messaging.md, "Outcomes by error code"):
- `risk_control` stops the account (STOP_ACCOUNT);
- the account or instance cannot send now: the task pauses, no retry consumed (PAUSE_TASK);
- transient, the instance may hold the message: retry with the same uuid (RETRY_SAME_UUID);
- a definite refusal that may pass later: retry with a new message and uuid (RETRY_NEW_UUID);
- anything else (target_not_found, unsupported_type, media_fetch_failed, invalid_request,
  template_error, failed without a code) fails the receiver for good.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from .. import conf, pacing

STOP_ACCOUNT = frozenset({"risk_control"})
PAUSE_TASK = frozenset({"not_logged_in", "account_offline", "unauthorized", "client_version_mismatch",
                        "unsupported_protocol_version"})
RETRY_SAME_UUID = frozenset({"unreachable", "timeout", "invalid_response"})
RETRY_NEW_UUID = frozenset({"rate_limited", "internal"})


class OutcomeKind(enum.StrEnum):
    """What becomes of a claimed receiver."""

    SUCCESS = "success"  # sent: SUCCESS
    QUEUED = "queued"  # handed over, the outcome comes later (webhook, event feed, poll)
    FAILED = "failed"  # for good: FAILED with the code
    RETRY = "retry"  # back to PENDING after a back-off, one retry used
    RELEASE = "release"  # never handed over: back to PENDING (SKIPPED in a cancelled task)
    DEFER = "defer"  # its conversation is busy: back to PENDING, due later, no retry used
    # Answers that end the run; recorded as FAILED (STOP) or RELEASE (PAUSE) for their receiver.
    STOP = "stop"  # risk control: stop the account
    PAUSE = "pause"  # the account cannot send now: pause the task

    @property
    def is_final(self) -> bool:
        """Whether it settles the receiver (or moves it on), superseding a QUEUED of the same
        receiver in the same write."""
        return self is not OutcomeKind.QUEUED


@dataclass
class Outcome:
    receiver_id: int
    message_id: int | None
    kind: OutcomeKind
    code: str | None = None
    error: str | None = None
    keep_message: bool = True  # a retry re-sends the same message (and uuid)
    delay_s: float = 0.0
    retry_count: int = 0
    instance_message_id: str | None = None

    def __post_init__(self) -> None:
        self.kind = OutcomeKind(self.kind)


def classify(code: str | None, retry_count: int, max_retry: int) -> tuple[OutcomeKind, bool]:
    """(kind, keep_message) for an error code that neither stops nor pauses."""
    if (code in RETRY_SAME_UUID or code in RETRY_NEW_UUID) and retry_count < max_retry:
        return OutcomeKind.RETRY, code in RETRY_SAME_UUID
    return OutcomeKind.FAILED, True


def backoff_s(retry_count: int, retry_after_s: float | None = None) -> float:
    """RETRY_BASE_S * 2**retry_count, capped at RETRY_MAX_S, at least `retry_after_s`."""
    base = float(conf.get("RETRY_BASE_S"))
    value = min(float(conf.get("RETRY_MAX_S")), base * (2 ** retry_count))
    if retry_after_s:
        value = max(value, float(retry_after_s))
    return value


def status_outcome(receiver_id: int, message_id: int | None, retry_count: int, max_retry: int,
                   account_id: int, status: str | None, error: dict | None = None,
                   instance_message_id: str | None = None) -> Outcome:
    """The Outcome of a status reported by the instance (send answer, poll or webhook)."""
    if status == "sent":
        return Outcome(receiver_id, message_id, OutcomeKind.SUCCESS, instance_message_id=instance_message_id)
    if status == "queued":
        return Outcome(receiver_id, message_id, OutcomeKind.QUEUED, instance_message_id=instance_message_id)
    error = error or {}
    code = error.get("code") or (status if status in ("rate_limited", "risk_control") else "failed")
    return error_outcome(receiver_id, message_id, retry_count, max_retry, account_id, code,
                         error.get("message") or status, error.get("retry_after_s"))


def error_outcome(receiver_id: int, message_id: int | None, retry_count: int, max_retry: int,
                  account_id: int, code: str, message: str | None, retry_after_s: float | None = None) -> Outcome:
    """stop (risk control: stop the account), pause (the account or instance cannot send),
    retry (transient, with back-off) or failed (for good)."""
    if code in STOP_ACCOUNT:
        return Outcome(receiver_id, message_id, OutcomeKind.STOP, code, message)
    if code in PAUSE_TASK:
        return Outcome(receiver_id, message_id, OutcomeKind.PAUSE, code, message)
    if code == "rate_limited" and retry_after_s:
        pacing.defer(account_id, float(retry_after_s))
    kind, keep = classify(code, retry_count, max_retry)
    if kind == OutcomeKind.RETRY:
        return Outcome(receiver_id, message_id, kind, code, message, keep_message=keep,
                       delay_s=backoff_s(retry_count, retry_after_s))
    return Outcome(receiver_id, message_id, kind, code, message)


def error_code(exc: Exception) -> str:
    """The protocol error code of an exception from the instance client ("internal" if none)."""
    return getattr(exc, "code", None) or "internal"
