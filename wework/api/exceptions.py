"""The API's one exception handler (REST_FRAMEWORK["EXCEPTION_HANDLER"]).

Maps the platform's `DomainError`, Django's `ValidationError` and `PermissionDenied` to the right
status, in the same shapes as DRF's own errors: `{"detail", "code"}`, or field messages as
`{"<field>": ["..."]}`; a delete refused because other rows refer to the row is a 409. A database that cannot serve the request now (unreachable, switching
over to another node, a conflict that outlived its retries: wework.db.errors) is a 503 with
Retry-After, never a 500. A body over settings.DATA_UPLOAD_MAX_MEMORY_SIZE (Django's
RequestDataTooBig, raised when DRF reads the body) is a 413 saying the limit.
"""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.template.defaultfilters import filesizeformat
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from django.utils.translation import gettext_lazy as _
from rest_framework.views import exception_handler as drf_exception_handler

from wework import outages
from wework.db import errors as db_errors
from wework.db.retry import UNAVAILABLE_MESSAGE
from wework.errors import DomainError, UnavailableError


TOO_LARGE_MESSAGE = _("The request body is larger than the %(limit)s the API accepts; send less in "
                      "one request (split a broadcast into several tasks).")
CACHE_UNAVAILABLE_MESSAGE = _("A platform service (Redis) is not available right now; retry in a few seconds.")


def _validation_detail(exc: DjangoValidationError):
    if hasattr(exc, "error_dict"):
        return {
            ("non_field_errors" if name == "__all__" else name): [str(m) for m in errors]
            for name, errors in exc.message_dict.items()
        }
    return {"non_field_errors": [str(m) for m in exc.messages]}


def too_large_response():
    """413 for a body over DATA_UPLOAD_MAX_MEMORY_SIZE, naming the limit."""
    size = filesizeformat(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)  # "32.0 MB", translated
    return Response({"detail": str(TOO_LARGE_MESSAGE) % {"limit": size}, "code": "too_large"},
                    status=413)


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return too_large_response()
    code = outages.outage_code(exc)
    if code == outages.DATABASE:
        db_errors.log_unavailable(exc, context.get("request"))
        exc = UnavailableError(UNAVAILABLE_MESSAGE, code=code)
    elif code == outages.CACHE:
        db_errors.log_unavailable(exc, context.get("request"))
        exc = UnavailableError(CACHE_UNAVAILABLE_MESSAGE, code=code)
    elif code == outages.STATEMENT_TIMEOUT:
        db_errors.log_unavailable(exc, context.get("request"))
        exc = UnavailableError(outages.message(code), code=code)
    if isinstance(exc, (ProtectedError, RestrictedError)):
        # A delete that rows elsewhere still refer to (a foreign key, or a reference of another
        # module's database: wework.db.deletion): the client's sentence, not a 500.
        exc = DomainError(exc.args[0], code="protected", status=409)
    if isinstance(exc, DomainError):
        headers = {}
        if isinstance(exc, UnavailableError) and exc.retry_after:
            headers["Retry-After"] = str(exc.retry_after)
        return Response(exc.as_dict(), status=exc.status, headers=headers)
    if isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(_validation_detail(exc))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied(str(exc) or None)
    return drf_exception_handler(exc, context)
