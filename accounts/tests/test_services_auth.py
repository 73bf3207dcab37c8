"""Admin login: second factor, lockout and unlock, throttling, login history, browser sessions."""
from datetime import timedelta
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import LoginLog, LoginResult, SessionKind, User, UserSession, UserStatus
from accounts.tests.factories import UserFactory
from wework.testing.fixtures import enroll, login_verified, totp_code

pytestmark = pytest.mark.django_db
LOGIN = "admin:login"


def _post_login(client, username, password, code=""):
    return client.post(
        reverse(LOGIN),
        {"username": username, "password": password, "otp_token": code, "next": reverse("admin:index")},
        REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="pytest-browser",
    )


def test_password_hash_and_salt_columns():
    user = UserFactory(password="S3cure-enough-pass")
    assert user.password.count("$") >= 2 or user.password.startswith("md5$")
    assert user.salt and user.salt in user.password
    assert user.check_password("S3cure-enough-pass")


def test_login_without_device_records_success_and_browser_session(client):
    user = UserFactory()
    response = _post_login(client, user.username, "password")
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.last_login_ip == "10.1.2.3" and user.last_login is not None
    log = LoginLog.objects.get(username=user.username)
    assert log.success and log.result == LoginResult.SUCCESS and log.user_agent == "pytest-browser"
    row = UserSession.objects.get(user=user, kind=SessionKind.BROWSER)
    assert row.ip_address == "10.1.2.3" and row.location == "private network" and row.is_active
    assert client.session["wework_sid"] == row.session_id


def test_wrong_password_uniform_error_and_history(client):
    user = UserFactory()
    response = _post_login(client, user.username, "nope")
    unknown = _post_login(client, "ghost", "nope")
    assert response.status_code == unknown.status_code == 200
    assert response.context["form"].non_field_errors() == unknown.context["form"].non_field_errors()
    results = list(LoginLog.objects.order_by("id").values_list("username", "result"))
    assert results == [(user.username, "bad_credentials"), ("ghost", "bad_credentials")]


def test_lockout_after_five_failures_then_unlock(client):
    user = UserFactory()
    for _ in range(5):
        _post_login(client, user.username, "wrong")
    user.refresh_from_db()
    assert user.status == UserStatus.LOCKED and user.login_fail_count == 5
    assert user.locked_until is not None
    assert timedelta(minutes=14) < user.locked_until - timezone.now() <= timedelta(minutes=15)
    # the right password does not help while locked
    response = _post_login(client, user.username, "password")
    assert response.status_code == 200
    assert LoginLog.objects.filter(username=user.username).order_by("id").last().result == LoginResult.LOCKED
    assert not User.objects.get(pk=user.pk).is_active
    # after locked_until the password works again and resets everything
    later = user.locked_until + timedelta(seconds=1)
    with mock.patch("django.utils.timezone.now", return_value=later):
        response = _post_login(client, user.username, "password")
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.status == UserStatus.ENABLED and user.login_fail_count == 0 and user.locked_until is None


def test_success_resets_failure_count(client):
    user = UserFactory()
    for _ in range(3):
        _post_login(client, user.username, "wrong")
    assert User.objects.get(pk=user.pk).login_fail_count == 3
    assert _post_login(client, user.username, "password").status_code == 302
    assert User.objects.get(pk=user.pk).login_fail_count == 0


def test_admin_unlock_action(client):
    admin_user = UserFactory(is_superuser=True)
    login_verified(client, admin_user)
    locked = UserFactory(status=UserStatus.LOCKED, locked_until=timezone.now() + timedelta(minutes=10),
                         login_fail_count=5)
    changelist = client.get(reverse("admin:accounts_user_changelist"))
    assert changelist.status_code == 200
    response = client.post(reverse("admin:accounts_user_changelist"),
                           {"action": "unlock_users", "_selected_action": [locked.pk]})
    assert response.status_code == 302
    locked.refresh_from_db()
    assert locked.status == UserStatus.ENABLED and locked.login_fail_count == 0 and locked.locked_until is None


def test_login_throttled_per_username(client, settings):
    settings.ACCESS_LOGIN_RATE_PER_USERNAME = (3, 60)
    settings.ACCESS_LOCKOUT_THRESHOLD = 100
    user = UserFactory()
    for _ in range(3):
        _post_login(client, user.username, "wrong")
    response = _post_login(client, user.username, "password")
    assert response.status_code == 200
    assert "Too many" in str(response.context["form"].non_field_errors()) or LoginLog.objects.order_by("id").last().result == "throttled"
    assert LoginLog.objects.order_by("id").last().result == LoginResult.THROTTLED


