"""Roles, permissions and grants (角色表, 权限表, 用户角色关联表, 角色权限关联表), and the
per-instance object grants kept in guardian's table."""
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _
from guardian.models import UserObjectPermission

from wework.db.fields import DateTimeField, TextField, TinyIntegerField, UnsignedBigAutoField
from wework.db.models import (
    CreatedAtModel, SoftDeleteModel, SoftDeleteQuerySet, TableIndex, TableUniqueConstraint,
    TimestampedModel,
)


class Status(models.IntegerChoices):
    DISABLED = 0, _("Disabled")
    ENABLED = 1, _("Enabled")


class RoleQuerySet(SoftDeleteQuerySet):
    def usable(self):
        return self.filter(deleted_at__isnull=True, status=Status.ENABLED)


class RoleManager(models.Manager.from_queryset(RoleQuerySet)):
    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)


class AllRolesManager(models.Manager.from_queryset(RoleQuerySet)):
    pass


class Role(SoftDeleteModel, TimestampedModel):
    """A named set of permissions (角色表), granted to users through `user_roles`.

    A role grant covers every object: a user holding a role with `contacts.view_contact` sees
    every contact. Per-instance access is granted with object permissions instead (see
    accounts/scoping.py).
    """

    id = UnsignedBigAutoField(primary_key=True, db_comment="角色ID")
    name = models.CharField(_("name"), max_length=50, db_comment="角色标识")
    display_name = models.CharField(_("display name"), max_length=100, db_comment="角色显示名")
    description = TextField(_("description"), null=True, blank=True, db_comment="角色描述")
    is_system = models.BooleanField(
        _("system role"), default=False, db_default=False, db_comment="是否系统角色"
    )
    is_default = models.BooleanField(
        _("default role"), default=False, db_default=False,
        help_text=_("Granted to new users automatically."), db_comment="是否默认角色",
    )
    sort_order = models.IntegerField(_("sort order"), default=0, db_default=0, db_comment="排序")
    status = TinyIntegerField(
        _("status"), choices=Status.choices, default=Status.ENABLED, db_default=Status.ENABLED,
        db_comment="状态: 0-禁用, 1-启用",
    )
    require_two_factor = models.BooleanField(
        _("requires two-factor login"), default=False, db_default=False,
        help_text=_("Holders must log in with a one-time code."),
        db_comment="是否要求双因子认证",
    )
    permissions = models.ManyToManyField(
        "accounts.Permission", through="accounts.RolePermission", related_name="roles",
        verbose_name=_("permissions"), blank=True,
    )

    objects = RoleManager()
    all_objects = AllRolesManager()

    class Meta:
        db_table = "roles"
        db_table_comment = "角色表"
        verbose_name = _("role")
        verbose_name_plural = _("roles")
        base_manager_name = "all_objects"
        ordering = ["sort_order", "id"]
        permissions = [("manage_roles", _("Grant and revoke roles"))]
        constraints = [TableUniqueConstraint(fields=["name"], name="uk_name")]
        indexes = [
            TableIndex(fields=["status"], name="idx_status"),
            TableIndex(fields=["sort_order"], name="idx_sort"),
            TableIndex(fields=["deleted_at"], name="idx_deleted"),
        ]

    def __str__(self):
        return str(self.label())

    def label(self):
        """The display name; a system role's stored English name shown in the user's language
        (seed_roles stores the English text, marked for the catalogue)."""
        text = self.display_name or self.name
        return gettext(text) if self.is_system and text else text

    def description_label(self):
        text = self.description or ""
        return gettext(text) if self.is_system and text else text


class Permission(TimestampedModel):
    """A permission (权限表): `<app>.<action>_<model>` or a platform action (`app.action`).

    Kept in step with Django's permissions (auth_permission) and the platform's action
    registry (accounts/registry.py) by `accounts.services.sync_permissions`.
    """

    id = UnsignedBigAutoField(primary_key=True, db_comment="权限ID")
    name = models.CharField(_("name"), max_length=100, db_comment="权限标识")
    display_name = models.CharField(_("display name"), max_length=100, db_comment="权限显示名")
    description = TextField(_("description"), null=True, blank=True, db_comment="权限描述")
    module = models.CharField(_("module"), max_length=50, db_comment="所属模块")
    resource = models.CharField(
        _("resource"), max_length=100, null=True, blank=True, db_comment="资源"
    )
    action = models.CharField(_("action"), max_length=50, null=True, blank=True, db_comment="操作")
    is_system = models.BooleanField(
        _("system permission"), default=False, db_default=False, db_comment="是否系统权限"
    )
    sort_order = models.IntegerField(_("sort order"), default=0, db_default=0, db_comment="排序")
    status = TinyIntegerField(
        _("status"), choices=Status.choices, default=Status.ENABLED, db_default=Status.ENABLED,
        db_comment="状态: 0-禁用, 1-启用",
    )

    class Meta:
        db_table = "permissions"
        db_table_comment = "权限表"
        verbose_name = _("permission")
        verbose_name_plural = _("permissions")
        ordering = ["module", "sort_order", "name"]
        constraints = [TableUniqueConstraint(fields=["name"], name="uk_name")]
        indexes = [
            TableIndex(fields=["module"], name="idx_module"),
            TableIndex(fields=["resource"], name="idx_resource"),
            TableIndex(fields=["status"], name="idx_status"),
        ]

    def __str__(self):
        return self.name


