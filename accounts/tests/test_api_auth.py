"""API tokens: login, authentication, refresh rotation, reuse revocation, logout, sessions."""
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import LoginLog, Role, SessionKind, UserRole, UserSession, UserStatus
from accounts.services import sessions as session_services
from accounts.tests.factories import UserFactory
from wework.testing.fixtures import enroll, totp_code

pytestmark = pytest.mark.django_db
UNIFORM = "Invalid or expired credentials."


@pytest.fixture
def api():
    return APIClient(REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT="pytest-api")


def _login(api, username, password="password", **extra):
    return api.post("/api/v1/auth/login", {"username": username, "password": password, **extra}, format="json")


def _auth(api, token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")


def _operator():
    user = UserFactory()
    UserRole.objects.create(user=user, role=Role.objects.get(name="operator"))
    return user


def test_login_returns_pair_and_stores_only_digests(api):
    user = _operator()
    response = _login(api, user.username, device_type="cli", device_id="laptop-1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["refresh_expires_in"] == 30 * 24 * 3600
    row = UserSession.objects.get(pk=body["session"])
    assert row.kind == SessionKind.API and row.device_id == "laptop-1" and row.user_agent == "pytest-api"
    assert row.ip_address == "192.0.2.10"
    assert body["access"] not in (row.access_token_hash, row.refresh_token_hash)
    assert len(row.access_token_hash) == 64 and body["access"].split(".")[2] not in row.access_token_hash
    assert timedelta(minutes=59) < row.access_expires_at - timezone.now() <= timedelta(hours=1)
    _auth(api, body["access"])
    assert api.get("/api/v1/instances/").status_code == 200
    assert LoginLog.objects.filter(username=user.username, success=True, channel="api").exists()


@pytest.mark.parametrize("password", ["wrong", ""])
def test_bad_credentials_are_uniform_401(api, password):
    user = UserFactory()
    wrong = _login(api, user.username, password or "x")
    unknown = _login(api, "nobody-here", "x")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": UNIFORM}


def test_malformed_body_is_400_not_500(api):
    assert api.post("/api/v1/auth/login", {"username": "x"}, format="json").status_code == 400
    assert api.post("/api/v1/auth/login", "not json", content_type="application/json").status_code == 400
    assert api.post("/api/v1/auth/refresh", {}, format="json").status_code == 400


@pytest.mark.parametrize(
    "token",
    ["garbage", "wwa.abc", "wwa.unknown.secret", "wwr.x.y", "wwa..", "wwa.a.b.c", "é" * 10, "wwa." + "x" * 300],
)
def test_tampered_tokens_get_uniform_401(api, token):
    user = _operator()
    good = _login(api, user.username).json()["access"]
    _prefix, sid, _secret = good.split(".")
    for candidate in (token, f"wwa.{sid}.{'A' * 43}"):
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {candidate}")
        response = api.get("/api/v1/instances/")
        assert response.status_code == 401
        assert response.json() == {"detail": UNIFORM}


def test_expired_access_token_401(api):
    user = _operator()
    access = _login(api, user.username).json()["access"]
    _auth(api, access)
    later = timezone.now() + timedelta(hours=1, seconds=1)
    with mock.patch("django.utils.timezone.now", return_value=later):
        assert api.get("/api/v1/instances/").status_code == 401


def test_disabled_user_token_401(api):
    user = _operator()
    access = _login(api, user.username).json()["access"]
    user.status = UserStatus.DISABLED
    user.save()
    _auth(api, access)
    assert api.get("/api/v1/instances/").status_code == 401


def test_refresh_rotates_and_old_refresh_dies(api):
    user = _operator()
    first = _login(api, user.username).json()
    second = api.post("/api/v1/auth/refresh", {"refresh": first["refresh"]}, format="json")
    assert second.status_code == 200
    second = second.json()
    assert second["refresh"] != first["refresh"] and second["access"] != first["access"]
    old, new = UserSession.objects.get(pk=first["session"]), UserSession.objects.get(pk=second["session"])
    assert old.family_id == new.family_id and old.rotated_at and not old.is_active and new.is_active
    _auth(api, first["access"])
    assert api.get("/api/v1/instances/").status_code == 401  # the rotated session's access is gone
    _auth(api, second["access"])
    assert api.get("/api/v1/instances/").status_code == 200


def test_refresh_reuse_revokes_the_whole_family(api):
    user = _operator()
    first = _login(api, user.username).json()
    second = api.post("/api/v1/auth/refresh", {"refresh": first["refresh"]}, format="json").json()
    third = api.post("/api/v1/auth/refresh", {"refresh": second["refresh"]}, format="json").json()
    # an attacker replays the first refresh token (outside the grace: not the latest's parent)
    replay = api.post("/api/v1/auth/refresh", {"refresh": first["refresh"]}, format="json")
    assert replay.status_code == 401 and replay.json() == {"detail": UNIFORM}
    family = UserSession.objects.filter(family_id=UserSession.objects.get(pk=first["session"]).family_id)
    assert family.count() == 3
    assert all(not s.is_active and s.revoked_at for s in family)
    assert set(family.values_list("revoke_reason", flat=True)) >= {"refresh_reuse"}
    _auth(api, third["access"])
    assert api.get("/api/v1/instances/").status_code == 401
    assert api.post("/api/v1/auth/refresh", {"refresh": third["refresh"]}, format="json").status_code == 401


def test_refresh_reuse_within_grace_of_latest_only_fails(api):
    user = _operator()
    first = _login(api, user.username).json()
    second = api.post("/api/v1/auth/refresh", {"refresh": first["refresh"]}, format="json").json()
    # the same client retried at once (race): refused, but the new session survives
    assert api.post("/api/v1/auth/refresh", {"refresh": first["refresh"]}, format="json").status_code == 401
    assert UserSession.objects.get(pk=second["session"]).is_active
    # after the grace window the same replay revokes the family
    later = timezone.now() + timedelta(seconds=10)
    with mock.patch("django.utils.timezone.now", return_value=later):
        assert api.post("/api/v1/auth/refresh", {"refresh": first["refresh"]}, format="json").status_code == 401
    assert not UserSession.objects.get(pk=second["session"]).is_active


def test_refresh_expired_after_30_days(api):
    user = _operator()
    first = _login(api, user.username).json()
    later = timezone.now() + timedelta(days=30, seconds=1)
    with mock.patch("django.utils.timezone.now", return_value=later):
        assert api.post("/api/v1/auth/refresh", {"refresh": first["refresh"]}, format="json").status_code == 401


def test_logout_revokes_family(api):
    user = _operator()
    pair = _login(api, user.username).json()
    _auth(api, pair["access"])
    assert api.post("/api/v1/auth/logout").status_code == 204
    assert api.get("/api/v1/instances/").status_code == 401
    api.credentials()
    assert api.post("/api/v1/auth/refresh", {"refresh": pair["refresh"]}, format="json").status_code == 401


def test_my_sessions_list_and_revoke(api):
    user = _operator()
    other = _operator()
    mine_a = _login(api, user.username).json()
    mine_b = _login(api, user.username).json()
    theirs = _login(api, other.username).json()
    _auth(api, mine_a["access"])
    listing = api.get("/api/v1/auth/sessions/").json()
    ids = {row["id"] for row in listing["results"]}
    assert ids == {mine_a["session"], mine_b["session"]}
    assert [r["current"] for r in listing["results"] if r["id"] == mine_a["session"]] == [True]
    assert api.delete(f"/api/v1/auth/sessions/{theirs['session']}/").status_code == 404
    assert api.delete(f"/api/v1/auth/sessions/{mine_b['session']}/").status_code == 204
    _auth(api, mine_b["access"])
    assert api.get("/api/v1/auth/sessions/").status_code == 401


def test_missing_session_answers_the_translated_404(api):
    user = _operator()
    _auth(api, _login(api, user.username).json()["access"])
    for pk in ("999999", "1180591620717411303424"):
        for lang, sentence in (("en", "No such session."), ("zh-hans", None)):
            answer = api.get(f"/api/v1/auth/sessions/{pk}/", HTTP_ACCEPT_LANGUAGE=lang)
            assert answer.status_code == 404
            detail = answer.json()["detail"]
            assert "UserSession" not in detail and "matches the given query" not in detail
            if sentence:
                assert detail == sentence
    gone = api.delete("/api/v1/auth/sessions/999999/", HTTP_ACCEPT_LANGUAGE="en")
    assert gone.status_code == 404 and gone.json()["detail"] == "No such session."


def test_login_with_otp_when_enrolled(api):
    user = _operator()
    device = enroll(user)
    assert _login(api, user.username).status_code == 401
    assert _login(api, user.username, otp="123456").status_code == 401
    assert _login(api, user.username, otp=totp_code(device)).status_code == 200


def test_super_admin_without_device_gets_no_token(api):
    user = UserFactory(is_superuser=True)
    assert _login(api, user.username).status_code == 401


def test_session_auth_without_otp_refused_for_super_admin():
    user = UserFactory(is_superuser=True)
    enroll(user)
    client = APIClient()
    client.force_login(user)
    response = client.get("/api/v1/instances/")
    assert response.status_code == 403


def test_login_throttled_per_ip(api, settings):
    settings.ACCESS_LOGIN_RATE_PER_IP = (3, 60)
    for i in range(3):
        assert _login(api, f"someone{i}", "x").status_code == 401
    assert _login(api, "someone-else", "x").status_code == 429


def test_login_throttled_per_username(api, settings):
    settings.ACCESS_LOGIN_RATE_PER_USERNAME = (2, 60)
    user = UserFactory()
    _login(api, user.username, "x")
    _login(api, user.username, "x")
    assert _login(api, user.username).status_code == 429
    other = APIClient(REMOTE_ADDR="192.0.2.99")
    assert _login(other, user.username).status_code == 429  # per username, from any address


def test_api_lockout(api):
    user = UserFactory()
    for _ in range(5):
        _login(api, user.username, "bad")
    user.refresh_from_db()
    assert user.status == UserStatus.LOCKED
    assert _login(api, user.username).status_code == 401


def test_unlock_via_api():
    admin = UserFactory(is_superuser=True)
    enroll(admin)
    locked = UserFactory(status=UserStatus.LOCKED, locked_until=timezone.now() + timedelta(minutes=5))
    _row, access, _refresh = session_services.issue_tokens(admin, None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert client.post(f"/api/v1/users/{locked.pk}/unlock/").status_code == 200
    locked.refresh_from_db()
    assert locked.status == UserStatus.ENABLED


def test_openapi_schema_has_bearer_scheme():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    schemes = schema["components"]["securitySchemes"]
    assert schemes["tokenAuth"] == {
        "type": "http", "scheme": "bearer", "description": mock.ANY,
    }


def test_query_counts_of_token_auth_and_permissions(django_assert_num_queries):
    from accounts.models import User

    user = _operator()
    _row, access, _refresh = session_services.issue_tokens(user, None)
    with django_assert_num_queries(1):  # session joined to its user
        authed, _session = session_services.authenticate_access(access)
    assert authed.pk == user.pk
    assert User.objects.get(pk=user.pk).has_perm("instances.view_weworkinstance")  # fills the cache
    fresh = User.objects.get(pk=user.pk)
    with django_assert_num_queries(0):  # resolved permissions come from the shared cache
        assert fresh.has_perm("instances.view_weworkinstance")
        assert not fresh.has_perm("accounts.manage_roles")
        from accounts.services.otp import requires_two_factor

        assert not requires_two_factor(fresh)


def test_users_api_protects_super_admins_and_self():
    from accounts.models import User

    manager = UserFactory()
    UserRole.objects.create(user=manager, role=Role.objects.get(name="operator"))
    from wework.testing.fixtures import role_with

    UserRole.objects.create(user=manager, role=role_with("user-admins", ["accounts.view_user", "accounts.change_user",
                                                                         "accounts.delete_user"]))
    boss = UserFactory(is_superuser=True)
    _row, access, _refresh = session_services.issue_tokens(manager, None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert client.patch(f"/api/v1/users/{boss.pk}/", {"status": 0}, format="json").status_code == 403
    assert client.patch(f"/api/v1/users/{manager.pk}/", {"status": 0}, format="json").status_code == 403
    other = UserFactory()
    assert client.patch(f"/api/v1/users/{other.pk}/", {"nickname": "ok"}, format="json").status_code == 200
    assert client.patch(f"/api/v1/users/{other.pk}/", {"status": 9}, format="json").status_code == 400
    assert client.get("/api/v1/users/999999/").status_code == 404
    assert User.objects.get(pk=boss.pk).status == UserStatus.ENABLED


@pytest.mark.parametrize("method", ["patch", "put"])
def test_blank_phone_is_stored_as_null_for_every_user(method):
    """Issue 12: a second user with phone "" hit the unique key on the empty string (500)."""
    from accounts.models import User
    from wework.testing.fixtures import role_with

    manager = UserFactory()
    UserRole.objects.create(user=manager, role=role_with("user-admins", ["accounts.view_user", "accounts.change_user"]))
    _row, access, _refresh = session_services.issue_tokens(manager, None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    first, second = UserFactory(), UserFactory()
    for user in (first, second):
        body = {"phone": ""}
        if method == "put":
            body.update(username=user.username, email=user.email)
        response = getattr(client, method)(f"/api/v1/users/{user.pk}/", body, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["phone"] is None
    assert list(User.objects.filter(pk__in=[first.pk, second.pk]).values_list("phone", flat=True)) == [None, None]
    # a phone another user has is a 400, not a 500
    User.objects.filter(pk=first.pk).update(phone="13800000000")
    taken = client.patch(f"/api/v1/users/{second.pk}/", {"phone": "13800000000"}, format="json")
    assert taken.status_code == 400 and "phone" in taken.json().get("error", {}).get("fields", taken.json())
