"""accounts.services.roles: role editing (fields and permissions) through the admin and the API,
system roles protected, every change of a role's permissions audited with old and new names."""
import pytest
from django.urls import reverse

from accounts.models import Permission, Role
from accounts.services import roles as role_services
from accounts.tests.factories import RoleFactory, UserFactory
from monitoring.models import AuditLog
from wework.errors import ConflictError, PermissionDeniedError

pytestmark = pytest.mark.django_db

VIEW_USER, VIEW_ROLE = "accounts.view_user", "accounts.view_role"


def _permission_audits(role):
    return AuditLog.objects.filter(operation="role.permissions", resource_id=str(role.pk))


def test_set_role_permissions_audits_old_and_new_names():
    role = RoleFactory()
    assert role_services.set_role_permissions(role, [VIEW_USER])
    assert role_services.set_role_permissions(role, [VIEW_ROLE])
    assert not role_services.set_role_permissions(role, [VIEW_ROLE])  # no change, no row
    rows = list(_permission_audits(role).order_by("id").values_list("old_values", "new_values"))
    assert rows == [({"permissions": []}, {"permissions": [VIEW_USER]}),
                    ({"permissions": [VIEW_USER]}, {"permissions": [VIEW_ROLE]})]


def test_people_cannot_edit_system_roles_nor_without_manage_roles(grant):
    manager = grant(UserFactory(), "accounts.manage_roles")
    operator = Role.objects.get(name="operator")
    with pytest.raises(ConflictError):
        role_services.set_role_permissions(operator, [VIEW_USER], actor=manager)
    with pytest.raises(PermissionDeniedError):
        role_services.delete_role(operator, actor=manager)
    with pytest.raises(PermissionDeniedError):
        role_services.save_role(RoleFactory.build(), actor=UserFactory())


def test_admin_role_form_grants_a_permission_with_an_audit_row(verified_admin_client):
    role = RoleFactory()
    perm = Permission.objects.get(name=VIEW_USER)
    response = verified_admin_client.post(reverse("admin:accounts_role_change", args=[role.pk]), {
        "name": role.name, "display_name": role.display_name, "description": "",
        "status": 1, "sort_order": 0, "permission_names": [perm.pk],
    })
    assert response.status_code == 302, response.content[:500]
    assert list(role.permissions.values_list("name", flat=True)) == [VIEW_USER]
    assert _permission_audits(role).get().new_values == {"permissions": [VIEW_USER]}


def test_api_edits_role_permissions_through_the_service(grant, api_client_for):
    from wework.testing.fixtures import enroll, totp_code

    manager = grant(UserFactory(), "accounts.manage_roles", VIEW_ROLE, "accounts.add_role",
                    "accounts.change_role")
    device = enroll(manager)
    client = api_client_for(manager)
    created = client.post("/api/v1/roles/", {"name": "support", "display_name": "Support",
                                             "permissions": [VIEW_USER]},
                          format="json", HTTP_X_OTP_CODE=totp_code(device))
    assert created.status_code == 201, created.json()
    assert created.json()["permissions"] == [VIEW_USER]
    role = Role.objects.get(name="support")
    changed = client.patch(f"/api/v1/roles/{role.pk}/", {"permissions": [VIEW_ROLE]},
                           format="json", HTTP_X_OTP_CODE=totp_code(device))
    assert changed.status_code == 200 and changed.json()["permissions"] == [VIEW_ROLE]
    assert _permission_audits(role).count() == 2
    system = Role.objects.get(name="auditor")
    refused = client.patch(f"/api/v1/roles/{system.pk}/", {"permissions": [VIEW_ROLE]},
                           format="json", HTTP_X_OTP_CODE=totp_code(device))
    assert refused.status_code == 409 and refused.json()["code"] == "system_role"
    unknown = client.patch(f"/api/v1/roles/{role.pk}/", {"permissions": ["nope.nothing"]},
                           format="json", HTTP_X_OTP_CODE=totp_code(device))
    assert unknown.status_code == 400 and "permissions" in unknown.json()
