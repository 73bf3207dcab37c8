"""The `/api/v1/` URL space: each app contributes its routes in `<app>/api/urls.py`."""
from importlib import import_module

from django.urls import include, path

API_APPS = ("accounts", "instances", "contacts", "messaging", "monitoring")


def _app_patterns():
    patterns = []
    for app in API_APPS:
        try:
            module = import_module(f"{app}.api.urls")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app}.api.urls":
                raise
            continue
        patterns.append(path("", include(module.urlpatterns)))
    return patterns


urlpatterns = _app_patterns()
