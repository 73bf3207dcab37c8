"""Role backend: grants, expiry to the second, caching, object grants and scoping."""
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone, translation

from accounts import scoping
from accounts.models import Permission, Role, RolePermission, UserRole, UserStatus
from accounts.services import cache as acl_cache
from accounts.services import permissions as perm_services
from accounts.services.permissions import permission_label
from accounts.tests.factories import UserFactory
from wework.testing.fixtures import role_with
from contacts.tests.factories import ContactFactory, WeworkAccountFactory
from instances.tests.factories import WeworkInstanceFactory
from wework.errors import DomainError

pytestmark = pytest.mark.django_db

VIEW_INSTANCE = "instances.view_weworkinstance"
VIEW_ACCOUNT = "contacts.view_weworkaccount"


def _fresh(user):
    from accounts.models import User

    return User.objects.get(pk=user.pk)


def test_system_roles_seeded_and_idempotent():
    names = set(Role.objects.filter(is_system=True).values_list("name", flat=True))
    assert names == {"super_admin", "administrator", "operator", "auditor", "integrator"}
    before = {r.name: set(r.permissions.values_list("name", flat=True)) for r in Role.objects.all()}
    call_command("seed_roles")
    call_command("seed_roles")
    after = {r.name: set(r.permissions.values_list("name", flat=True)) for r in Role.objects.all()}
    assert before == after
    assert Permission.objects.filter(name="instances.restart_instance").exists()
    assert Permission.objects.filter(name="accounts.manage_roles").exists()
    auditor = after["auditor"]
    assert "accounts.view_loginlog" in auditor and "monitoring.export_audit" in auditor
    assert not any(p.split(".")[1].startswith(("add_", "change_", "delete_")) for p in auditor)
    assert "accounts.manage_roles" not in after["administrator"]
    assert "instances.restart_instance" in after["operator"]
    assert "messaging.send_broadcast" in after["integrator"]
    assert Role.objects.get(name="super_admin").require_two_factor


def test_permission_names_are_stored_once_whatever_the_language_of_the_start():
    """Each start in another language rewrote the platform actions' names (20 audit rows per
    start): they are stored in the source language and translated when shown."""
    with translation.override("zh-hans"):
        perm_services.sync_permissions()
    with translation.override("en"):
        assert perm_services.sync_permissions() == (0, 0, 0)
    with translation.override("zh-hans"):
        assert perm_services.sync_permissions() == (0, 0, 0)
        stored = Permission.objects.get(name="instances.restart_instance").display_name
        assert permission_label("instances.restart_instance", stored) != stored  # shown in Chinese
    with translation.override("en"):
        assert permission_label("instances.restart_instance", stored) == stored


def test_role_grant_gives_permission_everywhere():
    user = UserFactory()
    role = role_with("viewer", [VIEW_INSTANCE])
    assert not _fresh(user).has_perm(VIEW_INSTANCE)
    UserRole.objects.create(user=user, role=role)
    user = _fresh(user)
    assert user.has_perm(VIEW_INSTANCE)

    assert user.has_perm(VIEW_INSTANCE, WeworkInstanceFactory())  # a role grant covers every object
    assert not user.has_perm("instances.change_weworkinstance")


def test_grant_expiry_is_honoured_to_the_second():
    user = UserFactory()
    role = role_with("short", [VIEW_INSTANCE])
    now = timezone.now().replace(microsecond=0)
    expires = now + timedelta(seconds=30)
    UserRole.objects.create(user=user, role=role, expires_at=expires)
    with mock.patch("django.utils.timezone.now", return_value=expires - timedelta(seconds=1)):
        u = _fresh(user)
        assert u.has_perm(VIEW_INSTANCE)
    with mock.patch("django.utils.timezone.now", return_value=expires):
        # the same user object: its request cache must not outlive the expiry
        assert not u.has_perm(VIEW_INSTANCE)
        assert not _fresh(user).has_perm(VIEW_INSTANCE)
    with mock.patch("django.utils.timezone.now", return_value=expires + timedelta(milliseconds=1)):
        assert not _fresh(user).has_perm(VIEW_INSTANCE)


