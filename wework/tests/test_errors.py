"""The one domain error type and the API's exception handler that maps it."""
from django.core.exceptions import PermissionDenied, ValidationError
from rest_framework.test import APIRequestFactory

from wework.api.exceptions import exception_handler
from wework.errors import ConflictError, DomainError, UnavailableError


def _handle(exc):
    request = APIRequestFactory().get("/")
    return exception_handler(exc, {"request": request, "view": None})


def test_domain_error_maps_to_its_status_and_code():
    response = _handle(ConflictError("Already running.", code="sync_running"))
    assert response.status_code == 409
    assert response.data == {"detail": "Already running.", "code": "sync_running"}


def test_domain_error_with_fields_answers_drf_field_shape():
    response = _handle(DomainError(fields={"content": "Contains 赌博."}))
    assert response.status_code == 400
    assert response.data == {"content": ["Contains 赌博."]}


def test_unavailable_error_carries_retry_after():
    response = _handle(UnavailableError("Database unreachable.", retry_after=7))
    assert response.status_code == 503
    assert response["Retry-After"] == "7"


def test_django_validation_error_is_a_400_with_field_messages():
    response = _handle(ValidationError({"name": ["Required."], "__all__": ["Bad."]}))
    assert response.status_code == 400
    assert response.data == {"name": ["Required."], "non_field_errors": ["Bad."]}
    response = _handle(ValidationError("Plain."))
    assert response.data == {"non_field_errors": ["Plain."]}


def test_django_permission_denied_is_a_403():
    assert _handle(PermissionDenied("No.")).status_code == 403


def test_an_api_url_that_matches_no_route_is_a_json_404(client, settings):
    """Found by the API fuzz test (issue 12): `/api/v1/messaging/templates/0.02/` matched no route
    and answered Django's HTML page, which the schema does not document."""
    settings.DEBUG = False
    response = client.get("/api/v1/messaging/templates/0.02/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "未找到。", "code": "not_found"}
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
