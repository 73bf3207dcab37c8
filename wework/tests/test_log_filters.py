"""A 403 is logged as one line, without the PermissionDenied traceback; other errors keep theirs."""
import logging

import pytest
from django.core.exceptions import PermissionDenied
from django.test import override_settings
from django.urls import path


def forbidden(request):
    raise PermissionDenied("no")


def broken(request):
    raise RuntimeError("boom")


urlpatterns = [path("forbidden/", forbidden), path("broken/", broken)]


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
def test_403_logged_without_traceback_500_with(client, caplog):
    logger = logging.getLogger("django.request")
    assert logger.filters  # settings.LOGGING put the filter on the logger at start-up
    caplog.set_level(logging.WARNING, logger="django.request")
    assert client.get("/forbidden/").status_code == 403
    client.raise_request_exception = False
    assert client.get("/broken/").status_code == 500
    records = {r.status_code: r for r in caplog.records if r.name == "django.request"}
    assert records[403].exc_info is None and "Forbidden" in records[403].getMessage()
    assert records[500].exc_info is not None
