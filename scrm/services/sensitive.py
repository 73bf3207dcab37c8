"""Sensitive words: a task or a template that carries one is refused, naming the words
(registered as a messaging content check)."""
from __future__ import annotations

from collections.abc import Iterable

from django.utils.translation import gettext as _

from ..models import SensitiveWord


def _texts(value) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)


def found_words(content) -> list[str]:
    """The enabled sensitive words in a text or a content dict (case-insensitive), in order."""
    text = "\n".join(_texts(content)).casefold()
    if not text:
        return []
    return [w for w in SensitiveWord.objects.filter(is_enabled=True).order_by("word").values_list("word", flat=True)
            if w and w.casefold() in text]


def content_check(message_type: str, body) -> dict[str, list[str]]:
    words = found_words(body)
    if not words:
        return {}
    return {"content": [_("The content contains sensitive words: %(words)s. Remove them to continue.")
                        % {"words": ", ".join(words)}]}
