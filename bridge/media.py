"""Inbound files, images and videos: the bridge serves them itself, at signed URLs it puts in
``message.received`` (``content.url``), because puppet-service hands files out only over gRPC
(``MessageFile``: a file box that is a URL, base64 data, or a uuid to ``Download``).

A URL is ``<public url>/media/<provider key>/<message id>?exp=<unix s>&sig=<hex>``, the signature
an HMAC-SHA256 of the path and expiry keyed with the instance token (so only the bridge mints
them); anyone holding one may fetch the file until it expires (``media_ttl_s``, 7 days by
default), as with a presigned object-store URL. The file itself stays at the provider: a fetch
after the provider dropped it fails (404)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote

MEDIA_TTL_S = 7 * 24 * 3600


def provider_key(token):
    """A stable, non-secret name of a provider in URLs (never the token)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _signature(secret, path, exp):
    return hmac.new(secret.encode(), f"{path}?exp={exp}".encode(), hashlib.sha256).hexdigest()


def media_url(public_url, secret, token, message_id, ttl_s=MEDIA_TTL_S):
    path = f"/media/{provider_key(token)}/{quote(message_id, safe='')}"
    exp = int(time.time()) + ttl_s
    return f"{public_url.rstrip('/')}{path}?exp={exp}&sig={_signature(secret, path, exp)}"


def check(secret, path, exp, sig):
    """True when the signature is the bridge's and the URL has not expired."""
    try:
        exp = int(exp)
    except (TypeError, ValueError):
        return False
    if exp < time.time():
        return False
    return hmac.compare_digest(_signature(secret, path, exp), sig or "")


def resolve(provider, message_id):
    """(status, headers, body chunks) of one file: a redirect for a URL box, the bytes of a
    base64 box, the Download stream of a uuid box."""
    box = provider.message_file(message_id)
    kind = box.get("type", box.get("boxType"))
    name = box.get("name") or message_id
    headers = {"Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}"}
    if kind == 2 and box.get("url"):  # FileBoxType.Url
        return 302, {"Location": box["url"]}, []
    if kind == 1 and box.get("base64") is not None:  # FileBoxType.Base64
        return 200, headers, [base64.b64decode(box["base64"])]
    if kind == 7 and box.get("uuid"):  # FileBoxType.Uuid
        return 200, headers, provider.download(box["uuid"])
    return 404, {}, []
