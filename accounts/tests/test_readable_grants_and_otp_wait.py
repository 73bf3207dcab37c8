"""QA F16: role grants read "alice → Operator" (admin recent actions, change messages, audit),
and the OTP enrollment page says to wait while django-otp throttles after wrong codes."""
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone, translation
from django_otp.oath import TOTP

from accounts.models import EncryptedTOTPDevice, Permission, Role, RolePermission, UserRole
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_through_models_read_as_names():
    alice = UserFactory(username="alice")
    operator = Role.objects.get(name="operator")
    grant = UserRole.objects.create(user=alice, role=operator)
    with translation.override("en"):
        assert str(grant) == "alice → Operator"
    with translation.override("zh-hans"):
        assert str(grant) == "alice → 运营人员"
    perm = Permission.objects.filter(status=1).first()
    link = RolePermission.objects.filter(role=operator, permission=perm).first() or \
        RolePermission(role=operator, permission=perm)
    with translation.override("en"):
        assert str(link) == f"Operator → {perm.name}"
    assert str(UserRole()) == "? → ?"  # unsaved, nothing chosen yet: no crash


def test_admin_recent_actions_name_the_user_and_role(client):
    from django.contrib.admin.models import ADDITION, LogEntry
    from django.contrib.contenttypes.models import ContentType

    from accounts.tests.helpers import login_verified

    root = UserFactory(username="root", is_superuser=True)
    grant = UserRole.objects.create(user=UserFactory(username="bob"), role=Role.objects.get(name="auditor"))
    with translation.override("en"):
        LogEntry.objects.log_actions(root.pk, [grant], ADDITION, change_message="[]", single_object=True)
    login_verified(client, root)
    body = client.get(reverse("admin:index")).content.decode()
    assert "bob → Auditor" in body


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
