"""The OpenAPI schema and Swagger UI: served offline, to logged-in users only."""
import pytest
from django.urls import reverse

from wework.testing.fixtures import login_verified


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["api-schema", "api-docs"])
def test_anonymous_users_get_no_schema(client, name):
    response = client.get(reverse(name))
    assert response.status_code in (401, 403)


@pytest.mark.django_db
def test_logged_in_administrator_gets_schema_and_offline_swagger_ui(client):
    from accounts.tests.factories import UserFactory

    admin = UserFactory(is_superuser=True)
    login_verified(client, admin)
    schema = client.get(reverse("api-schema"))
    assert schema.status_code == 200
    assert b"/api/v1/auth/login" in schema.content
    docs = client.get(reverse("api-docs"))
    assert docs.status_code == 200
    html = docs.content.decode()
    # Swagger UI comes from the sidecar's static files, not from a CDN.
    assert "drf_spectacular_sidecar/swagger-ui-dist" in html
    assert "cdn." not in html and "unpkg" not in html


@pytest.mark.django_db
def test_a_browser_without_a_session_is_led_to_the_login_and_back(client):
    response = client.get(reverse("api-docs"), HTTP_ACCEPT="text/html,application/xhtml+xml")
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={reverse('api-docs')}"
