"""accounts.services.users: the user status rules, the same for the admin and the API, and
audited bulk changes."""
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import User, UserStatus
from accounts.services import users as user_services
from accounts.tests.factories import UserFactory
from monitoring.models import AuditLog
from wework.errors import DomainError, PermissionDeniedError

pytestmark = pytest.mark.django_db


def _audits(user, operation_type="UPDATE"):
    return AuditLog.objects.filter(resource_type="users", resource_id=str(user.pk),
                                   operation_type=operation_type)


def test_set_status_skips_self_and_super_admins_for_others_and_audits_each_row(grant):
    actor = grant(UserFactory(), "accounts.change_user")
    plain, boss = UserFactory(), UserFactory(is_superuser=True)
    changed = user_services.set_status(actor, User.objects.all(), UserStatus.DISABLED)
    assert changed == 1
    assert User.objects.get(pk=plain.pk).status == UserStatus.DISABLED
    assert User.objects.get(pk=boss.pk).status == UserStatus.ENABLED
    assert User.objects.get(pk=actor.pk).status == UserStatus.ENABLED
    row = _audits(plain).get()
    assert row.old_values == {"status": UserStatus.ENABLED}
    assert row.new_values == {"status": UserStatus.DISABLED}


def test_enable_lifts_a_lock_and_says_how_many_changed():
    locked = UserFactory(status=UserStatus.LOCKED, locked_until=timezone.now() + timedelta(hours=1))
    fine = UserFactory()
    assert user_services.set_status(None, User.objects.filter(pk__in=[locked.pk, fine.pk]),
                                    UserStatus.ENABLED) == 1
    locked.refresh_from_db()
    assert locked.status == UserStatus.ENABLED and locked.locked_until is None
    assert _audits(locked).get().new_values["status"] == UserStatus.ENABLED


def test_check_change_rules():
    actor, boss = UserFactory(), UserFactory(is_superuser=True)
    with pytest.raises(PermissionDeniedError):
        user_services.check_change(actor, boss)
    with pytest.raises(PermissionDeniedError):
        user_services.check_change(actor, actor, ["status"])
    with pytest.raises(PermissionDeniedError):
        user_services.check_change(actor, UserFactory(), ["is_superuser"])
    user_services.check_change(actor, actor, ["nickname"])
    user_services.check_change(None, boss, ["status"])  # the system may


def test_unlock_is_audited_and_refused_on_super_admins_for_others():
    until = timezone.now() + timedelta(hours=1)
    locked = UserFactory(status=UserStatus.LOCKED, locked_until=until)
    assert user_services.unlock(None, [locked]) == 1
    assert _audits(locked).get().new_values == {"status": UserStatus.ENABLED, "locked_until": None}
    boss = UserFactory(is_superuser=True, status=UserStatus.LOCKED, locked_until=until)
    with pytest.raises(PermissionDeniedError):
        user_services.unlock(UserFactory(), [boss])


def test_lockout_after_failures_is_audited(client):
    user = UserFactory()
    for _ in range(5):
        client.post(reverse("admin:login"), {"username": user.username, "password": "wrong"})
    user.refresh_from_db()
    assert user.status == UserStatus.LOCKED
    assert _audits(user).filter(new_values__status=UserStatus.LOCKED).exists()


def test_admin_disable_and_enable_actions_audit_old_and_new_values(verified_admin_client):
    target = UserFactory()
    url = reverse("admin:accounts_user_changelist")
    verified_admin_client.post(url, {"action": "disable_users", "_selected_action": [target.pk]})
    verified_admin_client.post(url, {"action": "enable_users", "_selected_action": [target.pk]})
    rows = list(_audits(target).order_by("id").values_list("old_values", "new_values"))
    assert rows == [({"status": UserStatus.ENABLED}, {"status": UserStatus.DISABLED}),
                    ({"status": UserStatus.DISABLED}, {"status": UserStatus.ENABLED})]


def test_admin_restore_action_is_audited(verified_admin_client):
    target = UserFactory()
    target.delete()
    assert _audits(target, "DELETE").exists()
    url = reverse("admin:accounts_user_changelist") + "?deleted=yes"
    verified_admin_client.post(url, {"action": "restore_selected", "_selected_action": [target.pk]})
    assert User.objects.filter(pk=target.pk).exists()
    assert _audits(target).get().new_values == {"deleted_at": None}


