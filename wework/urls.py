from importlib import import_module

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from wework.api.docs import ApiDocsView

PAGE_APPS = ("accounts", "instances", "contacts", "messaging", "monitoring", "scrm")


def _page_patterns():
    """Server-rendered pages of each app, from `<app>/urls.py` (namespace = app label)."""
    patterns = []
    for app in PAGE_APPS:
        try:
            module = import_module(f"{app}.urls")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app}.urls":
                raise
            continue
        patterns.append(path(f"{app}/", include((module.urlpatterns, app), namespace=app)))
    return patterns


urlpatterns = [
    # The address scripts/run prints is the admin's; the bare host leads there too.
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False), name="home"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include(("wework.api.urls", "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    *_page_patterns(),
]

handler403 = "wework.error_pages.permission_denied"
handler404 = "wework.error_pages.page_not_found"
handler500 = "wework.middleware.server_error"
