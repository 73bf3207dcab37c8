"""Webhook signatures: HMAC-SHA256 over the timestamp and the body."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from .constants import PROTOCOL_REVISION, VERSION_HEADER

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
EVENT_ID_HEADER = "X-Event-Id"
SEQ_HEADER = "X-Event-Seq"
#: Revision 1.2: the number of events in a batched delivery (absent: one event).
EVENT_COUNT_HEADER = "X-Event-Count"
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


def signature_headers(body, secret, *, event_id, seq=None, instance_id=None, timestamp=None,
                      count=None):
    """All headers an instance sends with one webhook delivery (freshly timestamped). For a
    batch (revision 1.2), `event_id` and `seq` are its first event's and `count` its size."""
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
    if count is not None:
        headers[EVENT_COUNT_HEADER] = str(count)
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


