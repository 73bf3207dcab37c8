"""Role editing: a role's fields and the permissions it includes, with the rules every path
follows (the admin's role page, the API's /roles/, `seed_roles` for the system roles).

* Editing roles needs `accounts.manage_roles` (super admins hold it implicitly).
* System roles are kept in step with the code by `seed_roles`: people may change their display
  fields but not their name nor their permissions, and cannot delete them.
* Links created in bulk fire no model signal, so a change of a role's permissions is audited
  here: one row on the role with the old and the new permission names.
"""
from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import Permission, Role, RolePermission, User
from accounts.services.cache import bump_generation
from wework import audit
from wework.errors import ConflictError, PermissionDeniedError


def may_manage_roles(actor: User | None) -> bool:
    """None is the system (commands, migrations)."""
    return actor is None or actor.is_superuser or actor.has_perm("accounts.manage_roles")


def check_manage(actor: User | None) -> None:
    if not may_manage_roles(actor):
        raise PermissionDeniedError(_("You may not edit roles."))


def _permission_ids(permissions: Iterable[Permission | int | str]) -> set[int]:
    ids, names = set(), []
    for item in permissions:
        if isinstance(item, Permission):
            ids.add(item.pk)
        elif isinstance(item, int):
            ids.add(item)
        else:
            names.append(str(item))
    if names:
        found = dict(Permission.objects.filter(name__in=names).values_list("name", "id"))
        missing = sorted(set(names) - set(found))
        if missing:
            raise ConflictError(_("Unknown permissions: %(names)s") % {"names": ", ".join(missing)},
                                code="unknown_permission")
        ids |= set(found.values())
    return ids


@transaction.atomic
def set_role_permissions(role: Role, permissions: Iterable[Permission | int | str], *,
                         actor: User | None = None) -> bool:
    """Make `permissions` (objects, ids or names) exactly the role's permissions; True when
    that changed anything. People (`actor`) may not change a system role's permissions."""
    check_manage(actor)
    wanted = _permission_ids(permissions)
    have = set(RolePermission.objects.filter(role=role).values_list("permission_id", flat=True))
    if wanted == have:
        return False
    if actor is not None and role.is_system:
        raise ConflictError(_("System roles are kept in step by `seed_roles`; their permissions "
                              "cannot be edited."), code="system_role")
    names = dict(Permission.objects.filter(pk__in=wanted | have).values_list("id", "name"))
    if have - wanted:
        RolePermission.objects.filter(role=role, permission_id__in=have - wanted).delete()
    if wanted - have:
        RolePermission.objects.bulk_create(
            [RolePermission(role=role, permission_id=pid) for pid in sorted(wanted - have)]
        )
    audit.record(
        "role.permissions", resource_type=Role._meta.db_table, resource_id=role.pk,
        resource_name=role.name, operation_type="UPDATE",
        old_values={"permissions": sorted(names[p] for p in have)},
        new_values={"permissions": sorted(names[p] for p in wanted)},
    )
    bump_generation()
    return True


@transaction.atomic
def save_role(role: Role, *, actor: User | None,
              permissions: Iterable[Permission | int | str] | None = None) -> Role:
    """Create or update a role (its fields as set on `role`), then its permissions when given."""
    check_manage(actor)
    if role.pk is not None and actor is not None:
        stored = Role.all_objects.filter(pk=role.pk).values("name", "is_system").first()
        if stored and stored["is_system"] and stored["name"] != role.name:
            raise ConflictError(_("A system role cannot be renamed."), code="system_role")
        role.is_system = bool(stored and stored["is_system"])
    elif actor is not None:
        role.is_system = False  # only seed_roles makes system roles
    role.save()
    if permissions is not None:
        set_role_permissions(role, permissions, actor=actor)
    return role


@transaction.atomic
def delete_role(role: Role, *, actor: User | None) -> None:
    """Soft-delete a role (its grants stop counting at once); system roles stay."""
    check_manage(actor)
    if role.is_system:
        raise PermissionDeniedError(_("System roles cannot be deleted."))
    role.delete()
