import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wework.settings")
# The web process: statements get the time limit of DATABASE_STATEMENT_TIMEOUT_S (settings).
os.environ.setdefault("WEWORK_PROCESS", "web")
application = get_wsgi_application()