def _related_str(obj, name):
    """str() of a foreign key's object for a through model's __str__; "?" while unset."""
    try:
        value = getattr(obj, name)
    except ObjectDoesNotExist:
        value = None
    return str(value) if value is not None else "?"


class UserRoleQuerySet(models.QuerySet):
    def active(self, now=None):
        """Grants in force now: not expired (to the second), role enabled and not deleted."""
        now = now or timezone.now()
        return self.filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now),
            role__deleted_at__isnull=True,
            role__status=Status.ENABLED,
        )


class UserRole(CreatedAtModel):
    """A role granted to a user (用户角色关联表), optionally until `expires_at`."""

    id = UnsignedBigAutoField(primary_key=True, db_comment="ID")
    user = models.ForeignKey(
        "accounts.User", on_delete=models.DB_CASCADE, related_name="role_grants",
        db_index=False, verbose_name=_("user"), db_comment="用户ID",
    )
    role = models.ForeignKey(
        Role, on_delete=models.DB_CASCADE, related_name="grants", db_index=False,
        verbose_name=_("role"), db_comment="角色ID",
    )
    granted_by = models.ForeignKey(
        "accounts.User", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
        db_column="granted_by", null=True, blank=True, related_name="+",
        verbose_name=_("granted by"), db_comment="授权人ID",
    )
    expires_at = DateTimeField(
        _("expires at"), null=True, blank=True,
        help_text=_("The grant ends at this second; empty means it never expires."),
        db_comment="过期时间",
    )

    objects = UserRoleQuerySet.as_manager()

    class Meta:
        db_table = "user_roles"
        db_table_comment = "用户角色关联表"
        verbose_name = _("role grant")
        verbose_name_plural = _("role grants")
        constraints = [TableUniqueConstraint(fields=["user", "role"], name="uk_user_role")]
        indexes = [
            TableIndex(fields=["user"], name="idx_user"),
            TableIndex(fields=["role"], name="idx_role"),
            TableIndex(fields=["expires_at"], name="idx_expires"),
        ]

    def __str__(self):
        # "alice → Operator" (the admin's recent actions and change messages show this)
        return f"{_related_str(self, 'user')} → {_related_str(self, 'role')}"


class RolePermission(CreatedAtModel):
    """A permission included in a role (角色权限关联表)."""

    id = UnsignedBigAutoField(primary_key=True, db_comment="ID")
    role = models.ForeignKey(
        Role, on_delete=models.DB_CASCADE, related_name="role_permissions", db_index=False,
        verbose_name=_("role"), db_comment="角色ID",
    )
    permission = models.ForeignKey(
        Permission, on_delete=models.DB_CASCADE, related_name="role_permissions",
        db_index=False, verbose_name=_("permission"), db_comment="权限ID",
    )

    class Meta:
        db_table = "role_permissions"
        db_table_comment = "角色权限关联表"
        verbose_name = _("role permission")
        verbose_name_plural = _("role permissions")
        constraints = [
            TableUniqueConstraint(fields=["role", "permission"], name="uk_role_permission")
        ]
        indexes = [
            TableIndex(fields=["role"], name="idx_role"),
            TableIndex(fields=["permission"], name="idx_permission"),
        ]

    def __str__(self):
        return f"{_related_str(self, 'role')} → {_related_str(self, 'permission')}"


class InstanceGrant(UserObjectPermission):
    """Object grants on instances (guardian's table, seen through the admin of accounts/).

    One row = one permission name on one instance for one user; see
    accounts.services.permissions.grant_instance.
    """

    class Meta:
        proxy = True
        verbose_name = _("instance grant")
        verbose_name_plural = _("instance grants")

    def __str__(self):
        # guardian's reads the instance (content_object): one query per row of the admin's
        # page, whose checkboxes are labelled with each row (issue 13)
        name = getattr(self, "instance_name", None)
        instance = f"{name} (#{self.object_pk})" if name else f"#{self.object_pk}"
        return f"{instance} | {self.user} | {self.permission.codename}"

    @property
    def permission_name(self):
        codename = self.permission.codename
        return codename if "." in codename else f"{self.permission.content_type.app_label}.{codename}"
