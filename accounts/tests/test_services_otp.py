"""Two-factor enrollment (QR page), encrypted secrets, backup codes, sudo mode, commands."""
from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone, translation
from django_otp.oath import TOTP

from accounts.models import EncryptedTOTPDevice, Role, User, UserRole
from accounts.services import otp as otp_services
from accounts.tests.factories import UserFactory
from wework.testing.fixtures import enroll, login_verified, totp_code
from instances.tests.factories import WeworkInstanceFactory

pytestmark = pytest.mark.django_db


def test_enrollment_page_shows_inline_svg_qr_and_confirms(client):
    user = UserFactory()
    client.force_login(user)
    page = client.get(reverse("accounts:otp-setup"))
    assert page.status_code == 200
    assert b"<svg" in page.content and b"otpauth" not in page.content.split(b"<svg")[0][-50:]
    device = EncryptedTOTPDevice.objects.get(user=user, confirmed=False)
    assert not User.objects.get(pk=user.pk).two_factor_enabled
    wrong = client.post(reverse("accounts:otp-setup"), {"code": "000000"})
    assert wrong.status_code == 200 and not EncryptedTOTPDevice.objects.get(pk=device.pk).confirmed
    done = client.post(reverse("accounts:otp-setup"), {"code": totp_code(device)})
    assert done.status_code == 200
    assert len(done.context["codes"]) == 10  # backup codes shown once
    assert EncryptedTOTPDevice.objects.get(pk=device.pk).confirmed
    assert User.objects.get(pk=user.pk).two_factor_enabled
    assert client.get(reverse("admin:index")).status_code == 200  # verified in this session


def test_totp_secret_is_encrypted_at_rest():
    user = UserFactory()
    device = enroll(user)
    with connection.cursor() as cursor:
        cursor.execute("SELECT `key` FROM otp_totp_devices WHERE id = %s" if connection.vendor == "mysql"
                       else 'SELECT "key" FROM otp_totp_devices WHERE id = %s', [device.pk])
        stored = cursor.fetchone()[0]
    assert stored != device.key and device.key not in stored and stored.startswith("gAAAA")
    assert User.objects.get(pk=user.pk).two_factor_secret is None


def test_second_device_needs_sudo(client):
    user = UserFactory()
    enroll(user)
    login_verified(client, user)
    response = client.get(reverse("accounts:otp-setup"))
    assert response.status_code == 302 and reverse("accounts:sudo") in response["Location"]


