"""Database routing per request, and a 503 (never a 500 page) while the database is away.

`DatabaseRoutingMiddleware` (right after AuthenticationMiddleware):
- gives every request a fresh routing scope (wework/routers.py): nothing written yet, replica
  reads only where a view declares a pure read;
- after a request that wrote, keeps the user's reads on the primary for a few seconds
  (read-your-writes across requests, whatever replica the next request would have used);
- answers 503 with Retry-After when a view fails because the database cannot serve it now
  (wework.db.errors: unreachable, switching over, a conflict that outlived its retries): JSON
  for API and webhook clients and anyone asking for JSON, a short page for browsers. The API's
  own exception handler does the same for DRF views.
"""
from django.http import HttpResponse, JsonResponse
from django.utils.html import escape
from django.utils.translation import gettext as _

from wework import outages, routers
from wework.db import errors as db_errors

RETRY_AFTER_S = 5


def wants_json(request):
    if request.path.startswith("/api/"):
        return True
    accept = request.headers.get("Accept", "")
    return "json" in accept and "html" not in accept


def unavailable_response(request, code=outages.DATABASE):
    message = outages.message(code)
    if wants_json(request):
        response = JsonResponse({"detail": message, "code": code}, status=503)
    else:
        title = _("Service unavailable")
        response = HttpResponse(
            f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
            f"<body><h1>{escape(title)}</h1><p>{escape(message)}</p></body></html>",
            status=503, content_type="text/html; charset=utf-8",
        )
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


class DatabaseRoutingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with routers.request_scope() as state:
            response = self.get_response(request)
        if state.wrote:
            try:
                routers.pin_user(getattr(request, "user", None))
            except Exception:  # noqa: BLE001 - the user cannot be loaded (database away)
                pass
        return response

    def process_exception(self, request, exception):
        code = outages.outage_code(exception)
        if code:
            db_errors.log_unavailable(exception, request)
            return unavailable_response(request, code)
        return None


def server_error(request, *args, **kwargs):
    """handler500: a database outage that surfaced outside a view (in a middleware, while
    rendering) is a 503 too; anything else is Django's own 500 page."""
    import sys

    from django.views.defaults import server_error as django_server_error

    exc = sys.exc_info()[1]
    code = outages.outage_code(exc)
    if code:
        db_errors.log_unavailable(exc, request)
        return unavailable_response(request, code)
    return django_server_error(request, *args, **kwargs)
