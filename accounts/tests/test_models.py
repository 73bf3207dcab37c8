"""Models of accounts: the through models read as names."""
import pytest
from django.utils import translation

from accounts.models import Permission, Role, RolePermission, UserRole
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
