"""Two-factor devices (django-otp), enrollment, backup codes and sudo mode."""
from __future__ import annotations

import secrets
import time
from typing import Any

import segno
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django_otp import devices_for_user
from django_otp.models import Device

from accounts.models import BackupCode, BackupCodeDevice, EncryptedTOTPDevice, User
from accounts.tokens import digest

SUDO_SESSION_KEY = "wework_sudo_at"


def sudo_seconds() -> int:
    return int(getattr(settings, "ACCESS_SUDO_MINUTES", 10)) * 60


# --- Devices ---------------------------------------------------------------------------------


def has_device(user: User) -> bool:
    return any(True for _d in devices_for_user(user, confirmed=True))


def requires_two_factor(user: Any) -> bool:
    """Super admins, holders of a role flagged `require_two_factor`, and anyone who enrolled."""
    if not (user and user.is_authenticated):
        return False
    cached = getattr(user, "_requires_2fa", None)
    if cached is not None:
        return cached
    from accounts.backends import resolve_access

    required = bool(
        user.is_superuser
        or user.two_factor_enabled
        or (user.is_active and resolve_access(user).two_factor)
    )
    user._requires_2fa = required
    return required


def verify_code(user: User, code: str | None) -> Device | None:
    """The device that accepts `code` (TOTP, or a backup code, which is used up), else None.
    TOTP codes cannot be replayed: a device accepts each time step once."""
    code = "".join(str(code or "").split())
    if not code or len(code) > 32 or not user or not user.pk:
        return None
    # Route by shape so that a TOTP code does not count as a failed backup code (and the other
    # way round): django-otp throttles a device after failures.
    model = EncryptedTOTPDevice if code.isdigit() and len(code) in (6, 8) else BackupCodeDevice
    with transaction.atomic():
        for device in model.objects.select_for_update().filter(user_id=user.pk, confirmed=True):
            if device.verify_token(code):
                return device
    return None


def sync_two_factor_flag(user: User) -> bool:
    enabled = EncryptedTOTPDevice.objects.filter(user=user, confirmed=True).exists()
    if user.two_factor_enabled != enabled:
        User.all_objects.filter(pk=user.pk).audited_update(two_factor_enabled=enabled)
        user.two_factor_enabled = enabled
    return enabled


@transaction.atomic
def start_totp_enrollment(user: User, name: str = "Authenticator") -> EncryptedTOTPDevice:
    """A new unconfirmed TOTP device (replacing earlier unconfirmed ones)."""
    EncryptedTOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return EncryptedTOTPDevice.objects.create(user=user, name=name[:64], confirmed=False)


def pending_totp_device(user: User) -> EncryptedTOTPDevice | None:
    return EncryptedTOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()


def throttle_wait_seconds(device: Device) -> int:
    """Seconds until django-otp lets `device` verify again after wrong codes (0: now).
    While it waits, every code is refused, the right one too."""
    allowed, info = device.verify_is_allowed()
    if allowed or not info or not info.get("locked_until"):
        return 0
    from django.utils import timezone

    remaining = (info["locked_until"] - timezone.now()).total_seconds()
    return max(1, int(remaining + 0.999)) if remaining > 0 else 0


@transaction.atomic
def confirm_totp(user: User, device: EncryptedTOTPDevice, code: str) -> list[str] | None:
    """Confirm an enrollment with a first code. Returns fresh backup codes when the user had
    none, else an empty list; None when the code is wrong."""
    if device.user_id != user.pk or device.confirmed:
        return None
    if not device.verify_token(code):
        return None
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    sync_two_factor_flag(user)
    if not BackupCode.objects.filter(device__user=user).exists():
        return generate_backup_codes(user)
    return []


@transaction.atomic
def create_confirmed_totp(user: User, name: str = "Authenticator") -> EncryptedTOTPDevice:
    """Bootstrap (create_super_admin): a confirmed device, returned for its provisioning URI."""
    device = EncryptedTOTPDevice.objects.create(user=user, name=name[:64], confirmed=True)
    sync_two_factor_flag(user)
    return device


def _new_backup_code():
    raw = secrets.token_hex(5)  # 10 hex characters, 40 bits, used once
    return f"{raw[:5]}-{raw[5:]}"


@transaction.atomic
def generate_backup_codes(user: User, count: int | None = None) -> list[str]:
    """Replace the user's backup codes; returns the clear codes (shown once, stored digested)."""
    count = count or int(getattr(settings, "ACCESS_BACKUP_CODES", 10))
    device, _created = BackupCodeDevice.objects.get_or_create(
        user=user, defaults={"name": "Backup codes", "confirmed": True}
    )
    device.codes.all().delete()
    codes = [_new_backup_code() for _i in range(count)]
    BackupCode.objects.bulk_create(
        [BackupCode(device=device, digest=digest(code.replace("-", "").lower())) for code in codes]
    )
    return codes


def backup_codes_left(user: User) -> int:
    return BackupCode.objects.filter(device__user=user).count()


def qr_svg(uri: str) -> str:
    """The provisioning URI as an inline SVG QR code."""
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff")






# --- Sudo mode -------------------------------------------------------------------------------


def mark_sudo(request: HttpRequest) -> None:
    if hasattr(request, "session"):
        request.session[SUDO_SESSION_KEY] = int(time.time())


def in_sudo(request: HttpRequest) -> bool:
    """An OTP was entered in the last ACCESS_SUDO_MINUTES minutes (browser session), or the
    request carries a valid fresh code in the X-OTP-Code header (API)."""
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return False
    session = getattr(request, "session", None)
    if session is not None:
        at = session.get(SUDO_SESSION_KEY)
        if at and time.time() - at <= sudo_seconds():
            return True
    header = request.META.get("HTTP_X_OTP_CODE")
    if header:
        ok = getattr(request, "_sudo_header_ok", None)
        if ok is None:  # verified once per request: a TOTP code is accepted only once
            ok = verify_code(user, header) is not None
            setattr(request, "_sudo_header_ok", ok)
        return ok
    return False
