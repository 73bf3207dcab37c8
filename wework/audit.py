"""The audit port of the platform core.

Code below `monitoring` (the core, accounts, instances, ...) must leave audit rows for the changes
it makes through paths that fire no model signal (`QuerySet.update()`, `bulk_create()`,
operations on tables outside the ORM). It reports them here; the audit trail
(`monitoring.audit`) registers itself as the recorder in its `AppConfig.ready()`, so that the
core never imports the app that sits on top of it.

- `record(operation, **fields)`: one audit row for an operation (see `monitoring.audit.record`).
- `record_rows_changed(model, before, after)`: the model-change rows for rows changed in bulk,
  from the instances read before and after the change (the same rows as the model signals
  write for a `save()`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.db import models


class Recorder(Protocol):
    def record(self, operation: str, **fields: Any) -> Any: ...

    def record_rows_changed(
        self, model: type[models.Model], before: Sequence[models.Model],
        after: Sequence[models.Model],
    ) -> int: ...


_recorder: Recorder | None = None


def register(recorder: Recorder) -> None:
    """Install the audit recorder (monitoring's AppConfig.ready() does)."""
    global _recorder
    _recorder = recorder


def recorder() -> Recorder:
    if _recorder is None:
        # The monitoring app is part of the product: without it every audited change would be
        # lost silently.
        raise ImproperlyConfigured("No audit recorder is registered (is `monitoring` installed?).")
    return _recorder


def record(operation: str, **fields: Any) -> Any:
    """Write one audit row (keyword arguments of `monitoring.audit.record`)."""
    return recorder().record(operation, **fields)


def record_rows_changed(model: type[models.Model], before: Sequence[models.Model],
                        after: Sequence[models.Model]) -> int:
    """Audit rows changed in bulk; returns the number of audit rows written."""
    return recorder().record_rows_changed(model, before, after)
