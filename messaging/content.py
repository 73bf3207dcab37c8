"""Message content: validation per type and the mapping onto the `messages` columns.

Content is the protocol's dict per type (`docs/instance-protocol.md`):
  text{text}, image{url}, video{url, thumb_url?, duration_s?}, file{url, filename, size?},
  link{title, desc?, url, thumb_url?}, card{contact_id}, location{latitude, longitude, title?,
  address?}.

In the database: text keeps its text in `message_content`; every other type keeps the whole
content dict as JSON in `message_content` and also fills the design's media columns
(`media_url`, `media_size`, `media_duration`, `thumbnail_url`, `file_name`) for search and display.
"""
import ipaddress
import json
import socket
from urllib.parse import urlsplit

import httpx
from django.utils.translation import gettext as _

from . import conf
from .errors import invalid

MESSAGE_TYPES = ("text", "image", "video", "file", "link", "card", "location")
MEDIA_TYPES = ("image", "video", "file")

FIELDS_BY_TYPE = {  # field: required
    "text": {"text": True},
    "image": {"url": True},
    "video": {"url": True, "thumb_url": False, "duration_s": False},
    "file": {"url": True, "filename": True, "size": False},
    "link": {"title": True, "url": True, "desc": False, "thumb_url": False},
    "card": {"contact_id": True},
    "location": {"latitude": True, "longitude": True, "title": False, "address": False},
}
_URL_FIELDS = ("url", "thumb_url")
#: Fields whose value is text (placeholders allowed); a list, object or number there is refused.
TEXT_FIELDS = ("text", "title", "desc", "filename", "address", "contact_id")


def parse_content(message_type, raw):
    """Accept a dict, a JSON string, or (for text) plain text; return a dict (not validated)."""
    if isinstance(raw, dict):
        return dict(raw)
    if raw is None:
        return {}
    if message_type == "text" and isinstance(raw, str):
        stripped = raw.lstrip()
        if stripped.startswith("{"):
            try:
                value = json.loads(raw)
                if isinstance(value, dict) and "text" in value:
                    return value
            except ValueError:
                pass
        return {"text": raw}
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            raise invalid("content", _("The content of a %(type)s message must be a JSON object.")
                          % {"type": message_type}) from None
        if isinstance(value, dict):
            return value
    raise invalid("content", _("The content must be an object."))


def validate_content(message_type: str, content, check_media: bool | None = None) -> dict:
    """Return a cleaned content dict or raise MessagingInvalid (field `content` or `message_type`)."""
    if message_type not in MESSAGE_TYPES:
        raise invalid("message_type", _("Unknown message type %(type)r; use one of: %(types)s.")
                      % {"type": message_type, "types": ", ".join(MESSAGE_TYPES)})
    clean = _known_fields(message_type, content)
    _check_strings(clean)
    if message_type == "text":
        _check_text(clean["text"])
    for name in _URL_FIELDS:
        if name in clean:
            _check_url(clean[name], name)
    for name in ("duration_s", "size"):
        if name in clean:
            clean[name] = _whole_number(clean[name], name)
    if message_type == "location":
        for name, bound in (("latitude", 90), ("longitude", 180)):
            clean[name] = _coordinate(clean[name], name, bound)
    if message_type in MEDIA_TYPES:
        if check_media is None:
            check_media = bool(conf.get("CHECK_MEDIA_URLS"))
        if check_media:
            check_media_url(clean["url"])
    return clean


def validate_unrendered(message_type: str, content) -> dict:
    """The content of a task or template as stored, placeholders still in it: known fields,
    text where text belongs, no null characters. Content without placeholders is checked whole
    (numbers converted, URLs checked offline); with placeholders the rendered content is checked
    for the receivers when the task is created. Raises MessagingInvalid (field `content`)."""
    if message_type not in MESSAGE_TYPES:
        raise invalid("message_type", _("Unknown message type %(type)r; use one of: %(types)s.")
                      % {"type": message_type, "types": ", ".join(MESSAGE_TYPES)})
    clean = _known_fields(message_type, content)
    _check_strings(clean)
    if any("{{" in value for value in clean.values() if isinstance(value, str)):
        return clean
    return validate_content(message_type, clean, check_media=False)


def _check_strings(clean: dict) -> None:
    """Text fields hold text, and no string holds a null character (the database and the
    instance would cut or refuse it)."""
    for name in TEXT_FIELDS + _URL_FIELDS:
        if name in clean and not isinstance(clean[name], str):
            raise invalid("content", _("content.%(field)s must be text.") % {"field": name})
    for name, value in clean.items():
        if isinstance(value, str) and "\x00" in value:
            raise invalid("content", _("content.%(field)s must not contain null characters.") % {"field": name})