def test_shared_cache_ttl_stops_at_next_expiry():
    from django.core.cache import cache

    user = UserFactory()
    role = role_with("ttl", [VIEW_INSTANCE])
    now = timezone.now()
    UserRole.objects.create(user=user, role=role, expires_at=now + timedelta(seconds=40))
    assert _fresh(user).has_perm(VIEW_INSTANCE)
    ttl = cache.ttl(acl_cache.user_cache_key(user.pk)) if hasattr(cache, "ttl") else None
    if ttl is not None:
        assert 0 < ttl <= 40


def test_changes_invalidate_cached_permissions():
    user = UserFactory()
    role = role_with("changing", [VIEW_INSTANCE])
    grant = UserRole.objects.create(user=user, role=role)
    assert _fresh(user).has_perm(VIEW_INSTANCE)
    RolePermission.objects.filter(role=role).delete()
    assert not _fresh(user).has_perm(VIEW_INSTANCE)
    RolePermission.objects.create(role=role, permission=Permission.objects.get(name=VIEW_INSTANCE))
    assert _fresh(user).has_perm(VIEW_INSTANCE)
    role.status = 0
    role.save()
    assert not _fresh(user).has_perm(VIEW_INSTANCE)
    role.status = 1
    role.save()
    grant.delete()
    assert not _fresh(user).has_perm(VIEW_INSTANCE)


def test_inactive_users_have_no_permissions():
    user = UserFactory()
    UserRole.objects.create(user=user, role=role_with("all"))
    assert _fresh(user).has_perm(VIEW_INSTANCE)
    user.status = UserStatus.DISABLED
    user.save()
    assert not _fresh(user).has_perm(VIEW_INSTANCE)
    assert not _fresh(user).has_module_perms("instances")
    user.status = UserStatus.LOCKED
    user.locked_until = timezone.now() + timedelta(minutes=5)
    user.save()
    assert not _fresh(user).has_perm(VIEW_INSTANCE)
    superuser = UserFactory(is_superuser=True, status=UserStatus.DISABLED)
    assert not _fresh(superuser).has_perm(VIEW_INSTANCE)


def test_object_grant_covers_instance_and_everything_below():
    a, b = WeworkInstanceFactory(), WeworkInstanceFactory()
    account_a, account_b = WeworkAccountFactory(instance=a), WeworkAccountFactory(instance=b)
    contact_a = ContactFactory(account=account_a)
    user = UserFactory()
    perm_services.grant_instance(user, a, [VIEW_INSTANCE, VIEW_ACCOUNT, "contacts.view_contact",
                                           "instances.restart_instance"])
    user = _fresh(user)
    assert not user.has_perm(VIEW_INSTANCE)  # no global permission
    assert user.has_perm(VIEW_INSTANCE, a) and not user.has_perm(VIEW_INSTANCE, b)
    assert user.has_perm(VIEW_ACCOUNT, account_a) and not user.has_perm(VIEW_ACCOUNT, account_b)
    assert user.has_perm("contacts.view_contact", contact_a)
    assert user.has_perm("instances.restart_instance", a)
    assert not user.has_perm("instances.change_weworkinstance", a)
    assert user.has_module_perms("contacts")
    assert scoping.visible_instance_ids(user, VIEW_INSTANCE) == {a.pk}
    assert list(scoping.scope_queryset(type(account_a).objects.all(), user, VIEW_ACCOUNT)) == [account_a]
    assert scoping.can_access_instance(user, a.pk) and not scoping.can_access_instance(user, b.pk)
    assert scoping.may_use_model(user, VIEW_ACCOUNT, type(account_a))
    # a global model is never reachable through an object grant
    from accounts.models import Role as RoleModel

    assert not scoping.may_use_model(user, "accounts.view_role", RoleModel)
    perm_services.revoke_instance(user, a)
    user = _fresh(user)
    assert not user.has_perm(VIEW_INSTANCE, a)
    assert scoping.scope_queryset(type(account_a).objects.all(), user, VIEW_ACCOUNT).count() == 0


