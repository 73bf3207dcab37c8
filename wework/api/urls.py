"""The `/api/v1/` URL space: each app contributes its routes in `<app>/api/urls.py`.

Apps register their viewsets on a `SimpleRouter` named `router`; the one API root at `/api/v1/`
(DRF's browsable index of the list endpoints) is built here from all of them, so that it is
registered once and lists every app's endpoints.
"""
from importlib import import_module

from django.urls import include, path
from rest_framework.routers import APIRootView

API_APPS = ("accounts", "instances", "contacts", "messaging", "monitoring", "scrm")


def _app_modules():
    modules = []
    for app in API_APPS:
        try:
            modules.append(import_module(f"{app}.api.urls"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{app}.api.urls":
                raise
    return modules


def _root_view(modules):
    api_root = {}
    for module in modules:
        router = getattr(module, "router", None)
        for prefix, viewset, basename in getattr(router, "registry", ()):
            # a viewset of actions only (an app adding actions under another app's URLs)
            # has no list to point at
            if hasattr(viewset, "list"):
                api_root[prefix] = f"{basename}-list"
    return APIRootView.as_view(api_root_dict=dict(sorted(api_root.items())))


_modules = _app_modules()
urlpatterns = [
    path("", _root_view(_modules), name="api-root"),
    *[path("", include(module.urlpatterns)) for module in _modules],
]
