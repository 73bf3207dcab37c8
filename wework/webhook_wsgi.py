"""A lean WSGI route for instance webhooks: /api/v1/instances/<uuid>/events.

The webhook is authenticated by its HMAC signature alone, so the browser middleware (sessions,
CSRF, auth, OTP, session revocation, messages) does nothing for it but costs time on every
event; and resolving the URL walks the whole URLconf. `wrap(application)` answers requests
for the webhook path with a Django handler of its own that runs the same view
(instances.api.views.webhook_events) behind only the middleware a webhook needs:

- SecurityMiddleware and XFrameOptionsMiddleware: the same response headers;
- LocaleMiddleware: the same language for error messages (Accept-Language, else the default);
- DatabaseRoutingMiddleware: the routing scope and the 503 JSON when the database is away;
- RequestContextMiddleware: trace id (X-Request-ID), request context for logs, the access record.

It is still Django's BaseHandler: request_started/request_finished (old connections closed),
the statement time limit of the web process (settings), exception handling (handler500, a
database outage as 503). Every other path, and any path that does not match the URL pattern,
goes to the normal application unchanged.
"""
import re
import uuid

from django.core.handlers.wsgi import WSGIHandler
from django.http import Http404
from django.test.utils import override_settings
from django.urls import ResolverMatch

# Imported once the settings are configured and the apps loaded (wework/wsgi.py imports this
# module after get_wsgi_application()).
from instances.api.views import webhook_events

# The path of instances/api/urls.py under wework/urls.py's "api/v1/"; the <uuid:> converter's
# pattern (lower-case hex), so both routes accept exactly the same URLs.
WEBHOOK_PATH = re.compile(
    r"^/api/v1/instances/"
    r"(?P<instance_uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/events$"
)

WEBHOOK_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "wework.middleware.DatabaseRoutingMiddleware",
    "monitoring.middleware.RequestContextMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]


class WebhookHandler(WSGIHandler):
    """Django's WSGI handler with the webhook's middleware and no URL resolving."""

    def __init__(self):
        # WSGIHandler.__init__ loads settings.MIDDLEWARE; load ours instead.
        super(WSGIHandler, self).__init__()
        self._view = webhook_events
        self.load_middleware()

    def load_middleware(self, is_async=False):
        # Django's own loader, reading this list instead of settings.MIDDLEWARE (once, at start).
        with override_settings(MIDDLEWARE=WEBHOOK_MIDDLEWARE):
            super().load_middleware(is_async=is_async)

    def resolve_request(self, request):
        match = WEBHOOK_PATH.match(request.path_info)
        if match is None:  # only routed here when it matched; kept as a guard
            raise Http404
        kwargs = {"instance_uuid": uuid.UUID(match["instance_uuid"])}
        resolver_match = ResolverMatch(self._view, (), kwargs, url_name="instance-events",
                                       app_names=["api"], namespaces=["api"],
                                       route="api/v1/instances/<uuid:instance_uuid>/events")
        request.resolver_match = resolver_match
        return resolver_match


def wrap(application):
    """The WSGI application: webhook paths to WebhookHandler, everything else to `application`."""
    webhook = WebhookHandler()

    def dispatch(environ, start_response):
        if WEBHOOK_PATH.match(environ.get("PATH_INFO", "")):
            return webhook(environ, start_response)
        return application(environ, start_response)

    dispatch.webhook_handler = webhook  # type: ignore[attr-defined]
    dispatch.django_application = application  # type: ignore[attr-defined]
    return dispatch
