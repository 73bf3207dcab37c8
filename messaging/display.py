"""Message content as people read it: a one-line summary for lists and a small rendering for
detail pages (an image, a link card, a location, a file), never the stored JSON."""
from __future__ import annotations

import json

from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _, gettext_lazy

TYPE_LABELS = {
    "image": gettext_lazy("Image"), "video": gettext_lazy("Video"), "file": gettext_lazy("File"),
    "link": gettext_lazy("Link"), "card": gettext_lazy("Contact card"), "location": gettext_lazy("Location"),
}
SUMMARY_LENGTH = 60


def parts(message_type: str, stored: str | None) -> dict:
    """The content dict of a stored message (text keeps its text as is)."""
    if message_type == "text" or not stored:
        return {"text": stored or ""}
    try:
        value = json.loads(stored)
    except ValueError:
        return {"text": stored}
    return value if isinstance(value, dict) else {"text": stored}


def _cut(text: str, length: int = SUMMARY_LENGTH) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def summary(message_type: str, stored: str | None) -> str:
    """One line: the text, or "[Link] title", "[Image] file name", "[Location] place"."""
    content = parts(message_type, stored)
    if message_type == "text" or message_type not in TYPE_LABELS:
        return _cut(content.get("text", ""))
    detail = {
        "image": content.get("url", "").rsplit("/", 1)[-1],
        "video": content.get("url", "").rsplit("/", 1)[-1],
        "file": content.get("filename") or content.get("url", "").rsplit("/", 1)[-1],
        "link": content.get("title") or content.get("url", ""),
        "card": content.get("contact_id", ""),
        "location": content.get("title") or content.get("address")
        or f"{content.get('latitude', '')}, {content.get('longitude', '')}",
    }[message_type]
    return _cut(f"[{TYPE_LABELS[message_type]}] {detail}")


def _safe_url(url) -> str | None:
    url = str(url or "")
    return url if url.startswith(("https://", "http://")) else None


def render(message_type: str, stored: str | None) -> SafeString:
    """A small rendering for detail pages. Remote images load without a referrer."""
    content = parts(message_type, stored)
    url = _safe_url(content.get("url"))
    if message_type == "image" and url:
        return format_html('<a href="{0}" rel="noopener noreferrer" target="_blank"><img src="{0}" alt="{1}" '
                           'referrerpolicy="no-referrer" loading="lazy" style="max-width:240px;max-height:240px">'
                           '</a>', url, _("Image"))
    if message_type == "link":
        return format_html('<div class="message-link" style="border:1px solid #ddd;padding:.5em;max-width:28em">'
                           '<strong>{}</strong><div>{}</div><a href="{}" rel="noopener noreferrer" '
                           'target="_blank">{}</a></div>', content.get("title", ""), content.get("desc", ""),
                           url or "#", url or content.get("url", ""))
    if message_type == "location":
        return format_html('<div class="message-location">📍 <strong>{}</strong> {}<br>{}, {}</div>',
                           content.get("title", ""), content.get("address", ""),
                           content.get("latitude", ""), content.get("longitude", ""))
    if message_type in ("file", "video") and url:
        name = content.get("filename") or url.rsplit("/", 1)[-1]
        return format_html('[{}] <a href="{}" rel="noopener noreferrer" target="_blank">{}</a>',
                           TYPE_LABELS[message_type], url, name)
    if message_type == "card":
        return format_html("[{}] {}", TYPE_LABELS["card"], content.get("contact_id", ""))
    return format_html('<div style="white-space:pre-wrap">{}</div>', content.get("text", ""))
