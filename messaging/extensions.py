"""What apps above messaging add to its rules, registered from their `AppConfig.ready()`
(docs/development.md, "Layers": a lower app calls up through a handler the higher one
registers, never by importing it). scrm registers all four.

- `register_receiver_exclusion(fn)`: `fn(account, receivers)` returns the receivers to leave
  out of a task that is not a single message (a broadcast or a batch), as a set of
  `(type, wxid)`; scrm leaves out contacts who opted out.
- `register_audience(key, fn)`: a filter key messaging does not know (`"segment"`) selects
  receivers through `fn(account, value, filters)`, an iterable of receiver dicts.
- `register_content_check(fn)`: `fn(message_type, body)` returns field messages
  (`{"content": ["..."]}`) for content a task or a template may not carry; scrm names the
  sensitive words it contains.
- `register_conversation_panel(fn)`: `fn(request, conversation)` returns HTML (rendered by the
  registering app's own template, with its own permission checks and forms posting to its own
  views) shown beside a conversation, or None; scrm shows the contact's tags with add and
  remove.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import invalid_fields

_exclusions: list[Callable[[Any, list[dict]], set]] = []
_audiences: dict[str, Callable[[Any, Any, Mapping], Iterable[dict]]] = {}
_content_checks: list[Callable[[str, Any], Mapping[str, list]]] = []
_conversation_panels: list[Callable[[Any, Any], str | None]] = []


def register_receiver_exclusion(fn: Callable[[Any, list[dict]], set]) -> None:
    if fn not in _exclusions:
        _exclusions.append(fn)


def register_audience(key: str, fn: Callable[[Any, Any, Mapping], Iterable[dict]]) -> None:
    _audiences[key] = fn


def register_content_check(fn: Callable[[str, Any], Mapping[str, list]]) -> None:
    if fn not in _content_checks:
        _content_checks.append(fn)


def register_conversation_panel(fn: Callable[[Any, Any], str | None]) -> None:
    if fn not in _conversation_panels:
        _conversation_panels.append(fn)


def conversation_panels(request, conversation) -> list[str]:
    """The HTML of every registered panel that has something to show for this conversation."""
    return [html for html in (fn(request, conversation) for fn in _conversation_panels) if html]


def audience_keys() -> tuple[str, ...]:
    return tuple(_audiences)


def audience(key: str) -> Callable[[Any, Any, Mapping], Iterable[dict]] | None:
    return _audiences.get(key)


def excluded_receivers(account, receivers: list[dict]) -> set:
    """(type, wxid) pairs every registered exclusion leaves out."""
    out: set = set()
    for fn in _exclusions:
        out |= set(fn(account, receivers) or ())
    return out


def content_errors(message_type: str, body: Any) -> dict[str, list]:
    errors: dict[str, list] = {}
    for fn in _content_checks:
        for field, messages in (fn(message_type, body) or {}).items():
            errors.setdefault(field, []).extend(messages)
    return errors


def check_content(message_type: str, body: Any) -> None:
    """MessagingInvalid with the field messages of the registered content checks."""
    errors = content_errors(message_type, body)
    if errors:
        raise invalid_fields(errors)