def test_sudo_page_and_window(client):
    user = UserFactory()
    device = enroll(user)
    login_verified(client, user)
    assert client.post(reverse("accounts:sudo"), {"code": "000000"}).status_code == 200
    response = client.post(reverse("accounts:sudo"), {"code": totp_code(device), "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get(reverse("accounts:otp-setup")).status_code == 200  # now in sudo mode
    later = otp_services.time.time() + otp_services.sudo_seconds() + 1
    with mock.patch.object(otp_services.time, "time", return_value=later):
        assert client.get(reverse("accounts:otp-setup")).status_code == 302


def test_sudo_redirects_unsafe_next(client):
    user = UserFactory()
    device = enroll(user)
    login_verified(client, user)
    response = client.post(reverse("accounts:sudo"), {"code": totp_code(device), "next": "https://evil.example/"})
    assert response["Location"] == reverse("admin:index")


def test_granting_roles_in_admin_needs_sudo(client):
    manager = UserFactory(is_superuser=True)
    device = enroll(manager)
    login_verified(client, manager)
    client.session.pop(otp_services.SUDO_SESSION_KEY, None)
    target = UserFactory()
    role = Role.objects.get(name="operator")
    url = reverse("admin:accounts_userrole_add")
    response = client.post(url, {"user": target.pk, "role": role.pk})
    assert response.status_code == 302 and reverse("accounts:sudo") in response["Location"]
    assert not UserRole.objects.filter(user=target).exists()
    client.post(reverse("accounts:sudo"), {"code": totp_code(device)})
    response = client.post(url, {"user": target.pk, "role": role.pk})
    assert response.status_code == 302
    grant = UserRole.objects.get(user=target, role=role)
    assert grant.granted_by_id == manager.pk


def test_api_grant_needs_otp_header():
    from rest_framework.test import APIClient

    from accounts.services import sessions as session_services

    admin_user = UserFactory(is_superuser=True)
    device = enroll(admin_user)
    _row, access, _refresh = session_services.issue_tokens(admin_user, None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    target = UserFactory()
    role = Role.objects.get(name="auditor")
    assert client.post("/api/v1/role-grants/", {"user": target.pk, "role": role.pk}).status_code == 403
    response = client.post("/api/v1/role-grants/", {"user": target.pk, "role": role.pk},
                           HTTP_X_OTP_CODE=totp_code(device))
    assert response.status_code == 201, response.content
    assert UserRole.objects.filter(user=target, role=role, granted_by=admin_user).exists()
    # bad input: a date in the past is a 400 with a field message, not a 500
    response = client.post("/api/v1/role-grants/", {"user": target.pk, "role": role.pk,
                                                    "expires_at": "2000-01-01T00:00:00Z"},
                           HTTP_X_OTP_CODE=totp_code(device))
    assert response.status_code == 400 and "expires_at" in response.json()


def test_sudo_decorator_for_other_apps(rf):
    from django.contrib.sessions.backends.cache import SessionStore

    from accounts.decorators import sudo_required

    @sudo_required
    def drop_shard(request):
        from django.http import HttpResponse

        return HttpResponse("dropped")

    user = UserFactory()
    request = rf.post("/drop")
    request.user = user
    request.session = SessionStore()
    assert drop_shard(request).status_code == 302
    otp_services.mark_sudo(request)
    assert drop_shard(request).content == b"dropped"


def test_create_super_admin_command_is_idempotent():
    out = StringIO()
    call_command("create_super_admin", "--username", "root", "--email", "root@example.com",
                 "--password", "A-long-enough-passphrase-42", "--no-input", stdout=out)
    text = out.getvalue()
    assert "otpauth://totp/" in text and "Backup codes" in text
    user = User.objects.get(username="root")
    assert user.is_superuser and user.two_factor_enabled and user.check_password("A-long-enough-passphrase-42")
    assert UserRole.objects.filter(user=user, role__name="super_admin").exists()
    out = StringIO()
    call_command("create_super_admin", "--username", "root", "--email", "root@example.com",
                 "--password", "Another-passphrase-43", "--no-input", stdout=out)
    assert "otpauth" not in out.getvalue()
    user.refresh_from_db()
    assert user.check_password("A-long-enough-passphrase-42")  # not reset without --reset-password
    assert EncryptedTOTPDevice.objects.filter(user=user).count() == 1


def test_create_super_admin_generates_password_and_rejects_bad_input():
    out = StringIO()
    call_command("create_super_admin", "--username", "auto", "--email", "auto@example.com",
                 "--no-input", stdout=out)
    assert "Password (shown once):" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("create_super_admin", "--username", "weak", "--email", "weak@example.com",
                     "--password", "123", "--no-input", stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("create_super_admin", "--username", "bad", "--email", "not-an-email",
                     "--password", "A-long-enough-passphrase-42", "--no-input", stdout=StringIO())


def test_deleting_an_instance_needs_sudo(client):
    admin_user = UserFactory(is_superuser=True)
    device = enroll(admin_user)
    login_verified(client, admin_user)
    instance = WeworkInstanceFactory()
    url = reverse("admin:instances_weworkinstance_delete", args=[instance.pk])
    response = client.get(url)
    assert response.status_code == 302 and reverse("accounts:sudo") in response["Location"]
    bulk = client.post(reverse("admin:instances_weworkinstance_changelist"),
                       {"action": "delete_selected", "_selected_action": [instance.pk]})
    assert bulk.status_code == 302 and reverse("accounts:sudo") in bulk["Location"]
    client.post(reverse("accounts:sudo"), {"code": totp_code(device)})
    assert client.get(url).status_code == 200


def _code(device):
    device.refresh_from_db()
    return str(TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()).zfill(device.digits)


def test_enrollment_says_to_wait_when_throttled(client):
    user = UserFactory()
    client.force_login(user)
    client.get(reverse("accounts:otp-setup"))
    device = EncryptedTOTPDevice.objects.get(user=user, confirmed=False)
    wrong = client.post(reverse("accounts:otp-setup"), {"code": "000000" if _code(device) != "000000" else "111111"})
    assert "That code is not right" in wrong.content.decode()
    # at once, the right code: django-otp still throttles, and the page says so
    refused = client.post(reverse("accounts:otp-setup"), {"code": _code(device)})
    text = refused.content.decode()
    assert "Too many wrong codes. Wait 1 second" in text and "That code is not right" not in text
    assert not EncryptedTOTPDevice.objects.get(pk=device.pk).confirmed
    with translation.override("zh-hans"):
        from django.utils.translation import ngettext

        zh = ngettext("Too many wrong codes. Wait %(n)d second, then enter the code your app shows now.",
                      "Too many wrong codes. Wait %(n)d seconds, then enter the code your app shows now.", 4)
        assert not zh.isascii()
    # after the wait the right code is accepted
    EncryptedTOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(seconds=5))
    done = client.post(reverse("accounts:otp-setup"), {"code": _code(device)})
    assert done.status_code == 200 and EncryptedTOTPDevice.objects.get(pk=device.pk).confirmed
