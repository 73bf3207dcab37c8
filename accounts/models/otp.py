"""One-time password devices (django-otp): TOTP with an encrypted key, and backup codes stored
as digests only."""
import time
from base64 import b32encode
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP
from django_otp.util import random_hex

from accounts.tokens import digest
from wework.db.fields import EncryptedTextField
from wework.db.models import TableUniqueConstraint


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