def test_api_refuses_own_status_and_super_admin_changes(grant, api_client_for):
    actor = grant(UserFactory(), "accounts.change_user", "accounts.view_user")
    client = api_client_for(actor)
    own = client.patch(f"/api/v1/users/{actor.pk}/", {"status": 0}, format="json")
    assert own.status_code == 403 and own.json()["code"] == "permission_denied"
    boss = UserFactory(is_superuser=True)
    assert client.patch(f"/api/v1/users/{boss.pk}/", {"nickname": "x"}, format="json").status_code == 403
    other = UserFactory()
    response = client.patch(f"/api/v1/users/{other.pk}/", {"status": 0}, format="json")
    assert response.status_code == 200
    assert _audits(other).get().new_values == {"status": UserStatus.DISABLED}


def test_api_create_validates_the_password(grant, api_client_for):
    client = api_client_for(grant(UserFactory(), "accounts.add_user", "accounts.view_user"))
    weak = client.post("/api/v1/users/", {"username": "newbie", "email": "n@example.com",
                                          "password": "123"}, format="json")
    assert weak.status_code == 400 and "password" in weak.json()
    ok = client.post("/api/v1/users/", {"username": "newbie", "email": "n@example.com",
                                        "password": "a-long-Passphrase-9"}, format="json")
    assert ok.status_code == 201
    assert User.objects.get(username="newbie").check_password("a-long-Passphrase-9")


@pytest.mark.parametrize("field, value", [
    ("email", "not-an-email"), ("phone", "abc"), ("phone", "1234"), ("phone", "+86 138--"),
    ("phone", "+" + "1" * 21), ("avatar_url", "javascript:alert(1)"), ("avatar_url", "ftp://x.example/a.png"),
])
def test_contact_fields_are_validated_on_create_and_save(field, value):
    user = User(**{"username": "u-contact", "email": "u@example.com", field: value})
    with pytest.raises(DomainError) as info:
        user_services.create_user(None, user)
    assert list(info.value.fields) == [field]
    assert not User.objects.filter(username="u-contact").exists()
    existing = UserFactory()
    setattr(existing, field, value)
    with pytest.raises(DomainError):
        user_services.save_user(None, existing, [field])
    assert getattr(User.objects.get(pk=existing.pk), field) != value


def test_contact_fields_accept_usual_values():
    user = User(username="u-ok", email="u.ok@example.com", phone="+86 138-0000-0000",
                avatar_url="https://cdn.example.com/a.png")
    user_services.create_user(None, user)
    existing = UserFactory()
    existing.phone = "13800000000"
    user_services.save_user(None, existing, ["phone"])
    assert User.objects.get(pk=existing.pk).phone == "13800000000"


def test_admin_user_form_refuses_bad_contact_fields(rf, super_admin):
    from django.contrib import admin

    request = rf.post("/")
    request.user = super_admin
    target = UserFactory()
    form_class = admin.site._registry[User].get_form(request, target)
    data = {"username": target.username, "email": "not-an-email", "phone": "abc",
            "avatar_url": "javascript:alert(1)", "status": target.status}
    form = form_class(data, instance=target)
    assert not form.is_valid()
    assert {"email", "phone", "avatar_url"} <= set(form.errors)


def test_api_refuses_bad_contact_fields_on_create_and_patch(grant, api_client_for):
    actor = grant(UserFactory(), "accounts.add_user", "accounts.change_user", "accounts.view_user")
    client = api_client_for(actor)
    for body in ({"email": "not-an-email"}, {"phone": "abc"}, {"avatar_url": "javascript:alert(1)"}):
        created = client.post("/api/v1/users/", {"username": "u1", "email": "u1@example.com", **body},
                              format="json")
        assert created.status_code == 400, created.content
        assert list(created.json()) == list(body)
        target = UserFactory()
        patched = client.patch(f"/api/v1/users/{target.pk}/", body, format="json")
        assert patched.status_code == 400 and list(patched.json()) == list(body)
    assert not User.objects.filter(username="u1").exists()
    ok = client.post("/api/v1/users/", {"username": "u1", "email": "u1@example.com", "phone": "+86 138 0000 0000",
                                        "avatar_url": "https://cdn.example.com/a.png"}, format="json")
    assert ok.status_code == 201, ok.content
