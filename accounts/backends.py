"""The role backend: authentication with lockout, and permissions through roles.

Replaces Django's ModelBackend and guardian's ObjectPermissionBackend:

* `has_perm(user, perm)` is true when an active, unexpired grant (`user_roles`, honoured to the
  second) of an enabled role includes `perm` (`role_permissions`).
* `has_perm(user, perm, obj)` is true when the role grant holds (a role grant covers every
  object), or when the user holds an object grant of `perm` on the instance that owns `obj`
  (`obj`'s model has INSTANCE_PATH; the grant lives in guardian's table, see
  accounts.services.permissions.grant_instance).
* Inactive users (disabled, locked, deleted) have no permission.

Resolved permissions are cached on the user object for the request and in the cache across
requests, never beyond the next grant expiry nor the configured TTL.
"""
from datetime import datetime, timezone as dt_timezone

from django.conf import settings
from django.contrib.auth.backends import BaseBackend
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.utils import timezone
from guardian.models import UserObjectPermission

from accounts.models import Permission, Status, User, UserRole
from accounts.services import auth as auth_services
from accounts.services import cache as acl_cache
from accounts.services import permissions as perm_services

_NEVER = None


class ResolvedAccess:
    __slots__ = ("global_perms", "object_grants", "valid_until", "generation", "two_factor")

    def __init__(self, global_perms, object_grants, valid_until, generation, two_factor=False):
        self.two_factor = bool(two_factor)  # a role in force requires two-factor login
        self.global_perms = frozenset(global_perms)
        self.object_grants = {k: frozenset(v) for k, v in object_grants.items()}
        self.valid_until = valid_until  # aware datetime or None
        self.generation = generation

    def fresh(self, now):
        return self.valid_until is None or now < self.valid_until

    def object_perm_names(self):
        names = set()
        for perms in self.object_grants.values():
            names |= perms
        return names


def _resolve(user, now):
    grants = list(
        UserRole.objects.active(now).filter(user_id=user.pk)
        .values_list("role_id", "expires_at", "role__require_two_factor")
    )
    role_ids = [role_id for role_id, _exp, _2fa in grants]
    expiries = [exp for _role, exp, _2fa in grants if exp is not None]
    two_factor = any(flag for _role, _exp, flag in grants)
    names = set()
    if role_ids:
        names = set(
            Permission.objects.filter(
                role_permissions__role_id__in=role_ids, status=Status.ENABLED
            ).values_list("name", flat=True)
        )
    object_grants = _object_grants(user)
    return names, object_grants, (min(expiries) if expiries else _NEVER), two_factor


def _object_grants(user):
    model = perm_services.instance_model()
    if model is None:
        return {}
    ct = ContentType.objects.get_for_model(model)
    grants = {}
    rows = UserObjectPermission.objects.filter(user_id=user.pk, content_type=ct).values_list(
        "object_pk", "permission__codename"
    )
    for object_pk, codename in rows:
        name = codename if "." in codename else f"{ct.app_label}.{codename}"
        try:
            grants.setdefault(int(object_pk), set()).add(name)
        except ValueError:
            continue
    return grants


def resolve_access(user):
    """The user's ResolvedAccess, from the request cache, the shared cache or the database."""
    now = timezone.now()
    cached = getattr(user, "_access_cache", None)
    if cached is not None and cached.fresh(now):
        return cached
    gen_key, user_key = acl_cache.GENERATION_KEY, acl_cache.user_cache_key(user.pk)
    got = cache.get_many([gen_key, user_key])
    generation = got.get(gen_key)
    if generation is None:
        generation = acl_cache.generation()
    shared = got.get(user_key)
    if shared is not None:
        names, grants, valid_until_ts, gen, two_factor = shared
        valid_until = (
            datetime.fromtimestamp(valid_until_ts, tz=dt_timezone.utc) if valid_until_ts else None
        )
        access = ResolvedAccess(names, grants, valid_until, gen, two_factor)
        if gen == generation and access.fresh(now):
            user._access_cache = access
            return access
    names, grants, valid_until, two_factor = _resolve(user, now)
    access = ResolvedAccess(names, grants, valid_until, generation, two_factor)
    ttl = getattr(settings, "ACCESS_CACHE_SECONDS", 300)
    if valid_until is not None:
        ttl = min(ttl, int((valid_until - now).total_seconds()))
    if ttl > 0:
        cache.set(
            user_key,
            (
                sorted(names),
                {k: sorted(v) for k, v in grants.items()},
                valid_until.timestamp() if valid_until else None,
                generation,
                two_factor,
            ),
            ttl,
        )
    user._access_cache = access
    return access


def instance_id_of(obj):
    """The id of the WeworkInstance that owns `obj` (via its model's INSTANCE_PATH), or None."""
    path = getattr(type(obj), "INSTANCE_PATH", None)
    if path is None:
        return None
    if path == "":
        return obj.pk
    target = obj
    parts = path.split("__")
    for part in parts[:-1]:
        target = getattr(target, part, None)
        if target is None:
            return None
    return getattr(target, f"{parts[-1]}_id", None)


class RoleBackend(BaseBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if username is None or password is None:
            return None
        return auth_services.check_password_login(
            request, username, password, channel=kwargs.get("channel", "admin")
        )

    def get_user(self, user_id):
        try:
            user = User.objects.get(pk=user_id)
        except User.DoesNotExist:
            return None
        return user if user.is_active else None

    # --- permissions ----------------------------------------------------------------------

    def _usable(self, user_obj):
        return bool(user_obj and user_obj.is_active and not user_obj.is_anonymous)

    def get_all_permissions(self, user_obj, obj=None):
        if not self._usable(user_obj):
            return set()
        if user_obj.is_superuser:
            return set(Permission.objects.filter(status=Status.ENABLED).values_list("name", flat=True))
        access = resolve_access(user_obj)
        perms = set(access.global_perms)
        if obj is not None:
            instance_id = instance_id_of(obj)
            perms |= access.object_grants.get(instance_id, frozenset())
        return perms

    def get_user_permissions(self, user_obj, obj=None):
        return self.get_all_permissions(user_obj, obj)

    def get_group_permissions(self, user_obj, obj=None):
        return set()

    def has_perm(self, user_obj, perm, obj=None):
        if not self._usable(user_obj):
            return False
        if user_obj.is_superuser:
            return True
        access = resolve_access(user_obj)
        if perm in access.global_perms:
            return True
        if obj is None:
            return False
        instance_id = instance_id_of(obj)
        return instance_id is not None and perm in access.object_grants.get(instance_id, ())

    def has_module_perms(self, user_obj, app_label):
        if not self._usable(user_obj):
            return False
        if user_obj.is_superuser:
            return True
        access = resolve_access(user_obj)
        prefix = f"{app_label}."
        return any(p.startswith(prefix) for p in access.global_perms) or any(
            p.startswith(prefix) for p in access.object_perm_names()
        )
