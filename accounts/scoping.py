"""Object scoping: which instances (and rows below them) a user may see or act on.

Models below an instance declare `INSTANCE_PATH`, the ORM path to their WeworkInstance:
"" for WeworkInstance itself, "instance", "account__instance", "group__account__instance", ...

Rules (see docs/access-control.md):
* super admins and holders of a role that includes the permission see every row;
* a user with object grants of the permission sees the rows of those instances only;
* models without INSTANCE_PATH are global: a role grant or nothing;
* sharded per-instance tables are reached through an instance: `can_access_instance()`;
* in a split layout (per-module databases) the path to the instance never joins across
  databases: `scope_filter` resolves it into id lists (wework.db.layout.cross_filter).
"""
from django.contrib.auth import get_permission_codename

from accounts.backends import resolve_access
from wework.db.layout import cross_filter


def _active(user):
    return bool(user and user.is_authenticated and user.is_active)


def model_perm(model, action):
    opts = model._meta
    return f"{opts.app_label}.{get_permission_codename(action, opts)}"


def has_global_perm(user, perm):
    if not _active(user):
        return False
    return user.is_superuser or perm in resolve_access(user).global_perms


def visible_instance_ids(user, perm):
    """None when the user holds `perm` on every instance, else the set of instance ids."""
    if not _active(user):
        return set()
    if user.is_superuser:
        return None
    access = resolve_access(user)
    if perm in access.global_perms:
        return None
    return {iid for iid, names in access.object_grants.items() if perm in names}


def may_use_model(user, perm, model=None):
    """Whether `perm` applies to at least some rows: a role grant, or (for models below an
    instance) an object grant on at least one instance. Decides list/add page access."""
    if has_global_perm(user, perm):
        return True
    if model is not None and getattr(model, "INSTANCE_PATH", None) is None:
        return False
    ids = visible_instance_ids(user, perm)
    return ids is None or bool(ids)


def scope_filter(model, ids):
    """The filter that keeps the rows below the instances `ids`. When the path crosses into
    another module's database (a split layout), the rows' own references are compared with id
    lists read there first (wework.db.layout.cross_filter): no join across databases."""
    path = getattr(model, "INSTANCE_PATH", None)
    if path == "":
        return {"pk__in": ids}
    return cross_filter(model, f"{path}__in", ids)


def scope_queryset(qs, user, perm, *extra_perms):
    """Rows of `qs` the user may access with `perm` (or any of `extra_perms`)."""
    model = qs.model
    if not _active(user):
        return qs.none()
    perms = (perm, *extra_perms)
    if any(has_global_perm(user, p) for p in perms):
        return qs
    if getattr(model, "INSTANCE_PATH", None) is None:
        return qs.none()
    ids = set()
    for p in perms:
        found = visible_instance_ids(user, p)
        if found is None:
            return qs
        ids |= found
    if not ids:
        return qs.none()
    return qs.filter(**scope_filter(model, sorted(ids)))


def can_access_instance(user, instance_id, perm="instances.view_weworkinstance"):
    """For sharded per-instance tables: the user may use `perm` on that instance."""
    ids = visible_instance_ids(user, perm)
    return ids is None or int(instance_id) in ids
