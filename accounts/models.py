"""User auth tables of the design (用户认证): users, roles, permissions, grants, sessions.

Extra tables and columns beyond `seed_schema.sql` are listed in docs/access-control.md
(section "Schema decisions") and docs/schema.md.
"""
import time
from base64 import b32encode
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _

from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from guardian.models import UserObjectPermission
from django_otp.oath import TOTP
from django_otp.util import random_hex

from wework.db.fields import (
    DateTimeField,
    EncryptedTextField,
    TextField,
    TinyIntegerField,
    UnsignedBigAutoField,
)
from wework.db.models import SoftDeleteModel, SoftDeleteQuerySet, TableIndex, TableUniqueConstraint


class UserStatus(models.IntegerChoices):
    DISABLED = 0, _("Disabled")
    ENABLED = 1, _("Enabled")
    LOCKED = 2, _("Locked")


class UserManager(BaseUserManager.from_queryset(SoftDeleteQuerySet)):
    """Hides soft-deleted users; creates users with hashed passwords."""

    use_in_migrations = True

    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)

    def _create_user(self, username, email, password, **extra):
        if not username:
            raise ValueError("A username is required.")
        user = self.model(username=username, email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, username, email, password=None, **extra):
        extra.setdefault("is_superuser", False)
        return self._create_user(username, email, password, **extra)

    def create_superuser(self, username, email, password=None, **extra):
        extra["is_superuser"] = True
        return self._create_user(username, email, password, **extra)


class AllUsersManager(BaseUserManager.from_queryset(SoftDeleteQuerySet)):
    """Every user row, deleted ones included."""


class User(AbstractBaseUser, PermissionsMixin, SoftDeleteModel):
    """A staff member of the platform (用户表).

    `password_hash` holds Django's full hash string (`algorithm$iterations$salt$hash`), which
    carries its own salt; `salt` mirrors that salt for the design's column (see docs/schema.md).
    """

    id = UnsignedBigAutoField(primary_key=True, db_comment="用户ID")
    username = models.CharField(_("username"), max_length=50, db_comment="用户名")
    email = models.CharField(_("email"), max_length=100, db_comment="邮箱")
    phone = models.CharField(
        _("phone"), max_length=20, null=True, blank=True, db_comment="手机号"
    )
    nickname = models.CharField(
        _("nickname"), max_length=100, null=True, blank=True, db_comment="昵称"
    )
    avatar_url = models.CharField(
        _("avatar URL"), max_length=500, null=True, blank=True, db_comment="头像URL"
    )
    password = models.CharField(
        _("password"), max_length=255, db_column="password_hash", db_comment="密码哈希"
    )
    salt = models.CharField(_("salt"), max_length=32, editable=False, db_comment="密码盐值")
    status = TinyIntegerField(
        _("status"),
        choices=UserStatus.choices,
        default=UserStatus.ENABLED,
        db_default=UserStatus.ENABLED,
        db_comment="状态: 0-禁用, 1-启用, 2-锁定",
    )
    is_superuser = models.BooleanField(
        _("super admin"),
        default=False,
        db_default=False,
        db_column="is_super_admin",
        help_text=_("Has every permission without explicit grants."),
        db_comment="是否超级管理员",
    )
    last_login = DateTimeField(
        _("last login"), null=True, blank=True, db_column="last_login_time",
        db_comment="最后登录时间",
    )
    last_login_ip = models.CharField(
        _("last login IP"), max_length=45, null=True, blank=True, db_comment="最后登录IP"
    )
    login_fail_count = models.IntegerField(
        _("failed logins"), default=0, db_default=0, db_comment="登录失败次数"
    )
    locked_until = DateTimeField(
        _("locked until"), null=True, blank=True, db_comment="锁定到期时间"
    )
    email_verified = models.BooleanField(
        _("email verified"), default=False, db_default=False, db_comment="邮箱是否验证"
    )
    phone_verified = models.BooleanField(
        _("phone verified"), default=False, db_default=False, db_comment="手机是否验证"
    )
    two_factor_enabled = models.BooleanField(
        _("two-factor enabled"), default=False, db_default=False,
        db_comment="是否启用双因子认证",
    )
    two_factor_secret = models.CharField(
        _("two-factor secret"), max_length=32, null=True, blank=True, editable=False,
        db_comment="双因子认证密钥",
    )
    created_at = DateTimeField(
        _("created at"), default=timezone.now, db_default=Now(), editable=False,
        db_comment="创建时间",
    )
    updated_at = DateTimeField(
        _("updated at"), auto_now=True, db_default=Now(), db_comment="更新时间"
    )

    objects = UserManager()
    all_objects = AllUsersManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email"]

    class Meta:
        db_table = "users"
        db_table_comment = "用户表"
        verbose_name = _("user")
        verbose_name_plural = _("users")
        base_manager_name = "all_objects"
        constraints = [
            TableUniqueConstraint(fields=["username"], name="uk_username"),
            TableUniqueConstraint(fields=["email"], name="uk_email"),
            TableUniqueConstraint(fields=["phone"], name="uk_phone"),
        ]
        indexes = [
            TableIndex(fields=["status"], name="idx_status"),
            TableIndex(fields=["last_login"], name="idx_last_login"),
            TableIndex(fields=["created_at"], name="idx_created"),
            TableIndex(fields=["deleted_at"], name="idx_deleted"),
        ]

    def __str__(self):
        return self.username

    @property
    def is_active(self):
        """Enabled and not deleted; a locked user is active again once `locked_until` passes.

        While locked (automatic lockout with `locked_until`, or an administrator's lock without
        one) the user can neither log in nor use existing sessions and tokens.
        """
        if self.deleted_at is not None:
            return False
        if self.status == UserStatus.ENABLED:
            return True
        if self.status == UserStatus.LOCKED and self.locked_until is not None:
            return self.locked_until <= timezone.now()
        return False

    @property
    def is_locked(self):
        if self.status != UserStatus.LOCKED:
            return False
        return self.locked_until is None or self.locked_until > timezone.now()

    @property
    def is_staff(self):
        """Every platform user works in the admin; permissions decide what they see."""
        return self.is_active

    def set_password(self, raw_password):
        super().set_password(raw_password)
        self.salt = _salt_of(self.password)
        self._password_changed = True  # post_save ends the user's API sessions

    def check_password(self, raw_password):
        """As Django's, but a hash upgrade on login also updates `salt` and is not a password
        change (API sessions stay)."""
        from django.contrib.auth.hashers import check_password

        def upgrade(raw):
            AbstractBaseUser.set_password(self, raw)
            self.salt = _salt_of(self.password)
            self._password = None
            User.all_objects.filter(pk=self.pk).update(password=self.password, salt=self.salt)

        return check_password(raw_password, self.password, upgrade)