def _known_fields(message_type: str, content) -> dict:
    """The non-empty fields of `content`; refuses unknown fields and missing required ones."""
    if not isinstance(content, dict):
        raise invalid("content", _("The content must be an object."))
    spec = FIELDS_BY_TYPE[message_type]
    unknown = set(content) - set(spec)
    if unknown:
        raise invalid("content", _("Unknown fields for a %(type)s message: %(fields)s.")
                      % {"type": message_type, "fields": ", ".join(sorted(unknown))})
    errors = []
    clean = {}
    for name, required in spec.items():
        value = content.get(name)
        if value in (None, ""):
            if required:
                errors.append(_("%(field)s is required.") % {"field": name})
            continue
        clean[name] = value
    if errors:
        raise invalid("content", errors)
    return clean


def _check_text(text) -> None:
    if not isinstance(text, str) or not text.strip():
        raise invalid("content", _("The text is empty."))
    limit = int(conf.get("TEXT_MAX_LENGTH"))
    if len(text) > limit:
        raise invalid("content", _("The text has %(n)d characters; the limit is %(limit)d.")
                      % {"n": len(text), "limit": limit})


def _whole_number(value, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise invalid("content", _("%(field)s must be a whole number.") % {"field": name}) from None
    if number < 0:
        raise invalid("content", _("%(field)s must not be negative.") % {"field": name})
    return number


def _coordinate(value, name: str, bound: int) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise invalid("content", _("%(field)s must be a number.") % {"field": name}) from None
    if not -bound <= number <= bound:
        raise invalid("content", _("%(field)s must be between -%(b)d and %(b)d.") % {"field": name, "b": bound})
    return number


def is_http_url(value) -> bool:
    """An http or https URL with a host, of at most 500 characters (no javascript:, data:, ...)."""
    if not isinstance(value, str) or len(value) > 500:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _check_url(value, field):
    if not isinstance(value, str):
        raise invalid("content", _("%(field)s must be a URL.") % {"field": field})
    if not is_http_url(value):
        raise invalid("content", _("%(field)s must be an http(s) URL of at most 500 characters.")
                      % {"field": field})


def _is_public_host(host):
    """Whether every address the host name resolves to is a public (global) one."""
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return True  # unresolvable: the request below fails with a clear message
    return all(ipaddress.ip_address(info[4][0].split("%", 1)[0]).is_global for info in infos)


def check_media_url(url):
    """HEAD (then a ranged GET) the media URL; raise MessagingInvalid when it is unreachable.

    The platform's server makes this request for a URL an operator typed, so it never goes to a
    private, loopback or link-local address (the check is skipped: the instance fetches the media
    and reports `media_fetch_failed` if it cannot), unless MEDIA_CHECK_PRIVATE_HOSTS is on; and it
    does not follow redirects (an answer below 400 is enough)."""
    host = urlsplit(url).hostname or ""
    if not conf.get("MEDIA_CHECK_PRIVATE_HOSTS") and not _is_public_host(host):
        return
    timeout = float(conf.get("MEDIA_CHECK_TIMEOUT_S"))
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            response = client.head(url)
            if response.status_code in (405, 501):
                response = client.get(url, headers={"Range": "bytes=0-0"})
    except httpx.HTTPError as exc:
        raise invalid("content", _("The media URL cannot be reached (%(error)s).")
                      % {"error": type(exc).__name__}) from None
    if response.status_code >= 400:
        raise invalid("content", _("The media URL answered HTTP %(status)d.") % {"status": response.status_code})


def to_columns(message_type, content):
    """The `messages` column values for a validated content dict."""
    cols = {
        "message_content": None,
        "media_url": None,
        "media_size": None,
        "media_duration": None,
        "thumbnail_url": None,
        "file_name": None,
    }
    if message_type == "text":
        cols["message_content"] = content.get("text")
        return cols
    cols["message_content"] = json.dumps(content, ensure_ascii=False, sort_keys=True)
    if message_type in MEDIA_TYPES:
        cols["media_url"] = content.get("url")
    cols["thumbnail_url"] = content.get("thumb_url")
    if message_type == "video":
        cols["media_duration"] = content.get("duration_s")
    if message_type == "file":
        cols["file_name"] = (content.get("filename") or "")[:255] or None
        cols["media_size"] = content.get("size")
    return cols


def from_message(message):
    """The protocol content dict of a stored message."""
    if message.message_type == "text":
        return {"text": message.message_content or ""}
    try:
        value = json.loads(message.message_content or "{}")
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def content_to_text(message_type, content):
    """Store a task's or template's content: text as is, other types as JSON."""
    if message_type == "text":
        return content.get("text", "") if isinstance(content, dict) else str(content)
    return json.dumps(content, ensure_ascii=False, sort_keys=True)


def summary(message_type, content):
    """A short human-readable line for lists."""
    if message_type == "text":
        text = content.get("text", "")
    elif message_type in ("link",):
        text = content.get("title", "")
    elif message_type == "file":
        text = content.get("filename", "")
    elif message_type == "location":
        text = content.get("title") or f"{content.get('latitude')}, {content.get('longitude')}"
    else:
        text = content.get("url", "") or content.get("contact_id", "")
    text = str(text)
    return text if len(text) <= 80 else text[:79] + "…"
