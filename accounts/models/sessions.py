"""Login sessions and the login history (用户会话表, 登录日志表)."""
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from wework.db.fields import DateTimeField, TextField, TinyIntegerField, UnsignedBigAutoField
from wework.db.models import CreatedAtModel, TableIndex, TableUniqueConstraint


class SessionKind(models.IntegerChoices):
    API = 1, _("API token")
    BROWSER = 2, _("Browser")


class UserSession(CreatedAtModel):
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
