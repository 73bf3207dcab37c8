"""Sentences stored as their source, shown in each reader's language.

A row written by one process (beat, a worker, a request in English) is read by operators in
zh-hans and in English. Text that is stored translated stays in the writer's language for ever;
a `Text` keeps the source sentence and its values instead, so every reader gets it in theirs:

    title = Text(gettext_noop("Instance %(name)s is offline"), name=instance.name)
    row.alert_title = title.render_in(settings.LANGUAGE_CODE)  # the design's text column
    row.alert_i18n = {"title": title.to_data()}                 # the source, for readers
    ...
    render_data(row.alert_i18n["title"], fallback=row.alert_title)  # in the reader's language

Mark the source with `gettext_noop` so makemessages collects it. Values may be Texts
themselves (a status label); they are rendered in the same language as the sentence.
"""
from __future__ import annotations

import decimal
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext


def source_of(label: Any) -> str:
    """The untranslated source of a lazy label (a choice's label, a verbose name)."""
    with translation.override(None):
        return str(label)


class Text:
    """A translatable sentence with its values, rendered when it is read."""

    __slots__ = ("msgid", "params")

    def __init__(self, msgid: str, **params: Any):
        self.msgid = str(msgid)
        self.params = params

    @classmethod
    def label(cls, lazy_label: Any) -> Text:
        """A choice's label (`AccountStatus.BANNED.label`) as a Text."""
        return cls(source_of(lazy_label))

    def render(self) -> str:
        """In the active language."""
        text = gettext(self.msgid)
        if not self.params:
            return text
        values = {k: v.render() if isinstance(v, Text) else v for k, v in self.params.items()}
        try:
            return text % values
        except (KeyError, TypeError, ValueError):  # a catalogue entry that lost a placeholder
            return self.msgid % values

    def render_in(self, language: str | None) -> str:
        with translation.override(language):
            return self.render()

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"Text({self.msgid!r}, **{self.params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Text) and (self.msgid, self.params) == (other.msgid, other.params)

    def __hash__(self) -> int:
        return hash(self.msgid)

    def to_data(self) -> dict:
        """JSON for a column: {"m": source, "p": {name: value}} (Decimals become floats)."""
        params = {}
        for key, value in self.params.items():
            if isinstance(value, Text):
                value = value.to_data()
            elif isinstance(value, decimal.Decimal):
                value = float(value)
            elif not isinstance(value, (int, float, str, bool, type(None))):
                value = str(value)
            params[key] = value
        return {"m": self.msgid, "p": params} if params else {"m": self.msgid}

    @classmethod
    def from_data(cls, data: dict) -> Text:
        params = {key: cls.from_data(value) if isinstance(value, dict) else value
                  for key, value in (data.get("p") or {}).items()}
        return cls(data["m"], **params)


def in_platform_language(text: Any) -> str:
    """A Text (or anything) as a string in the platform's language (LANGUAGE_CODE), for the
    design's text columns that every process writes alike."""
    with translation.override(settings.LANGUAGE_CODE):
        return str(text)


def render_data(data: Any, fallback: str = "") -> str:
    """A stored Text in the active language; `fallback` (the stored text) when there is none
    or it cannot be read."""
    if not isinstance(data, dict) or "m" not in data:
        return fallback
    try:
        return Text.from_data(data).render()
    except (KeyError, TypeError, ValueError):
        return fallback
