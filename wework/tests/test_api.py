"""API input handling (QA F14): the login's `otp_token` alias, a parse error for a malformed JSON
body, 400 for filters a list cannot apply, and one API root."""
import pytest
from django.urls import get_resolver
from rest_framework.test import APIClient

from accounts.models import Role, UserRole
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(verified_admin_client):
    return verified_admin_client


# --- login ----------------------------------------------------------------------------------------
def test_login_accepts_otp_token_as_otp(otp):
    user = UserFactory()
    UserRole.objects.create(user=user, role=Role.objects.get(name="operator"))
    device = otp.enroll(user)
    api = APIClient()
    body = {"username": user.username, "password": "password"}
    assert api.post("/api/v1/auth/login", {**body, "otp_token": "123456"}, format="json").status_code == 401
    r = api.post("/api/v1/auth/login", {**body, "otp_token": otp.code(device)}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["token_type"] == "Bearer"


def test_malformed_json_is_a_parse_error():
    api = APIClient()
    r = api.post("/api/v1/auth/login", '{"username": "x", "password": ', content_type="application/json")
    assert r.status_code == 400
    body = r.json()
    assert "parse error" in body["detail"].lower() and "username" not in body and "password" not in body
    r = api.post("/api/v1/auth/login", "[1, 2]", content_type="application/json")
    assert r.status_code == 400  # valid JSON, not an object: the serializer says so


def test_malformed_json_on_an_authenticated_endpoint(root):
    r = root.post("/api/v1/messaging/tasks/", "{oops", content_type="application/json")
    assert r.status_code == 400 and "parse error" in r.json()["detail"].lower()


# --- filters --------------------------------------------------------------------------------------
@pytest.mark.parametrize("url, param", [
    ("/api/v1/messaging/messages/?created_after=notadate", "created_after"),
    ("/api/v1/messaging/tasks/?created_after=notadate", "created_after"),
    ("/api/v1/instances/?heartbeat_after=yesterday", "heartbeat_after"),
    ("/api/v1/instances/?status=99", "status"),
    ("/api/v1/monitoring/alerts/?open=maybe", "open"),
    ("/api/v1/monitoring/alert-rules/?is_enabled=perhaps", "is_enabled"),
    ("/api/v1/wework-accounts/?is_logged_in=sometimes", "is_logged_in"),
    ("/api/v1/monitoring/audit-logs/?since=last-week", "since"),
])
def test_invalid_filter_values_are_400_with_the_field_message(root, url, param):
    r = root.get(url)
    assert r.status_code == 400, (url, r.status_code, r.content[:200])
    assert list(r.json()) == [param] and r.json()[param][0]


@pytest.mark.parametrize("url, param", [
    ("/api/v1/messaging/messages/?sent_after=2026-01-01", "sent_after"),
    ("/api/v1/instances/?nmae=sim", "nmae"),
    ("/api/v1/messaging/templates/?catgory=x", "catgory"),
    ("/api/v1/roles/?colour=blue", "colour"),
])
def test_unknown_filters_are_400_and_name_the_known_ones(root, url, param):
    r = root.get(url)
    assert r.status_code == 400, (url, r.status_code, r.content[:200])
    assert list(r.json()) == [param]


def test_valid_filters_search_ordering_and_paging_still_work(root):
    for url in (
        "/api/v1/instances/?status=1&name=x&search=x&ordering=-id&limit=10&format=json",
        "/api/v1/messaging/tasks/?created_after=2026-01-01T00:00:00Z&status=0&ordering=id",
        "/api/v1/messaging/messages/?created_after=2026-01-01T00:00:00Z&month=202611&limit=5",
        "/api/v1/monitoring/alerts/?open=true",
        "/api/v1/monitoring/alert-rules/?is_enabled=false",
        "/api/v1/wework-accounts/?is_logged_in=&q=",
        "/api/v1/monitoring/audit-logs/?since=2026-01-01T00:00:00Z",
    ):
        r = root.get(url)
        assert r.status_code == 200, (url, r.content[:300])
    # detail views and actions are not lists: their query string is not checked for filters
    assert root.get("/api/v1/instances/999999/?anything=1").status_code == 404


# --- API root --------------------------------------------------------------------------------------
def test_api_root_registered_once_and_lists_every_app(root):
    roots = []

    def walk(resolver, prefix=""):
        for p in resolver.url_patterns:
            if hasattr(p, "url_patterns"):
                walk(p, prefix + str(p.pattern))
            elif getattr(p, "name", None) == "api-root":
                roots.append(prefix + str(p.pattern))

    walk(get_resolver())
    assert roots == ["api/v1/"]
    r = root.get("/api/v1/", HTTP_ACCEPT="application/json")
    assert r.status_code == 200
    listed = r.json()
    for prefix in ("instances", "contacts", "messaging/tasks", "monitoring/alerts", "users"):
        assert prefix in listed, prefix


@pytest.mark.parametrize("url", [
    "/api/v1/instances/?ordering=nonexistent",
    "/api/v1/messaging/tasks/?ordering=id,-bogus",
    "/api/v1/monitoring/alerts/?ordering=password",
])
def test_unknown_ordering_fields_are_400(root, url):
    r = root.get(url)
    assert r.status_code == 400, (url, r.status_code, r.content[:200])
    assert list(r.json()) == ["ordering"] and "It accepts" in r.json()["ordering"][0]


# --- bodies the parser refuses --------------------------------------------------------------------
TOO_BIG = 2 ** 70  # beyond a signed BIGINT: SQLite cannot even bind it (OverflowError)


@pytest.fixture
def token_api(super_admin, api_client_for):
    return api_client_for(super_admin)


@pytest.mark.parametrize("path, body, where", [
    ("/api/v1/auth/login", '{"username": "\\ud800", "password": "\\ud800"}', "$.username"),
    ("/api/v1/messaging/tasks/", '{"account": 1, "content": "hi \\ud800"}', "$.content"),
    ("/api/v1/messaging/tasks/", '{"account": 1, "template_variables": {"name": "\\uDFFF"}}',
     "$.template_variables.name"),
    ("/api/v1/messaging/tasks/", '{"account": 1, "receivers": [{"wxid": "a", "variables": {"\\udc00": "v"}}]}',
     "$.receivers[0].variables (a key)"),
    ("/api/v1/messaging/templates/", '{"name": "t", "tags": ["ok", "\\ud83d"]}', "$.tags[1]"),
    ("/api/v1/monitoring/alert-rules/", '{"name": "r", "notify_channels": ["\\ud800x"]}', "$.notify_channels[0]"),
])
def test_an_unpaired_surrogate_anywhere_in_a_json_body_is_a_parse_error(token_api, path, body, where):
    """`"\\ud800"` is valid JSON but no character: saved, it made every list showing the row a 500
    (the renderer cannot encode it). The parser refuses it, key or value, at any depth."""
    r = token_api.post(path, body, content_type="application/json")
    assert r.status_code == 400, (path, r.status_code, r.content[:300])
    detail = r.json()["detail"]
    assert "parse error" in detail.lower() and "surrogate" in detail and where in detail, detail


def test_a_paired_surrogate_escape_is_a_character_and_accepted():
    r = APIClient().post("/api/v1/auth/login", '{"username": "\\ud83d\\ude00", "password": "x"}',
                         content_type="application/json")
    assert r.status_code == 401, r.content  # parsed (an emoji), then an ordinary failed login


def test_the_parser_walks_the_data_only_when_the_body_has_a_surrogate_escape():
    from unittest import mock

    from wework.api import parsers

    with mock.patch.object(parsers, "lone_surrogate_path", wraps=parsers.lone_surrogate_path) as walk:
        assert parsers.surrogate_message(b'{"a": ["\\u00e9", "\xc3\xa9", "\\ue000"]}', {"a": ["x"]}) is None
        assert not walk.called
        assert parsers.surrogate_message(b'{"a": "\\ud83d\\ude00"}', {"a": "\U0001F600"}) is None
        assert walk.call_count == 1
    # an encoding where "\u" is not ASCII bytes: always walked
    assert parsers.surrogate_message('{"a": "\ud800"}'.encode("utf-16", "surrogatepass"), {"a": "\ud800"},
                                     "utf-16")


# --- bodies over the upload limit -----------------------------------------------------------------
def test_a_body_over_the_upload_limit_is_a_json_413_naming_the_limit(token_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.DEBUG = True  # not Django's HTML page either
    r = token_api.post("/api/v1/messaging/tasks/", {"account": 1, "content": "x" * 2000}, format="json")
    assert r.status_code == 413, r.content[:300]
    body = r.json()
    assert body["code"] == "too_large" and "1000" in body["detail"].replace("\xa0", " ")


def test_the_upload_limit_takes_a_task_with_the_most_receivers_allowed(settings):
    """MAX_RECEIVERS_PER_TASK receivers, each with a name and a variable, fit in one body."""
    import json

    from messaging.services.receivers import max_receivers

    receivers = [{"wxid": f"wxid_{n:020d}", "type": "contact", "name": f"customer {n:08d}",
                  "variables": {"name": f"customer {n:08d}"}} for n in range(max_receivers())]
    body = json.dumps({"account": 1, "content": "hello {name}", "receivers": receivers}).encode()
    assert len(body) < settings.DATA_UPLOAD_MAX_MEMORY_SIZE


# --- tampered cursors -----------------------------------------------------------------------------
def _cursor(position):
    import base64

    return base64.b64encode(f"p={position}".encode()).decode()


@pytest.mark.parametrize("url", [
    "/api/v1/users/", "/api/v1/messaging/tasks/", "/api/v1/monitoring/audit-logs/", "/api/v1/scrm/tags/",
])
@pytest.mark.parametrize("query", [
    "cursor=abc",  # not base64: DRF's own answer
    f"cursor={_cursor('abc')}",  # an id that is no number
    f"cursor={_cursor(TOO_BIG)}",  # an id beyond a BIGINT
    f"cursor={_cursor('1e3')}",
])
def test_every_tampered_cursor_is_the_same_invalid_cursor_answer(token_api, url, query):
    r = token_api.get(f"{url}?{query}")
    assert r.status_code == 404, (url, query, r.status_code, r.content[:300])
    assert r.json()["detail"] == "Invalid cursor"


@pytest.mark.parametrize("position", ["9999-12-31 23:59:59-12:00", "0001-01-01 00:00:00+14:00",
                                      "0001-01-01 00:00:00", "yesterday"])
def test_a_tampered_time_cursor_is_an_invalid_cursor(token_api, position):
    r = token_api.get(f"/api/v1/users/?ordering=-created_at&cursor={_cursor(position)}")
    assert r.status_code == 404 and r.json()["detail"] == "Invalid cursor", r.content[:300]


def test_a_cursor_from_a_page_still_pages(token_api):
    UserFactory.create_batch(3)
    for ordering in ("-id", "-created_at"):
        page = token_api.get(f"/api/v1/users/?limit=2&ordering={ordering}").json()
        second = token_api.get(page["next"])
        assert second.status_code == 200 and second.json()["results"], (ordering, second.content[:300])


# --- filter values the database cannot take ------------------------------------------------------
@pytest.mark.parametrize("url, param", [
    ("/api/v1/messaging/tasks/?created_after=0001-01-01T00:00:00%2B14:00", "created_after"),
    ("/api/v1/messaging/tasks/?created_before=9999-12-31T23:59:59-12:00", "created_before"),
    ("/api/v1/messaging/messages/?created_before=9999-12-31T23:59:59-12:00", "created_before"),
    ("/api/v1/instances/?heartbeat_after=9999-12-31T23:59:59-12:00", "heartbeat_after"),
    ("/api/v1/users/?since=0001-01-01T00:00:00%2B14:00", "since"),
    ("/api/v1/users/?last_login_since=0001-01-01T00:00:00", "last_login_since"),
    ("/api/v1/login-logs/?until=9999-12-31T23:59:59-12:00", "until"),
    ("/api/v1/monitoring/audit-logs/?since=9999-12-31T23:59:59-12:00", "since"),
    ("/api/v1/monitoring/alerts/?until=0001-01-01T00:00:00%2B14:00", "until"),
    ("/api/v1/monitoring/alert-rules/?since=9999-12-31T23:59:59-12:00", "since"),
    ("/api/v1/permissions/?since=9999-12-31T23:59:59-12:00", "since"),
    ("/api/v1/roles/?until=9999-12-31T23:59:59-12:00", "until"),
    ("/api/v1/role-grants/?expires_before=9999-12-31T23:59:59-12:00", "expires_before"),
    ("/api/v1/scrm/tags/?created_after=9999-12-31T23:59:59-12:00", "created_after"),
    ("/api/v1/scrm/opt-outs/?opted_out_after=9999-12-31T23:59:59-12:00", "opted_out_after"),
])
def test_a_time_whose_utc_value_is_out_of_range_is_a_field_error(token_api, url, param):
    r = token_api.get(url)
    assert r.status_code == 400, (url, r.status_code, r.content[:300])
    assert r.json() == {param: ["Datetime value out of range."]}


def test_times_at_the_edge_but_in_range_still_filter(token_api):
    for url in ("/api/v1/messaging/tasks/?created_after=0001-01-01T00:00:00Z",
                "/api/v1/messaging/tasks/?created_before=9999-12-31T23:59:59Z",
                "/api/v1/users/?since=0001-01-01T12:00:00%2B08:00"):
        assert token_api.get(url).status_code == 200, url


@pytest.mark.parametrize("url, param", [
    (f"/api/v1/messaging/tasks/?account={TOO_BIG}", "account"),
    (f"/api/v1/messaging/messages/?account={TOO_BIG}", "account"),
    (f"/api/v1/messaging/receivers/?task={TOO_BIG}", "task"),
    (f"/api/v1/group-members/?instance=1&group={TOO_BIG}", "group"),
    (f"/api/v1/group-members/?instance={TOO_BIG}", "instance"),
    (f"/api/v1/instance-monitors/?instance={TOO_BIG}", "instance"),
    (f"/api/v1/instance-grants/?user={TOO_BIG}", "user"),
    (f"/api/v1/instance-grants/?instance={TOO_BIG}", "instance"),
    (f"/api/v1/role-grants/?user={TOO_BIG}", "user"),  # a foreign key's model choice
    (f"/api/v1/login-logs/?user=-{TOO_BIG}", "user"),
    (f"/api/v1/contacts/?instance=1&account={TOO_BIG}", "account"),
])
def test_an_id_beyond_a_bigint_in_a_filter_is_an_invalid_choice(token_api, url, param):
    r = token_api.get(url)
    assert r.status_code == 400, (url, r.status_code, r.content[:300])
    assert r.json() == {param: ["Select a valid choice. That choice is not one of the available choices."]}


def test_a_count_beyond_a_bigint_in_a_filter_is_a_field_error(token_api):
    r = token_api.get(f"/api/v1/groups/?instance=1&min_members={TOO_BIG}")
    assert r.status_code == 400 and list(r.json()) == ["min_members"], r.content[:300]


@pytest.mark.parametrize("path, body, field", [
    ("/api/v1/messaging/tasks/", {"account": TOO_BIG, "content": "x", "receivers": ["a"]}, "account"),
    ("/api/v1/messaging/tasks/", {"account": 1, "template": TOO_BIG, "receivers": ["a"]}, "template"),
    ("/api/v1/scrm/tag-rules/", {"name": "r", "kind": 1, "tag": TOO_BIG}, "tag"),
])
def test_an_id_beyond_a_bigint_in_a_body_is_an_unknown_row(token_api, path, body, field):
    r = token_api.post(path, body, format="json")
    assert r.status_code == 400, (path, r.status_code, r.content[:300])
    assert r.json()[field] == [f'Invalid pk "{TOO_BIG}" - object does not exist.'], r.content[:300]


def test_an_id_beyond_a_bigint_in_a_grant_is_an_unknown_row(root):
    """Grants need sudo mode (the session client): a foreign key and an explicit related field."""
    unknown = [f'Invalid pk "{TOO_BIG}" - object does not exist.']
    r = root.post("/api/v1/role-grants/", {"user": TOO_BIG, "role": 1}, content_type="application/json")
    assert r.status_code == 400 and r.json()["user"] == unknown, r.content[:300]
    r = root.post("/api/v1/instance-grants/", {"user": TOO_BIG, "instance": TOO_BIG, "permissions": ["x"]},
                  content_type="application/json")
    assert r.status_code == 400 and r.json()["user"] == r.json()["instance"] == unknown, r.content[:300]


def test_every_list_filters_and_serializes_through_the_platform_bases():
    """The checks above hold for lists added later: their FilterSets and model serializers derive
    from the platform's bases, and no filter is django-filter's unchecked time or number filter."""
    import django_filters
    from rest_framework import serializers

    from wework.api.filters import PlatformFilterSet
    from wework.api.serializers import ModelSerializer
    from wework.api.urls import _modules

    unchecked = {django_filters.DateTimeFilter, django_filters.IsoDateTimeFilter, django_filters.NumberFilter,
                 django_filters.ModelChoiceFilter, django_filters.ModelMultipleChoiceFilter}
    seen = 0
    for module in _modules:
        for _prefix, viewset, basename in module.router.registry:
            filterset = getattr(viewset, "filterset_class", None)
            if filterset is not None:
                seen += 1
                assert issubclass(filterset, PlatformFilterSet), (basename, filterset)
                plain = [name for name, f in filterset.base_filters.items() if type(f) in unchecked]
                assert not plain, (basename, plain)
            serializer = getattr(viewset, "serializer_class", None)
            if serializer is not None and issubclass(serializer, serializers.ModelSerializer):
                assert issubclass(serializer, ModelSerializer), (basename, serializer)
    assert seen >= 20, seen


@pytest.mark.parametrize("url", ["/api/v1/instances/", "/api/v1/monitoring/audit-logs/"])
def test_a_null_character_in_a_search_is_a_field_error_named_search(token_api, url):
    # the second list is a large table (indexed search), the first an ordinary one
    response = token_api.get(url, {"search": "a\x00b"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 400, response.content
    assert response.json() == {"search": ["不允许包含空字符（NUL）。"]}  # not Django's 不允许是用空字符串


@pytest.mark.parametrize("query, field", [
    ({"limit": "-3"}, "limit"), ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"),
    ({"limit": "²"}, "limit"), ({"before": "-1"}, "before"), ({"account": "1180591620717411303424"}, "account"),
])
def test_inbox_parameters_out_of_range_are_field_errors(token_api, query, field):
    response = token_api.get("/api/v1/messaging/conversations/inbox/", query)
    assert response.status_code == 400, response.content
    assert field in response.json()