def _salt_of(encoded):
    """The salt part of a Django hash string, for the design's `salt` column."""
    from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX, identify_hasher

    if not encoded or encoded.startswith(UNUSABLE_PASSWORD_PREFIX):
        return ""
    try:
        return str(identify_hasher(encoded).decode(encoded).get("salt") or "")[:32]
    except (ValueError, KeyError, TypeError):
        return ""


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


class Role(SoftDeleteModel):
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
    created_at = DateTimeField(
        _("created at"), default=timezone.now, db_default=Now(), editable=False,
        db_comment="创建时间",
    )
    updated_at = DateTimeField(
        _("updated at"), auto_now=True, db_default=Now(), db_comment="更新时间"
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


class Permission(models.Model):
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
    created_at = DateTimeField(
        _("created at"), default=timezone.now, db_default=Now(), editable=False,
        db_comment="创建时间",
    )
    updated_at = DateTimeField(
        _("updated at"), auto_now=True, db_default=Now(), db_comment="更新时间"
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


class UserRole(models.Model):
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
    created_at = DateTimeField(
        _("created at"), default=timezone.now, db_default=Now(), editable=False,
        db_comment="创建时间",
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

    @property
    def is_expired(self):
        return self.expires_at is not None and self.expires_at <= timezone.now()


class RolePermission(models.Model):
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
    created_at = DateTimeField(
        _("created at"), default=timezone.now, db_default=Now(), editable=False,
        db_comment="创建时间",
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


class SessionKind(models.IntegerChoices):
    API = 1, _("API token")
    BROWSER = 2, _("Browser")


class UserSession(models.Model):
    """A login session (用户会话表): an API token pair or a browser login.

    API sessions: the tokens are `wwa.<session_id>.<secret>` (access) and
    `wwr.<session_id>.<secret>` (refresh); only HMAC-SHA256 digests (server-side pepper) are
    stored. Each refresh creates a new row in the same `family_id` and marks the old one
    rotated; a rotated refresh token presented again revokes the whole family.
    Browser sessions hold random, unusable digests and are tied to the Django session through
    `session_id`.
    """

    id = UnsignedBigAutoField(primary_key=True, db_comment="会话ID")
    session_id = models.CharField(_("session id"), max_length=128, db_comment="会话标识")
    user = models.ForeignKey(
        "accounts.User", on_delete=models.DB_CASCADE, related_name="login_sessions",
        db_index=False, verbose_name=_("user"), db_comment="用户ID",
    )
    access_token_hash = models.CharField(max_length=64, editable=False, db_comment="AccessToken哈希")
    refresh_token_hash = models.CharField(
        max_length=64, editable=False, db_comment="RefreshToken哈希"
    )
    device_type = models.CharField(
        _("device type"), max_length=20, null=True, blank=True, db_comment="设备类型"
    )
    device_id = models.CharField(
        _("device id"), max_length=100, null=True, blank=True, db_comment="设备ID"
    )
    user_agent = TextField(_("user agent"), null=True, blank=True, db_comment="用户代理")
    ip_address = models.CharField(_("IP address"), max_length=45, db_comment="IP地址")
    location = models.CharField(
        _("location"), max_length=200, null=True, blank=True, db_comment="登录位置"
    )
    expires_at = DateTimeField(_("expires at"), db_comment="过期时间")
    last_activity = DateTimeField(
        _("last activity"), default=timezone.now, db_default=Now(), db_comment="最后活动时间"
    )
    is_active = models.BooleanField(
        _("active"), default=True, db_default=True, db_comment="是否活跃"
    )
    created_at = DateTimeField(
        _("created at"), default=timezone.now, db_default=Now(), editable=False,
        db_comment="创建时间",
    )
    # Extra columns (not in the design), see docs/access-control.md.
    kind = TinyIntegerField(
        _("kind"), choices=SessionKind.choices, default=SessionKind.API,
        db_default=SessionKind.API, db_column="session_type",
        db_comment="会话类型: 1-API令牌, 2-浏览器",
    )
    family_id = models.CharField(
        _("token family"), max_length=128, db_comment="令牌族标识(首个会话标识)"
    )
    access_expires_at = DateTimeField(
        _("access token expires at"), null=True, blank=True, db_comment="AccessToken过期时间"
    )
    rotated_at = DateTimeField(
        _("rotated at"), null=True, blank=True, db_comment="RefreshToken轮换时间"
    )
    revoked_at = DateTimeField(_("revoked at"), null=True, blank=True, db_comment="撤销时间")
    revoke_reason = models.CharField(
        _("revoke reason"), max_length=50, null=True, blank=True, db_comment="撤销原因"
    )

    class Meta:
        db_table = "user_sessions"
        db_table_comment = "用户会话表"
        verbose_name = _("session")
        verbose_name_plural = _("sessions")
        ordering = ["-last_activity"]
        constraints = [
            TableUniqueConstraint(fields=["session_id"], name="uk_session"),
            TableUniqueConstraint(fields=["access_token_hash"], name="uk_access_token"),
            TableUniqueConstraint(fields=["refresh_token_hash"], name="uk_refresh_token"),
        ]
        indexes = [
            TableIndex(fields=["user"], name="idx_user"),
            TableIndex(fields=["expires_at"], name="idx_expires"),
            TableIndex(fields=["last_activity"], name="idx_activity"),
            TableIndex(fields=["device_id"], name="idx_device"),
            TableIndex(fields=["family_id"], name="idx_family"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.session_id[:12]}"

    @property
    def is_usable(self):
        return self.is_active and self.revoked_at is None and self.expires_at > timezone.now()


class LoginResult(models.TextChoices):
    SUCCESS = "success", _("Success")
    BAD_CREDENTIALS = "bad_credentials", _("Wrong username or password")
    BAD_OTP = "bad_otp", _("Wrong or missing one-time code")
    LOCKED = "locked", _("Account locked")
    INACTIVE = "inactive", _("Account disabled")
    THROTTLED = "throttled", _("Too many attempts")
    LOCKED_NOW = "locked_now", _("Wrong password; account locked")


class LoginLog(models.Model):
    """Every login attempt (登录日志表), successful or not. The design names it without DDL."""

    id = UnsignedBigAutoField(primary_key=True, db_comment="日志ID")
    user = models.ForeignKey(
        "accounts.User", on_delete=models.DB_SET_NULL, null=True, blank=True,
        related_name="login_logs", db_index=False, verbose_name=_("user"), db_comment="用户ID",
    )
    username = models.CharField(_("username"), max_length=50, db_comment="登录用户名")
    success = models.BooleanField(_("success"), default=False, db_default=False, db_comment="是否成功")
    result = models.CharField(
        _("result"), max_length=20, choices=LoginResult.choices, db_comment="结果/失败原因"
    )
    channel = models.CharField(
        _("channel"), max_length=20, db_comment="登录渠道: admin, api, refresh"
    )
    ip_address = models.CharField(_("IP address"), max_length=45, db_comment="IP地址")
    user_agent = TextField(_("user agent"), null=True, blank=True, db_comment="用户代理")
    location = models.CharField(
        _("location"), max_length=200, null=True, blank=True, db_comment="登录位置"
    )
    session_id = models.CharField(
        _("session id"), max_length=128, null=True, blank=True, db_comment="会话标识"
    )
    created_at = DateTimeField(
        _("time"), default=timezone.now, db_default=Now(), editable=False, db_comment="登录时间"
    )

    class Meta:
        db_table = "login_logs"
        db_table_comment = "登录日志表"
        verbose_name = _("login record")
        verbose_name_plural = _("login history")
        ordering = ["-created_at", "-id"]
        indexes = [
            TableIndex(fields=["user", "created_at"], name="idx_user_created"),
            TableIndex(fields=["username"], name="idx_username"),
            TableIndex(fields=["ip_address"], name="idx_ip"),
            TableIndex(fields=["created_at"], name="idx_created"),
        ]

    def __str__(self):
        return f"{self.username} {self.result} {self.created_at:%Y-%m-%d %H:%M:%S}"


class InstanceGrant(UserObjectPermission):
    """Object grants on instances (guardian's table, seen through the admin of accounts/).

    One row = one permission name on one instance for one user; see
    accounts.services.permissions.grant_instance.
    """

    class Meta:
        proxy = True
        verbose_name = _("instance grant")
        verbose_name_plural = _("instance grants")

    @property
    def permission_name(self):
        codename = self.permission.codename
        return codename if "." in codename else f"{self.permission.content_type.app_label}.{codename}"


# --- One-time password devices (django-otp) ----------------------------------------------------


def default_totp_key():
    return random_hex(20)


class EncryptedTOTPDevice(TimestampMixin, ThrottlingMixin, Device):
    """A TOTP device whose secret is encrypted at rest (Fernet, FIELD_ENCRYPTION_KEYS).

    django-otp's own TOTPDevice stores its key in clear, so that plugin is not installed; this
    device implements the same verification (django_otp.oath.TOTP, replay protection through
    `last_t`, drift, throttling).
    """

    key = EncryptedTextField(_("secret key"), default=default_totp_key, editable=False)
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        db_table = "otp_totp_devices"
        verbose_name = _("authenticator app")
        verbose_name_plural = _("authenticator apps")

    @property
    def bin_key(self):
        return bytes.fromhex(self.key)

    def get_throttle_factor(self):
        return getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1)

    def verify_token(self, token):
        allowed, _info = self.verify_is_allowed()
        if not allowed:
            return False
        try:
            token = int(str(token).strip())
        except (TypeError, ValueError):
            verified = False
        else:
            totp = TOTP(self.bin_key, self.step, self.t0, self.digits, self.drift)
            totp.time = time.time()
            verified = totp.verify(token, self.tolerance, self.last_t + 1)
            if verified:
                self.last_t = totp.t()
                self.drift = totp.drift
                self.throttle_reset(commit=False)
                self.set_last_used_timestamp(commit=False)
                self.save()
        if not verified:
            self.throttle_increment(commit=True)
        return verified

    @property
    def config_url(self):
        """The otpauth:// provisioning URI (Google Authenticator key URI format)."""
        issuer = str(getattr(settings, "OTP_TOTP_ISSUER", "WeWork") or "WeWork").replace(":", "")
        label = f"{issuer}:{self.user.get_username()}"
        params = urlencode(
            {
                "secret": b32encode(self.bin_key).decode("ascii").rstrip("="),
                "algorithm": "SHA1",
                "digits": self.digits,
                "period": self.step,
            }
        )
        return f"otpauth://totp/{quote(label)}?{params}&issuer={quote(issuer)}"


class BackupCodeDevice(ThrottlingMixin, Device):
    """One-time backup codes; only HMAC digests of the codes are stored."""

    class Meta(Device.Meta):
        db_table = "otp_backup_code_devices"
        verbose_name = _("backup codes")
        verbose_name_plural = _("backup codes")

    def get_throttle_factor(self):
        return getattr(settings, "OTP_STATIC_THROTTLE_FACTOR", 1)

    def verify_token(self, token):
        from .tokens import digest

        allowed, _info = self.verify_is_allowed()
        if not allowed:
            return False
        code = "".join(str(token or "").split()).replace("-", "").lower()
        used = 0
        if code:
            used, _rows = self.codes.filter(digest=digest(code)).delete()
        if used:
            self.throttle_reset(commit=True)
            return True
        self.throttle_increment(commit=True)
        return False


class BackupCode(models.Model):
    device = models.ForeignKey(
        BackupCodeDevice, on_delete=models.CASCADE, related_name="codes"
    )
    digest = models.CharField(max_length=64)

    class Meta:
        db_table = "otp_backup_codes"
        verbose_name = _("backup code")
        verbose_name_plural = _("backup codes")
        constraints = [
            TableUniqueConstraint(fields=["device", "digest"], name="uk_device_digest")
        ]
