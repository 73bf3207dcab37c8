import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wework.settings")
# The web process: statements get the time limit of DATABASE_STATEMENT_TIMEOUT_S (settings).
os.environ.setdefault("WEWORK_PROCESS", "web")
django_application = get_wsgi_application()

# Instance webhooks take a lean route (signature-authenticated: no session/CSRF/auth
# middleware, no URL resolving); everything else is the Django application above.
from wework.webhook_wsgi import wrap  # noqa: E402 - needs the settings configured above

application = wrap(django_application)
