"""instances.hooks: event observers of the apps above (before the handler, after it with its result)."""
import pytest

from instances import hooks
from instances.services import intake


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(hooks, "_event_handlers", {})
    monkeypatch.setattr(hooks, "_before_observers", {})
    monkeypatch.setattr(hooks, "_after_observers", {})
    return hooks


def test_observers_run_around_the_handler_with_its_result(registry):
    calls = []
    registry.register_event_handler("demo.", lambda instance, event: calls.append("handler") or {"stored": True})
    registry.register_event_observer("demo.happened", lambda i, e: calls.append("before"), before=True)
    registry.register_event_observer("demo.", lambda i, e, result: calls.append(("after", result)))
    registry.register_event_observer("other.kind", lambda i, e, result: calls.append("other"))
    assert registry.has_before_observers("demo.happened") and not registry.has_before_observers("other.kind")
    registry.observe_before(None, {"type": "demo.happened"})
    assert intake.dispatch_event(None, {"type": "demo.happened"}) == {"stored": True}
    assert calls == ["before", "handler", ("after", {"stored": True})]


def test_after_observers_run_for_events_without_a_handler(registry):
    seen = []
    registry.register_event_observer("lonely.event", lambda i, e, result: seen.append(result))
    assert intake.dispatch_event(None, {"type": "lonely.event"}) is None
    assert seen == [None]
