"""Matching a customer's reply against keywords (opt-outs, auto-replies, tag rules)."""
from __future__ import annotations

import unicodedata

#: Around a keyword, these do not count: "TD。", " 退订! ".
_TRIM = " \t\r\n.,!?;:'\"()[]{}<>。，！？；：、“”‘’（）【】《》~～…-_*#"


def normalize(text: str | None) -> str:
    """Case-folded, full-width letters made half-width (ＴＤ → td), trimmed of punctuation."""
    return unicodedata.normalize("NFKC", text or "").casefold().strip(_TRIM)


def matches(text: str | None, keyword: str, match_type: str) -> bool:
    body, key = normalize(text), normalize(keyword)
    if not key or not body:
        return False
    return body == key if match_type == "exact" else key in body


def inbound_text(event: dict) -> str | None:
    """The text of a received message event (None for other types)."""
    data = event.get("data") or {}
    if (data.get("type") or "text") != "text":
        return None
    content = data.get("content") or {}
    return content.get("text") if isinstance(content, dict) else str(content)


def is_private_from_customer(event: dict) -> bool:
    """A live message in a one-to-one chat, written by the other side (not ours, not history)."""
    data = event.get("data") or {}
    return (data.get("conversation_type") != "room" and not data.get("is_self")
            and not data.get("is_history") and bool(data.get("conversation_id")))
