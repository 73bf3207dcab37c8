"""Request context: a trace id for every request, returned in `X-Request-ID`.

An incoming `X-Request-ID` is kept when it is valid (8-64 safe characters), else a valid W3C
`traceparent` gives the trace id, else a new one is made. The context (trace id, user, IP, user
agent, session, URL, method) goes into a context variable that the system log handler and the
audit trail read. With `SYSTEM_LOG_REQUESTS` on, each request also leaves one access record
(method, URL, status, time in ms) in the system log.

Place it right after AuthenticationMiddleware (the user is read lazily, so a user that DRF
authenticates later is seen too).
"""
import logging
import time

from django.conf import settings

from . import context
from .audit import record_request_failure

access_logger = logging.getLogger("wework.request")

REQUEST_ID_HEADER = "X-Request-ID"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def client_ip(request):
    """The client address: REMOTE_ADDR, or the first X-Forwarded-For hop when trusted."""
    if getattr(settings, "MONITORING_TRUST_X_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:45]
    return (request.META.get("REMOTE_ADDR") or "")[:45] or None


def source_for_path(path):
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/admin/"):
        return "admin"
    return "web"


def trace_ids(request):
    """(trace_id, parent_span_id or None) for an incoming request."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "").strip()
    if context.valid_request_id(incoming):
        return incoming, None
    parsed = context.parse_traceparent(request.headers.get("traceparent", ""))
    if parsed:
        return parsed
    return context.new_trace_id(), None


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        trace_id, _parent = trace_ids(request)
        request.request_id = trace_id
        session = getattr(request, "session", None)
        actor = context.Actor(
            source=source_for_path(request.path),
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:1000] or None,
            session_id=(session.session_key if session is not None else None),
            request_id=trace_id,
            span_id=context.new_span_id(),
            request_url=request.get_full_path()[:1000],
            request_method=request.method,
            request=request,
        )
        token = context.set_actor(actor)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            elapsed_ms = int((time.perf_counter() - started) * 1000)
            response[REQUEST_ID_HEADER] = trace_id
            self._after(request, response.status_code, elapsed_ms)
            return response
        finally:
            context.reset_actor(token)

    def process_exception(self, request, exception):
        # Django's exception handling turns it into a 500 later; the failure of a write is
        # audited here while the context is still installed.
        if request.method in WRITE_METHODS:
            _audit_failure(request, 500, repr(exception))
        return None

    def _after(self, request, status, elapsed_ms):
        if getattr(settings, "SYSTEM_LOG_REQUESTS", True):
            level = logging.ERROR if status >= 500 else (
                logging.WARNING if status >= 400 else logging.INFO
            )
            access_logger.log(
                level,
                "%s %s %s %dms",
                request.method,
                request.path,
                status,
                elapsed_ms,
                extra={"response_code": status, "response_time": elapsed_ms, "action": "request"},
            )
        if (request.method in WRITE_METHODS and status in (400, 401, 403, 405, 409, 422)
                and _authenticated(request)):
            # Anonymous refusals (bad webhook signatures, scanners) stay in the access log
            # only: they would let anybody flood the audit table.
            _audit_failure(request, status, None)


def _authenticated(request):
    user = getattr(request, "user", None)
    return bool(user is not None and getattr(user, "is_authenticated", False))


def _audit_failure(request, status, error):
    try:
        record_request_failure(request, status, error)
    except Exception:  # the audit must never break a response
        logging.getLogger(__name__).exception("could not audit a failed request")