def test_device_owner_needs_code(client):
    user = UserFactory()
    device = enroll(user)
    assert User.objects.get(pk=user.pk).two_factor_enabled
    assert _post_login(client, user.username, "password").status_code == 200  # no code
    assert _post_login(client, user.username, "password", "000000").status_code == 200
    assert LoginLog.objects.filter(result=LoginResult.BAD_OTP).count() == 2
    response = _post_login(client, user.username, "password", totp_code(device))
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_totp_code_cannot_be_replayed(client):
    user = UserFactory()
    device = enroll(user)
    code = totp_code(device)
    assert _post_login(client, user.username, "password", code).status_code == 302
    client.logout()
    assert _post_login(client, user.username, "password", code).status_code == 200


def test_backup_code_works_once(client):
    from accounts.services import otp as otp_services

    user = UserFactory()
    enroll(user)
    codes = otp_services.generate_backup_codes(user)
    assert _post_login(client, user.username, "password", codes[0]).status_code == 302
    client.logout()
    assert _post_login(client, user.username, "password", codes[0]).status_code == 200
    assert otp_services.backup_codes_left(user) == len(codes) - 1


def test_super_admin_without_device_is_sent_to_enrollment(client):
    user = UserFactory(is_superuser=True)
    response = _post_login(client, user.username, "password")
    assert response.status_code == 302
    index = client.get(reverse("admin:index"))
    assert index.status_code == 302 and reverse(LOGIN) in index["Location"]
    login_page = client.get(reverse(LOGIN))
    assert login_page.status_code == 302 and reverse("accounts:otp-setup") in login_page["Location"]


def test_flagged_role_requires_second_factor(client):
    from accounts.models import UserRole
    from wework.testing.fixtures import role_with

    user = UserFactory()
    UserRole.objects.create(user=user, role=role_with("sensitive", require_two_factor=True))
    client.force_login(user)
    assert client.get(reverse("admin:index")).status_code == 302
    login_verified(client, user)
    assert client.get(reverse("admin:index")).status_code == 200


def test_revoked_browser_session_logs_out(client):
    from accounts.services import sessions as session_services

    user = UserFactory()
    assert _post_login(client, user.username, "password").status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200
    row = UserSession.objects.get(user=user, kind=SessionKind.BROWSER)
    session_services.revoke(row)
    assert client.get(reverse("admin:index")).status_code == 302


def test_logout_ends_browser_session(client):
    user = UserFactory()
    _post_login(client, user.username, "password")
    client.post(reverse("admin:logout"))
    row = UserSession.objects.get(user=user, kind=SessionKind.BROWSER)
    assert not row.is_active and row.revoke_reason == "logout"


def test_login_history_visible_to_auditors_only(client):
    from accounts.models import Role, UserRole

    auditor = UserFactory()
    UserRole.objects.create(user=auditor, role=Role.objects.get(name="auditor"))
    outsider = UserFactory()
    UserFactory()
    _post_login(client, "ghost", "x")
    client.force_login(auditor)
    response = client.get(reverse("admin:accounts_loginlog_changelist"))
    assert response.status_code == 200 and b"ghost" in response.content
    client.force_login(outsider)
    assert client.get(reverse("admin:accounts_loginlog_changelist")).status_code == 403


def test_admin_sets_password_with_sudo_and_api_sessions_end(client):
    from accounts.services import sessions as session_services

    admin_user = UserFactory(is_superuser=True)
    device = enroll(admin_user)
    login_verified(client, admin_user)
    target = UserFactory()
    row, _access, _refresh = session_services.issue_tokens(target, None)
    url = reverse("admin:accounts_user_password", args=[target.pk])
    assert reverse("accounts:sudo") in client.get(url)["Location"]
    client.post(reverse("accounts:sudo"), {"code": totp_code(device)})
    assert client.get(url).status_code == 200
    response = client.post(url, {"password1": "Brand-new-passphrase-7", "password2": "Brand-new-passphrase-7"})
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.check_password("Brand-new-passphrase-7") and target.salt in target.password
    row.refresh_from_db()
    assert row.revoked_at is not None and row.revoke_reason == "password_changed"


def test_hash_upgrade_on_login_keeps_sessions_and_updates_salt(settings):
    from accounts.services import sessions as session_services

    user = UserFactory()
    row, _a, _r = session_services.issue_tokens(user, None)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher",
                                 "django.contrib.auth.hashers.MD5PasswordHasher"]
    fresh = User.objects.get(pk=user.pk)
    assert fresh.check_password("password")
    fresh = User.objects.get(pk=user.pk)
    assert fresh.password.startswith("pbkdf2_sha256$") and fresh.salt in fresh.password
    row.refresh_from_db()
    assert row.revoked_at is None
