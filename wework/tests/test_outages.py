"""Answers while a service is away, and to hostile bodies (issue 12): JSON 503 with Retry-After
for API clients when Redis is down (as for the database), 400 for deeply nested JSON."""
import json

import pytest
from rest_framework.test import APIClient

from instances.models import InstanceEvent
from instances.tests.factories import WeworkInstanceFactory

DEEP = ("[" * 100_000 + "]" * 100_000).encode()
REDIS_DOWN = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": "redis://127.0.0.1:1/0"}}  # nothing listens on port 1


@pytest.mark.django_db
def test_redis_down_answers_json_503_with_retry_after_to_api_clients(settings):
    settings.CACHES = REDIS_DOWN
    response = APIClient().post("/api/v1/auth/login", {"username": "x", "password": "y"}, format="json")
    assert response.status_code == 503, response.content
    assert response["Retry-After"]
    assert response.json()["code"] == "cache_unavailable"


@pytest.mark.django_db
def test_redis_down_answers_a_503_page_to_browsers(settings, client):
    from django.core.cache import cache

    from wework.middleware import unavailable_response

    settings.CACHES = REDIS_DOWN
    with pytest.raises(Exception) as raised:
        cache.get("x")
    from django.test import RequestFactory

    from wework.middleware import server_error

    request = RequestFactory().get("/admin/", HTTP_ACCEPT="text/html")
    try:
        raise raised.value
    except Exception:  # noqa: BLE001 - handler500 reads the exception being handled
        response = server_error(request)
    assert response.status_code == 503 and response["Retry-After"]
    assert b"<h1>" in response.content
    assert unavailable_response(request, code="cache_unavailable").status_code == 503


@pytest.mark.django_db
def test_deeply_nested_json_is_a_400_for_the_api():
    response = APIClient().post("/api/v1/auth/login", data=DEEP, content_type="application/json")
    assert response.status_code == 400, response.content


@pytest.mark.django_db(transaction=True)
def test_deeply_nested_signed_webhook_is_a_400(client, platform_url):
    from instances import services
    from wework.testing.instances import SECRET, post_event

    instance = WeworkInstanceFactory()
    services.set_config(instance, services.WEBHOOK_SECRET_KEY, SECRET, encrypted=True, system=True)
    response = post_event(client, instance, None, raw=DEEP)
    assert response.status_code == 400, response.content
    assert json.loads(response.content)["error"]["code"] == "invalid_json"
    assert not InstanceEvent.objects.exists()
