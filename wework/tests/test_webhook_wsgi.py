"""The lean webhook route (wework/webhook_wsgi.py) answers exactly as the Django view does."""
import json
import time
from unittest import mock

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory

from instances import protocol
from instances.models import EventState, InstanceEvent
from instances.services import intake
from wework.testing.instances import SECRET, heartbeat_data, make_event
from wework.webhook_wsgi import wrap

pytestmark = pytest.mark.django_db(transaction=True)

UNKNOWN = "00000000-0000-7000-8000-000000000000"
SAME_HEADERS = ("Content-Type", "X-Frame-Options", "X-Content-Type-Options", "Allow")


@pytest.fixture
def instance(signed_instance):
    return signed_instance


@pytest.fixture(params=["django", "lean"])
def app(request):
    django_app = WSGIHandler()
    return django_app if request.param == "django" else wrap(django_app)


def call(app, method, path, body=b"", headers=None):
    """(status, headers, body) of one request through the WSGI application."""
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in (headers or {}).items()
             if k.lower() != "content-type"}
    environ = RequestFactory().generic(method, path, data=body,
                                       content_type="application/json", **extra).environ
    seen = {}

    def start_response(status, response_headers, exc_info=None):
        seen["status"] = int(status.split()[0])
        seen["headers"] = dict(response_headers)

    content = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], content


def signed(instance, event=None, *, raw=None, secret=SECRET, timestamp=None):
    body = raw if raw is not None else json.dumps(event).encode()
    headers = protocol.signature_headers(body, secret, timestamp=timestamp,
                                         event_id=(event or {}).get("event_id"))
    return body, headers


def url(instance_uuid):
    return f"/api/v1/instances/{instance_uuid}/events"


def cases(instance):
    good = make_event(instance, "instance.heartbeat", heartbeat_data(), seq=1)
    body, headers = signed(instance, good)
    bad_sig = dict(headers, **{"X-Signature": "sha256=" + "0" * 64})
    stale_body, stale = signed(instance, good, timestamp=time.time() - 3600)
    invalid = make_event(instance, "instance.heartbeat", {"uptime_s": "soon"}, seq=2)
    return {
        "accepted": ("POST", url(instance.instance_uuid), body, headers, 202),
        "duplicate": ("POST", url(instance.instance_uuid), body, headers, 200),
        "unsigned": ("POST", url(instance.instance_uuid), body, {}, 401),
        "bad_signature": ("POST", url(instance.instance_uuid), body, bad_sig, 401),
        "stale": ("POST", url(instance.instance_uuid), stale_body, stale, 401),
        "bad_json": ("POST", url(instance.instance_uuid), *signed(instance, raw=b"{no"), 400),
        "invalid_event": ("POST", url(instance.instance_uuid), *signed(instance, invalid), 400),
        "unknown_instance": ("POST", url(UNKNOWN), body, headers, 404),
        "wrong_method": ("GET", url(instance.instance_uuid), b"", {}, 405),
    }


def test_every_answer_is_the_django_views(instance, app):
    """Same status, JSON body and headers on both routes; a 2xx is a stored row."""
    django_app = WSGIHandler()
    for name, (method, path, body, headers, expected) in cases(instance).items():
        if name == "accepted":  # the lean route stores; the Django route then sees a duplicate
            status, got_headers, content = call(app, method, path, body, headers)
            assert status == 202, content
            assert InstanceEvent.objects.filter(
                event_id=json.loads(body)["event_id"]).exists()
            continue
        status, got_headers, content = call(app, method, path, body, headers)
        ref_status, ref_headers, ref_content = call(django_app, method, path, body, headers)
        assert status == ref_status == expected, (name, content)
        assert content == ref_content, name
        for header in SAME_HEADERS:
            assert got_headers.get(header) == ref_headers.get(header), (name, header)
        assert got_headers["X-Request-ID"]
    assert InstanceEvent.objects.count() == 1


def test_too_large_is_413_on_both(instance, app, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    event = make_event(instance, "instance.heartbeat", heartbeat_data(client_version="x" * 2000),
                       seq=1)
    status, _h, content = call(app, "POST", url(instance.instance_uuid), *signed(instance, event))
    assert status == 413
    assert json.loads(content)["error"]["code"] == "too_large"
    assert not InstanceEvent.objects.exists()


def test_a_storage_failure_is_a_json_503_on_both(instance, app):
    event = make_event(instance, "instance.heartbeat", heartbeat_data(), seq=1)
    with mock.patch.object(intake, "store_event", side_effect=RuntimeError("db down")):
        status, _h, content = call(app, "POST", url(instance.instance_uuid),
                                   *signed(instance, event))
    assert status == 503
    assert json.loads(content)["error"]["code"] == "internal"
    assert not InstanceEvent.objects.exists()


def test_the_lean_route_is_only_the_webhook_path(instance):
    django_app = mock.Mock(side_effect=WSGIHandler())
    app = wrap(django_app)
    event = make_event(instance, "instance.heartbeat", heartbeat_data(), seq=1)
    assert call(app, "POST", url(instance.instance_uuid), *signed(instance, event))[0] == 202
    assert django_app.call_count == 0
    # An upper-case UUID does not match the <uuid:> converter: Django answers (404) as before.
    status, _h, _c = call(app, "POST", url(str(instance.instance_uuid).upper()), b"{}")
    assert status == 404 and django_app.call_count == 1
    assert InstanceEvent.objects.get(event_id=event["event_id"]).state == EventState.DONE


def test_the_lean_route_leaves_an_access_record(instance, caplog):
    app = wrap(WSGIHandler())
    event = make_event(instance, "instance.heartbeat", heartbeat_data(), seq=1)
    with caplog.at_level("INFO", logger="wework.request"):
        status, headers, _c = call(app, "POST", url(instance.instance_uuid),
                                   *signed(instance, event))
    assert status == 202
    records = [r for r in caplog.records if r.name == "wework.request"]
    assert records and records[-1].response_code == 202
    assert headers["X-Request-ID"]
