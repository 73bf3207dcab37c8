"""Token and code digests: HMAC-SHA256 with a server-side pepper.

Tokens and backup codes are random (256 bits for tokens), so a fast keyed hash is enough: a
slow password hasher would cost ~0.2 s per API request. The pepper comes from
settings.TOKEN_PEPPER (env `TOKEN_PEPPER`), or is derived from SECRET_KEY when unset; changing
it invalidates every stored token and backup code.
"""
import hashlib
import hmac
import secrets
from functools import lru_cache

from django.conf import settings

ACCESS_PREFIX = "wwa"
REFRESH_PREFIX = "wwr"


@lru_cache(maxsize=4)
def _pepper(secret_material):
    return hmac.new(
        secret_material.encode("utf-8"), b"wework.accounts.token-pepper", hashlib.sha256
    ).digest()


def pepper():
    material = getattr(settings, "TOKEN_PEPPER", "") or settings.SECRET_KEY
    return _pepper(material)


def digest(value):
    """Hex HMAC-SHA256 of a token or code (64 characters, the design's column width)."""
    return hmac.new(pepper(), value.encode("utf-8"), hashlib.sha256).hexdigest()


def new_session_id():
    """The public part of a token: 22 url-safe characters (128 bits)."""
    return secrets.token_urlsafe(16)


def new_secret():
    """The secret part of a token: 43 url-safe characters (256 bits)."""
    return secrets.token_urlsafe(32)


def compose(prefix, session_id, secret):
    return f"{prefix}.{session_id}.{secret}"


def parse(token, prefix):
    """`(session_id, token)` for a well-formed token of that kind, else None."""
    if not isinstance(token, str) or len(token) > 200:
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != prefix or not parts[1] or not parts[2]:
        return None
    return parts[1], token


def matches(token, stored_digest):
    """Constant-time comparison of a presented token with a stored digest."""
    return hmac.compare_digest(digest(token), stored_digest or "")