def test_object_grant_from_role_and_validation():
    instance = WeworkInstanceFactory()
    user = UserFactory()
    names = perm_services.grant_instance(user, instance, Role.objects.get(name="operator"))
    assert VIEW_INSTANCE in names and "accounts.view_role" not in names
    with pytest.raises(DomainError) as exc:
        perm_services.grant_instance(user, instance, ["accounts.view_role"])
    assert "accounts.view_role" in exc.value.fields["permissions"][0]


def test_instance_hard_delete_purges_object_grants():
    from guardian.models import UserObjectPermission


    instance = WeworkInstanceFactory()
    user = UserFactory()
    perm_services.grant_instance(user, instance, [VIEW_INSTANCE])
    assert UserObjectPermission.objects.filter(user=user).exists()
    instance.hard_delete()
    assert not UserObjectPermission.objects.filter(user=user).exists()


def test_only_role_managers_grant_and_only_super_admins_grant_super_admin():
    from django.core.exceptions import PermissionDenied

    target = UserFactory()
    manager = UserFactory()
    UserRole.objects.create(user=manager, role=role_with("managers", ["accounts.manage_roles"]))
    manager = _fresh(manager)
    operator = Role.objects.get(name="operator")
    perm_services.grant_role(target, operator, manager)
    with pytest.raises(PermissionDenied):
        perm_services.grant_role(target, Role.objects.get(name="super_admin"), manager)
    with pytest.raises(PermissionDenied):
        perm_services.grant_role(manager, operator, _fresh(target))


@pytest.mark.parametrize("names", [["x.y.z", 1], ["nodot"], ["contacts."], [".view_contact"], [None],
                                   [VIEW_ACCOUNT, "accounts.view_role"]])
def test_instance_grant_and_revoke_refuse_malformed_permission_names(names):
    instance, target = WeworkInstanceFactory(), UserFactory()
    for call in (perm_services.grant_instance, perm_services.revoke_instance):
        with pytest.raises(DomainError) as exc:
            call(target, instance, names)
        assert list(exc.value.fields) == ["permissions"]
        assert all(str(n) in exc.value.fields["permissions"][0] for n in names if n != VIEW_ACCOUNT)
    assert not perm_services.grantable_on_instance(1)
    assert not _fresh(target).has_perm(VIEW_ACCOUNT, instance)


