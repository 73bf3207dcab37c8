"""The platform's one domain error type.

Services raise `DomainError` (or a subclass named for its app) with one sentence the user can
read; the admin, pages and commands show the sentence, and the API's one exception handler
(`wework.api.exceptions.exception_handler`) maps it to its HTTP status:

    {"detail": "<sentence>", "code": "<machine code>"}                       # no field
    {"<field>": ["<message>", ...], ...}                                      # field messages

(the second is DRF's own shape for serializer errors, so clients read one shape for both).

Subclasses set `status` and `code` as class attributes; an instance may override both.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404


class DomainError(Exception):
    """A domain operation was refused or failed for a reason the user should read."""

    status: int = 400
    code: str = "invalid"

    def __init__(
        self,
        message: object = "",
        *,
        code: str | None = None,
        status: int | None = None,
        fields: Mapping[str, Sequence[object] | object] | None = None,
    ) -> None:
        self.message = str(message)
        super().__init__(self.message)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields: dict[str, list[str]] = {
            name: [str(m) for m in (msgs if isinstance(msgs, (list, tuple)) else [msgs])]
            for name, msgs in (fields or {}).items()
        }
        if not self.message and self.fields:
            self.message = next(iter(next(iter(self.fields.values()))), "")

    def as_dict(self) -> dict:
        if self.fields:
            return {name: list(messages) for name, messages in self.fields.items()}
        return {"detail": self.message, "code": self.code}


class NotFoundError(DomainError, Http404):
    """Also Django's Http404, so that a page or admin view raising it answers 404."""

    status = 404
    code = "not_found"


class PermissionDeniedError(DomainError, DjangoPermissionDenied):
    """Also Django's PermissionDenied, so that a page or admin view raising it answers 403."""

    status = 403
    code = "permission_denied"


class ConflictError(DomainError):
    """The object is not in a state that allows the operation (409)."""

    status = 409
    code = "conflict"


class UnavailableError(DomainError):
    """A dependency (database, cache, instance) cannot be reached now; retry later (503)."""

    status = 503
    code = "unavailable"
    retry_after: int | None = 5

    def __init__(self, message: object = "", *, retry_after: int | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        if retry_after is not None:
            self.retry_after = retry_after


class UpstreamError(DomainError):
    """An instance (or other upstream service) answered with an error (502)."""

    status = 502
    code = "upstream_error"
