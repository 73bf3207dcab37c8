"""What the apps above `instances` do with what instances report, registered by them.

`instances` receives events, heartbeats and outages, but the accounts, contacts, messages and
alerts they concern belong to the apps above it (contacts, messaging, monitoring). Those apps
register their handlers here from their `AppConfig.ready()`, so that `instances` calls up
without importing up (docs/development.md, "Layers").

- `register_event_handler(type_or_prefix, handler)`: `handler(instance, event)` for an event
  type (`"account.online"`) or every type under a prefix ending in a dot (`"message."`).
- `register_event_observer(kind, fn, before=...)`: more apps interested in an event type (or a
  prefix ending in a dot). A `before` observer, `fn(instance, event)`, runs first in its own
  transaction, committed before the handler's opens (scrm records an opt-out so that nothing
  later can lose it); an after observer, `fn(instance, event, result)`, runs in the handler's
  transaction once the handler returned `result` (scrm's welcome messages and auto-replies).
  Observers are idempotent: a redelivered event runs them again.
- `register_shard_preparer(prefix, preparer)`: `preparer(instance_id)` creates the shard tables
  an event of that type prefix writes to, before its transaction opens.
- `register_accounts_reporter(fn)`: `fn(instance, accounts)` with a heartbeat's account states.
- `register_offline_handler(fn)`: `fn(instance)` when an instance went offline or its client
  exited.
- `register_alerts(alerts)`: the alert service, an object with `fire_alert(kind, **fields)` and
  `resolve_alert(kind, **fields)` (monitoring).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger(__name__)

EventHandler = Callable[[Any, dict], Any]


class Alerts(Protocol):
    def fire_alert(self, kind: str, **fields: Any) -> Any: ...

    def resolve_alert(self, kind: str, **fields: Any) -> Any: ...


_event_handlers: dict[str, EventHandler] = {}
_before_observers: dict[str, list[Callable[[Any, dict], Any]]] = {}
_after_observers: dict[str, list[Callable[[Any, dict, Any], Any]]] = {}
_shard_preparers: dict[str, Callable[[int], None]] = {}
_accounts_reporters: list[Callable[[Any, list], None]] = []
_offline_handlers: list[Callable[[Any], None]] = []
_alerts: Alerts | None = None


def register_event_handler(kind: str, handler: EventHandler) -> None:
    """Handle events of type `kind` (or, for a kind ending in ".", every type under it)."""
    if kind in _event_handlers and _event_handlers[kind] is not handler:
        raise ValueError(f"two handlers for instance events {kind!r}")
    _event_handlers[kind] = handler


def event_handler(kind: str) -> EventHandler | None:
    """The handler for an event type: its own, else its prefix's (`message.` for
    `message.received`), else None."""
    handler = _event_handlers.get(kind)
    if handler is None and "." in kind:
        handler = _event_handlers.get(kind.split(".", 1)[0] + ".")
    return handler


def register_event_observer(kind: str, fn: Callable, *, before: bool = False) -> None:
    """Call `fn` for events of type `kind` (or every type under a prefix ending in ".") besides
    their handler: before it in a transaction of its own, or after it in its transaction."""
    registry: dict[str, list] = _before_observers if before else _after_observers
    observers = registry.setdefault(kind, [])
    if fn not in observers:
        observers.append(fn)


def _observers(registry: dict[str, list], kind: str) -> list:
    found = list(registry.get(kind, ()))
    if "." in kind:
        found += registry.get(kind.split(".", 1)[0] + ".", [])
    return found


def has_before_observers(kind: str) -> bool:
    return bool(_observers(_before_observers, kind))


def observe_before(instance: Any, event: dict) -> None:
    """Run the before-observers of the event's type (the caller opens their transaction)."""
    for fn in _observers(_before_observers, event.get("type") or ""):
        fn(instance, event)


def observe_after(instance: Any, event: dict, result: Any) -> None:
    """Run the after-observers of the event's type with the handler's result."""
    for fn in _observers(_after_observers, event.get("type") or ""):
        fn(instance, event, result)


def register_shard_preparer(prefix: str, preparer: Callable[[int], None]) -> None:
    _shard_preparers[prefix] = preparer


def prepare_shards(event_type: str, instance_id: int) -> None:
    """Create the shard tables events of this type write to (see `register_shard_preparer`)."""
    for prefix, preparer in _shard_preparers.items():
        if event_type.startswith(prefix):
            preparer(instance_id)


def register_accounts_reporter(fn: Callable[[Any, list], None]) -> None:
    if fn not in _accounts_reporters:
        _accounts_reporters.append(fn)


def report_accounts(instance: Any, accounts: list) -> None:
    for fn in _accounts_reporters:
        fn(instance, accounts)


def register_offline_handler(fn: Callable[[Any], None]) -> None:
    if fn not in _offline_handlers:
        _offline_handlers.append(fn)


def instance_went_offline(instance: Any) -> None:
    for fn in _offline_handlers:
        fn(instance)


def register_alerts(alerts: Alerts) -> None:
    global _alerts
    _alerts = alerts


def alerts() -> Alerts | None:
    return _alerts
