"""Audit of task status changes.

Task actions change rows with `QuerySet.update()` (conditional, race-free), which fires no model
signal: each one reports its change with `record()`, inside the transaction of the change, and
monitoring writes the audit row `message_task.<operation>` with the actor of the context
(request user, Celery task, beat, command), the old and the new status. A refused action leaves
a FAILURE row (`audited_action`).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from ..errors import error_messages
from ..errors import MessagingInvalid
from ..models import MessageTask
from ..signals import task_changed


def record(operation: str, task, old_status, new_status, *, old_values: dict | None = None,
           new_values: dict | None = None, result: str = "SUCCESS", error: str | None = None,
           extra: dict | None = None) -> None:
    """Report one status change (or refusal, `new_status` None) of `task`."""
    old = {"status": old_status, **(old_values or {})}
    new = None if new_status is None and not new_values else {"status": new_status, **(new_values or {})}
    task_changed.send(MessageTask, operation=operation, task=task, old_values=old, new_values=new,
                      result=result, error=error, extra=extra)


def audited_action(operation: str) -> Callable:
    """Decorate an operator action `fn(user, task, ...)`: when it is refused (MessagingInvalid),
    record a FAILURE with the status found, after the action's own transaction rolled back."""

    def decorate(fn):
        @wraps(fn)
        def wrapper(user, task, *args, **kwargs):
            try:
                return fn(user, task, *args, **kwargs)
            except MessagingInvalid as exc:
                current = MessageTask.objects.filter(pk=task.pk).values_list("status", flat=True).first()
                record(operation, task, current, None, result="FAILURE", error="; ".join(error_messages(exc)))
                raise

        return wrapper

    return decorate
