"""Permissions and roles: the design's tables kept in step with Django's permissions, system
roles, role grants and per-instance object grants (stored in django-guardian's table)."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.apps import apps
from django.contrib.auth.models import Permission as AuthPermission
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _, gettext_noop
from guardian.models import GroupObjectPermission, UserObjectPermission

from accounts import registry
from accounts.models import Permission, Role, Status, User, UserRole
from accounts.services.cache import bump_generation, forget_user
from accounts.services.roles import set_role_permissions
from wework.errors import DomainError, PermissionDeniedError

STANDARD_ACTIONS = ("add", "change", "delete", "view")

# --- System roles ----------------------------------------------------------------------------
# name: (display name, description, require_two_factor, sort order, rule)
# A rule maps a permission name to True when the role holds it. System roles are fully
# managed: every sync sets their permissions to exactly what the rule selects.

_ADMIN_ONLY = {"accounts.manage_roles", "wework.manage_shards"}
_ACCESS_MODELS = ("role", "permission", "rolepermission", "userrole")


_INTERNAL_APPS = {"auth", "contenttypes", "sessions", "guardian", "admin", "otp_totp", "otp_static"}
_INTERNAL_MODELS = {"encryptedtotpdevice", "backupcodedevice", "backupcode", "rolepermission"}


def _internal(name):
    """Framework plumbing: no system role below super admin needs it."""
    app, codename = name.split(".", 1)
    return app in _INTERNAL_APPS or codename.split("_", 1)[-1] in _INTERNAL_MODELS


def _action_of(name):
    codename = name.split(".", 1)[1]
    prefix = codename.split("_", 1)[0]
    return prefix if prefix in STANDARD_ACTIONS else codename


def _is_admin_rule(name):
    if name in _ADMIN_ONLY or _internal(name):
        return False
    app, codename = name.split(".", 1)
    if app == "accounts" and codename.split("_", 1)[-1] in _ACCESS_MODELS and not codename.startswith("view_"):
        return False
    return True


_OPERATOR_ACTIONS = {
    "instances.restart_instance", "instances.push_config", "contacts.sync_contacts",
    "contacts.login_account", "messaging.send_message", "messaging.send_broadcast",
    "messaging.manage_task", "monitoring.ack_alert",
}
_OPERATIONAL_APPS = ("instances", "contacts", "messaging", "scrm")


def _is_operator_rule(name):
    if name in _OPERATOR_ACTIONS:
        return True
    app = name.split(".", 1)[0]
    action = _action_of(name)
    if app in _OPERATIONAL_APPS:
        return action in ("view", "add", "change")
    if app == "monitoring":
        return action == "view" and not name.endswith("auditlog")
    return False


def _is_auditor_rule(name):
    if _internal(name):
        return name == "admin.view_logentry"
    return _action_of(name) == "view" or name == "monitoring.export_audit"


def _is_integrator_rule(name):
    app = name.split(".", 1)[0]
    if name in ("messaging.send_message", "messaging.send_broadcast", "messaging.manage_task"):
        return True
    if app in _OPERATIONAL_APPS and _action_of(name) == "view":
        return True
    return app == "messaging" and _action_of(name) in ("add", "change")


# Display names and descriptions are stored in English (data); gettext_noop marks them for the
# catalogue, and Role.label()/description_label() translate them when shown.
SYSTEM_ROLES = {
    "super_admin": (
        gettext_noop("Super administrator"),
        gettext_noop("Every permission, including roles and shards."),
        True, 0, lambda name: True,
    ),
    "administrator": (
        gettext_noop("Administrator"),
        gettext_noop("Runs the platform: everything except granting roles and shards."),
        True, 10, _is_admin_rule,
    ),
    "operator": (
        gettext_noop("Operator"),
        gettext_noop("Operates instances, accounts, contacts and messages (no deletions)."),
        False, 20, _is_operator_rule,
    ),
    "auditor": (
        gettext_noop("Auditor"),
        gettext_noop("Read-only access to everything, login history and audit exports."),
        False, 30, _is_auditor_rule,
    ),
    "integrator": (
        gettext_noop("Integrator (API)"),
        gettext_noop("API clients: read operations data, send messages and broadcasts."),
        False, 40, _is_integrator_rule,
    ),
}


# --- Labels ------------------------------------------------------------------------------------

_ACTION_VERBS = {
    "add": gettext_noop("add"),
    "change": gettext_noop("change"),
    "delete": gettext_noop("delete"),
    "view": gettext_noop("view"),
}


def permission_label(name: str, display_name: str | None = None) -> str:
    """A permission as people read it, in the current language.

    The `permissions` table stores Django's English names ("Can add backup code"); this
    translates them at display time: platform actions by their registered label, the standard
    add/change/delete/view permissions as "Can <verb> <the model's verbose name>", anything else
    through the catalogue, falling back to what is stored, then to the name itself.
    """
    action = registry.actions().get(name)
    if action is not None:
        return str(action.display_name)
    app_label, _sep, codename = str(name).partition(".")
    verb, _sep, model_name = codename.partition("_")
    if verb in _ACTION_VERBS and model_name:
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:
            model = None
        if model is not None:
            return _("Can %(action)s %(model)s") % {
                "action": _(_ACTION_VERBS[verb]), "model": model._meta.verbose_name,
            }
    return _(display_name) if display_name else str(name)


# --- Synchronisation -------------------------------------------------------------------------


def _declared_permissions():
    """name -> (display_name, module, resource, action) from auth_permission and the registry."""
    declared = {}
    for perm in AuthPermission.objects.select_related("content_type"):
        if "." in perm.codename:  # per-instance grant carriers, see grant_instance()
            continue
        app_label = perm.content_type.app_label
        name = f"{app_label}.{perm.codename}"
        declared[name] = (perm.name[:100], app_label, perm.content_type.model, _action_of(name))
    # Stored in the source language whatever the process's active one (permission_label
    # translates at display time): a start in another language must not rewrite every row
    # (each rewrite is an audit row).
    with translation.override(None):
        for action in registry.actions().values():
            declared[action.name] = (
                str(action.display_name)[:100], action.module, action.resource or None,
                action.codename,
            )
    return declared


@transaction.atomic
def sync_permissions() -> tuple[int, int, int]:
    """Bring the `permissions` table in step with the declared permissions (idempotent).

    New names are inserted, changed labels updated, vanished names disabled (not deleted, so
    that roles keep their rows should the permission come back). Returns (created, updated,
    disabled) counts.
    """
    declared = _declared_permissions()
    existing = {p.name: p for p in Permission.objects.select_for_update()}
    created = updated = disabled = 0
    to_create = []
    for order, (name, (display, module, resource, action)) in enumerate(sorted(declared.items())):
        row = existing.get(name)
        if row is None:
            to_create.append(
                Permission(
                    name=name, display_name=display, module=module, resource=resource,
                    action=action, is_system=True, sort_order=order, status=Status.ENABLED,
                )
            )
            continue
        changes = {
            "display_name": display, "module": module, "resource": resource, "action": action,
            "status": Status.ENABLED, "is_system": True,
        }
        if any(getattr(row, k) != v for k, v in changes.items()):
            for k, v in changes.items():
                setattr(row, k, v)
            row.save()
            updated += 1
    Permission.objects.bulk_create(to_create)
    created = len(to_create)
    vanished = [n for n, row in existing.items() if n not in declared and row.is_system and row.status]
    if vanished:
        disabled = Permission.objects.filter(name__in=vanished).update(status=Status.DISABLED)
    if created or updated or disabled:
        bump_generation()
    return created, updated, disabled


@transaction.atomic
def seed_roles() -> int:
    """Create or update the system roles and set their permissions exactly (idempotent)."""
    sync_permissions()
    names = list(Permission.objects.filter(status=Status.ENABLED).values_list("name", "id"))
    changed = 0
    for role_name, (display, description, two_factor, order, rule) in SYSTEM_ROLES.items():
        role, created = Role.all_objects.get_or_create(
            name=role_name,
            defaults={
                "display_name": display, "description": description, "is_system": True,
                "require_two_factor": two_factor, "sort_order": order,
            },
        )
        if not created and (role.deleted_at or not role.is_system or role.status != Status.ENABLED):
            role.deleted_at = None
            role.is_system = True
            role.status = Status.ENABLED
            role.save()
        updated = set_role_permissions(role, [pid for name, pid in names if rule(name)])
        changed += int(created or updated)
    bump_generation()
    return changed


# --- Role grants -----------------------------------------------------------------------------


def _can_grant(actor):
    return actor.is_superuser or actor.has_perm("accounts.manage_roles")


@transaction.atomic
def grant_role(user: User, role: Role, granted_by: User | None,
               expires_at: datetime | None = None) -> UserRole:
    """Grant (or re-grant with a new expiry) a role. Only holders of accounts.manage_roles;
    a role requiring more than super admin rights (super_admin) only by super admins."""
    if granted_by is not None and not _can_grant(granted_by):
        raise PermissionDeniedError(_("You may not grant roles."))
    if granted_by is not None and role.name == "super_admin" and not granted_by.is_superuser:
        raise PermissionDeniedError(_("Only a super administrator may grant the super administrator role."))
    if expires_at is not None and expires_at <= timezone.now():
        raise DomainError(fields={"expires_at": _("The expiry must lie in the future.")})
    grant, _created = UserRole.objects.update_or_create(
        user=user, role=role, defaults={"granted_by": granted_by, "expires_at": expires_at}
    )
    transaction.on_commit(lambda: forget_user(user.pk))
    return grant


@transaction.atomic
def revoke_role(user: User, role: Role, revoked_by: User | None = None) -> int:
    if revoked_by is not None and not _can_grant(revoked_by):
        raise PermissionDeniedError(_("You may not revoke roles."))
    deleted, _rows = UserRole.objects.filter(user=user, role=role).delete()
    transaction.on_commit(lambda: forget_user(user.pk))
    return deleted


# --- Object grants on instances --------------------------------------------------------------


def instance_model() -> type[models.Model] | None:
    try:
        return apps.get_model("instances", "WeworkInstance")
    except LookupError:
        return None


def _carrier_permission(name):
    """The auth_permission row that carries `name` as a grant on an instance.

    guardian stores object permissions against the object's content type, so a grant of
    `contacts.view_contact` on instance 7 is stored as the permission with codename
    "contacts.view_contact" on the instance content type (created on demand). Permissions of
    the instance model itself use their own row.
    """
    model = instance_model()
    ct = ContentType.objects.get_for_model(model)
    app_label, codename = name.split(".", 1)
    if app_label == ct.app_label:
        native = AuthPermission.objects.filter(content_type=ct, codename=codename).first()
        if native is not None:
            return native
    display = Permission.objects.filter(name=name).values_list("display_name", flat=True).first()
    perm, _created = AuthPermission.objects.get_or_create(
        content_type=ct, codename=name,
        defaults={"name": f"{display or name} (per instance)"[:255]},
    )
    return perm


def grantable_on_instance(name: object) -> bool:
    """Whether `name` may be granted per instance: it concerns the instance or a model below it
    (a model with INSTANCE_PATH), or is an instance-scoped platform action. Anything but a
    string "app_label.codename" is not."""
    if not isinstance(name, str):
        return False
    action = registry.actions().get(name)
    if action is not None:
        return action.instance_scoped
    app_label, dot, codename = name.partition(".")
    if not dot or not app_label or not codename:
        return False
    try:
        app = apps.get_app_config(app_label)
    except LookupError:
        return False
    prefix, _sep, model_name = codename.partition("_")
    if prefix not in STANDARD_ACTIONS:
        return False
    for model in app.get_models():
        if model._meta.model_name == model_name:
            return getattr(model, "INSTANCE_PATH", None) is not None
    return False


def check_grantable_on_instance(names: Iterable[object]) -> list[str]:
    """The names as a list when every one may be granted per instance (grantable_on_instance);
    else a DomainError on `permissions` naming the entries that may not."""
    names = list(names)
    bad = [n if isinstance(n, str) else repr(n) for n in names if not grantable_on_instance(n)]
    if bad:
        raise DomainError(fields={"permissions": _("Not grantable per instance: %(names)s")
                                  % {"names": ", ".join(bad)}})
    return [n for n in names if isinstance(n, str)]  # every one is, after the check


@transaction.atomic
def grant_instance(user: User, instance: models.Model, permissions: Iterable[str] | Role,
                   granted_by: User | None = None) -> list[str]:
    """Grant permission names (or every permission of a Role) on one instance.

    The grant covers the instance and everything below it (accounts, contacts, groups,
    messages, tasks). Names that cannot apply per instance raise a DomainError naming them.
    """
    if granted_by is not None and not _can_grant(granted_by):
        raise PermissionDeniedError(_("You may not grant access."))
    if isinstance(permissions, Role):
        names = [n for n in permissions.permissions.values_list("name", flat=True) if grantable_on_instance(n)]
    else:
        names = check_grantable_on_instance(permissions)
    for name in names:
        UserObjectPermission.objects.assign_perm(_carrier_permission(name), user, instance)
    transaction.on_commit(lambda: forget_user(user.pk))
    return names


@transaction.atomic
def revoke_instance(user: User, instance: models.Model, permissions: Iterable[str] | None = None,
                    revoked_by: User | None = None) -> int:
    if revoked_by is not None and not _can_grant(revoked_by):
        raise PermissionDeniedError(_("You may not revoke access."))
    rows = UserObjectPermission.objects.filter(
        user=user, content_type=ContentType.objects.get_for_model(instance),
        object_pk=str(instance.pk),
    )
    if permissions is not None:
        perms = [_carrier_permission(n).pk for n in check_grantable_on_instance(permissions)]
        rows = rows.filter(permission_id__in=perms)
    deleted, _rows = rows.delete()
    transaction.on_commit(lambda: forget_user(user.pk))
    return deleted


def purge_instance_grants(instance_pk: int) -> None:
    """Remove object grants of a (hard-)deleted instance: guardian leaves them orphaned."""
    model = instance_model()
    if model is None:
        return
    ct = ContentType.objects.get_for_model(model)
    users = list(
        UserObjectPermission.objects.filter(content_type=ct, object_pk=str(instance_pk))
        .values_list("user_id", flat=True).distinct()
    )
    UserObjectPermission.objects.filter(content_type=ct, object_pk=str(instance_pk)).delete()
    GroupObjectPermission.objects.filter(content_type=ct, object_pk=str(instance_pk)).delete()
    for user_id in users:
        forget_user(user_id)

