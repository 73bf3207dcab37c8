"""The shared model building blocks of wework.db: soft delete with audited bulk operations."""
import pytest

from accounts.models import Role
from accounts.tests.factories import RoleFactory
from monitoring.models import AuditLog


@pytest.mark.django_db
def test_soft_delete_queryset_bulk_operations_are_audited_row_by_row():
    roles = [RoleFactory(), RoleFactory()]
    Role.objects.filter(pk__in=[r.pk for r in roles]).delete()
    deletes = AuditLog.objects.filter(resource_type="roles", operation_type="DELETE",
                                      resource_id__in=[str(r.pk) for r in roles])
    assert sorted(deletes.values_list("resource_id", flat=True)) == sorted(str(r.pk) for r in roles)
    assert all(v["deleted_at"] for v in deletes.values_list("new_values", flat=True))
    assert Role.all_objects.filter(pk__in=[r.pk for r in roles]).restore() == 2
    restores = AuditLog.objects.filter(resource_type="roles", operation_type="UPDATE",
                                       resource_id__in=[str(r.pk) for r in roles])
    assert restores.count() == 2
    # nothing to change: no query beyond the read, no audit row
    assert Role.all_objects.filter(pk__in=[r.pk for r in roles]).restore() == 0
    ours = AuditLog.objects.filter(resource_type="roles", resource_id__in=[str(r.pk) for r in roles])
    assert ours.count() == 2 + 2 + 2  # created, deleted, restored
