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


def test_the_web_process_gives_statements_a_time_limit_and_workers_none(monkeypatch):
    """A request gunicorn gave up on must not leave its query running (12 orphaned queries up
    to 170 s old were seen): the web process sets max_statement_time per connection."""
    import importlib

    import wework.settings as product_settings

    monkeypatch.setenv("DATABASE_URL", "mysql://root@127.0.0.1:3306/x")
    monkeypatch.delenv("DATABASE_STATEMENT_TIMEOUT_S", raising=False)
    monkeypatch.setenv("WEWORK_PROCESS", "web")
    web = importlib.reload(product_settings)
    assert "max_statement_time=25" in web.DATABASES["default"]["OPTIONS"]["init_command"]
    monkeypatch.setenv("WEWORK_PROCESS", "worker")
    worker = importlib.reload(product_settings)
    assert "max_statement_time" not in worker.DATABASES["default"]["OPTIONS"]["init_command"]
    monkeypatch.undo()
    importlib.reload(product_settings)


@pytest.mark.mysql
@pytest.mark.django_db
def test_a_statement_stopped_at_the_time_limit_is_a_503_never_a_500(rf):
    from django.db import DatabaseError, connection

    from wework import outages
    from wework.api.exceptions import exception_handler
    from wework.db import errors as db_errors

    if connection.vendor != "mysql":
        pytest.skip("max_statement_time is MariaDB's")
    with pytest.raises(DatabaseError) as raised, connection.cursor() as cursor:
        cursor.execute("SET STATEMENT max_statement_time=0.05 FOR SELECT COUNT(*) FROM information_schema.columns a, "
                       "information_schema.columns b, information_schema.columns c")
    assert db_errors.is_statement_timeout(raised.value)
    assert not db_errors.is_unavailable(raised.value)  # never retried as an outage
    assert outages.outage_code(raised.value) == outages.STATEMENT_TIMEOUT
    response = exception_handler(raised.value, {"request": rf.get("/api/v1/users/")})
    assert response.status_code == 503 and response["Retry-After"]
