"""Users (用户表)."""
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX, check_password, identify_hasher
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.validators import validate_avatar_url, validate_email, validate_phone
from wework.db.fields import DateTimeField, TinyIntegerField, UnsignedBigAutoField
from wework.db.models import (
    SoftDeleteModel, SoftDeleteQuerySet, TableIndex, TableUniqueConstraint, TimestampedModel,
)


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


class User(AbstractBaseUser, PermissionsMixin, SoftDeleteModel, TimestampedModel):
    """A staff member of the platform (用户表).

    `password_hash` holds Django's full hash string (`algorithm$iterations$salt$hash`), which
    carries its own salt; `salt` mirrors that salt for the design's column (see docs/schema.md).
    """

    id = UnsignedBigAutoField(primary_key=True, db_comment="用户ID")
    username = models.CharField(_("username"), max_length=50, db_comment="用户名")
    email = models.CharField(_("email"), max_length=100, validators=[validate_email], db_comment="邮箱")
    phone = models.CharField(
        _("phone"), max_length=20, null=True, blank=True, validators=[validate_phone],
        db_comment="手机号"
    )
    nickname = models.CharField(
        _("nickname"), max_length=100, null=True, blank=True, db_comment="昵称"
    )
    avatar_url = models.CharField(
        _("avatar URL"), max_length=500, null=True, blank=True, validators=[validate_avatar_url],
        db_comment="头像URL"
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

    def save(self, *args, **kwargs):
        # No phone is NULL, never "": uk_phone allows many NULLs but only one "" (admin forms
        # and code that set "" included).
        if self.phone is not None and not self.phone.strip():
            self.phone = None
        super().save(*args, **kwargs)

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
        def upgrade(raw):
            AbstractBaseUser.set_password(self, raw)
            self.salt = _salt_of(self.password)
            self._password = None
            User.all_objects.filter(pk=self.pk).update(password=self.password, salt=self.salt)

        return check_password(raw_password, self.password, upgrade)


def _salt_of(encoded):
    """The salt part of a Django hash string, for the design's `salt` column."""
    if not encoded or encoded.startswith(UNUSABLE_PASSWORD_PREFIX):
        return ""
    try:
        return str(identify_hasher(encoded).decode(encoded).get("salt") or "")[:32]
    except (ValueError, KeyError, TypeError):
        return ""