def test_instance_grants_api_names_bad_permission_entries():
    from rest_framework.test import APIClient

    from accounts.services import sessions as session_services
    from wework.testing.fixtures import enroll, totp_code

    admin_user = UserFactory(is_superuser=True)
    device = enroll(admin_user)
    _row, access, _refresh = session_services.issue_tokens(admin_user, None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    instance, target = WeworkInstanceFactory(), UserFactory()
    for path in ("/api/v1/instance-grants/", "/api/v1/instance-grants/revoke/"):
        answer = client.post(path, {"user": target.pk, "instance": instance.pk, "permissions": ["x.y.z", 1]},
                             format="json", HTTP_X_OTP_CODE=totp_code(device), HTTP_ACCEPT_LANGUAGE="en")
        assert answer.status_code == 400, answer.content
        assert answer.json() == {"permissions": ["Not grantable per instance: x.y.z, 1"]}
    from django.contrib.auth.models import Permission as AuthPermission

    assert not AuthPermission.objects.filter(codename__in=["x.y.z", "1"]).exists()


def test_instance_grants_api():
    from rest_framework.test import APIClient

    from accounts.services import sessions as session_services
    from wework.testing.fixtures import enroll, totp_code

    admin_user = UserFactory(is_superuser=True)
    device = enroll(admin_user)
    _row, access, _refresh = session_services.issue_tokens(admin_user, None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    instance, target = WeworkInstanceFactory(), UserFactory()
    body = {"user": target.pk, "instance": instance.pk, "role": "operator"}
    assert client.post("/api/v1/instance-grants/", body, format="json").status_code == 403  # no sudo
    response = client.post("/api/v1/instance-grants/", body, format="json", HTTP_X_OTP_CODE=totp_code(device))
    assert response.status_code == 201, response.content
    assert _fresh(target).has_perm(VIEW_INSTANCE, instance)
    listing = client.get(f"/api/v1/instance-grants/?user={target.pk}").json()
    assert listing[0]["instance"] == instance.pk and VIEW_INSTANCE in listing[0]["permissions"]
    bad = client.post("/api/v1/instance-grants/", {"user": target.pk, "instance": instance.pk,
                                                   "permissions": ["accounts.view_role"]},
                      format="json", HTTP_X_OTP_CODE=totp_code(device))
    assert bad.status_code == 400
    missing = client.post("/api/v1/instance-grants/", {"user": target.pk, "instance": 999999, "role": "operator"},
                          format="json", HTTP_X_OTP_CODE=totp_code(device))
    assert missing.status_code == 400
    revoke = client.post("/api/v1/instance-grants/revoke/", {"user": target.pk, "instance": instance.pk},
                         format="json", HTTP_X_OTP_CODE=totp_code(device))
    assert revoke.status_code == 200 and revoke.json()["revoked"] > 0
    assert not _fresh(target).has_perm(VIEW_INSTANCE, instance)
    outsider = UserFactory()
    _row, other_access, _r = session_services.issue_tokens(outsider, None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_access}")
    assert client.get("/api/v1/instance-grants/").status_code == 403


def test_instance_grant_admin(client):
    from django.urls import reverse

    from accounts.models import InstanceGrant
    from wework.testing.fixtures import enroll, login_verified, totp_code

    admin_user = UserFactory(is_superuser=True)
    device = enroll(admin_user)
    login_verified(client, admin_user)
    client.post(reverse("accounts:sudo"), {"code": totp_code(device)})
    instance, target = WeworkInstanceFactory(), UserFactory()
    response = client.post(reverse("admin:accounts_instancegrant_add"), {
        "grant_user": target.pk, "grant_instance": instance.pk,
        "grant_permissions": [VIEW_INSTANCE, VIEW_ACCOUNT],
    })
    assert response.status_code == 302, response.content[:3000]
    assert _fresh(target).has_perm(VIEW_ACCOUNT, instance)
    listing = client.get(reverse("admin:accounts_instancegrant_changelist"))
    assert listing.status_code == 200 and target.username.encode() in listing.content
    rows = list(InstanceGrant.objects.filter(user=target).values_list("pk", flat=True))
    client.post(reverse("admin:accounts_instancegrant_changelist"),
                {"action": "delete_selected", "_selected_action": rows, "post": "yes"})
    assert not InstanceGrant.objects.filter(user=target).exists()
    assert not _fresh(target).has_perm(VIEW_ACCOUNT, instance)


@pytest.mark.parametrize("lang, name, expected", [
    ("zh-hans", "contacts.add_contact", "可添加联系人"),
    ("zh-hans", "messaging.view_messagetask", "可查看群发任务"),
    ("zh-hans", "messaging.send_message", "发送消息"),
    ("en", "contacts.delete_contact", "Can delete contact"),
    ("en", "messaging.send_message", "Send messages"),
])
def test_permission_label_in_the_users_language(lang, name, expected):
    with translation.override(lang):
        assert permission_label(name, "Can do something") == expected


def test_unknown_permission_falls_back_to_what_is_stored():
    with translation.override("zh-hans"):
        assert permission_label("nosuchapp.frobnicate", "Frobnicate") == "Frobnicate"
        assert permission_label("nosuchapp.frobnicate") == "nosuchapp.frobnicate"
