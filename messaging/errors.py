"""Messaging's errors: `wework.errors.DomainError` subclasses, so that the API's one exception
handler answers them (status, field messages) and pages, the admin and commands show their
sentences.

- `MessagingInvalid` (400): a request, template or content the user must correct, with field
  messages (`{"receivers": ["..."]}`).
- `TaskStateError` (400, field `status`): the task is not in a state that allows the action
  ("Only paused tasks can be resumed."). The API has always answered these with 400, so they keep
  it rather than the 409 of `ConflictError`.
- `SendPermissionDenied` (403): the acting user may not send (or manage tasks) from that account.

Rendering errors (`rendering.TemplateSyntaxError`, `rendering.MissingVariablesError`) are
`MessagingInvalid` too; the service that renders names the field they belong to with
`invalid_field()`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from wework.errors import DomainError, PermissionDeniedError


class MessagingInvalid(DomainError):
    """Bad input to a messaging service: 400 with field messages."""

    status = 400
    code = "invalid"

    def __init__(self, message: object = "", **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.args = (self.message,)  # str(error) reads its first sentence, also when only fields were given


class TaskStateError(MessagingInvalid):
    """The task's status does not allow the action (400, under the field `status`)."""

    code = "invalid_task_state"

    def __init__(self, message: object) -> None:
        super().__init__(fields={"status": [message]})


class SendPermissionDenied(PermissionDeniedError):
    """The acting user lacks the send, broadcast or manage permission on the account's instance."""


def invalid(field: str, message: object | Sequence[object]) -> MessagingInvalid:
    """A `MessagingInvalid` with the message(s) under `field`."""
    return MessagingInvalid(fields={field: message if isinstance(message, (list, tuple)) else [message]})


def invalid_fields(fields: Mapping[str, object | Sequence[object]]) -> MessagingInvalid:
    return MessagingInvalid(fields=fields)


def invalid_field(field: str, exc: Exception) -> MessagingInvalid:
    """Name the field a lower-level error (a rendering error, a ValueError) belongs to."""
    if isinstance(exc, DomainError) and exc.fields:
        return MessagingInvalid(fields={field: [m for msgs in exc.fields.values() for m in msgs]})
    return invalid(field, getattr(exc, "message", None) or str(exc))


def error_messages(exc: DomainError) -> list[str]:
    """Every sentence of the error (its field messages, or its message), for a flash or a log."""
    if exc.fields:
        return [m for msgs in exc.fields.values() for m in msgs]
    return [exc.message]
