"""Test helpers: one-time codes, verified logins, grants."""
from django.contrib.auth.models import Permission as AuthPermission
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP

from accounts.models import EncryptedTOTPDevice, Permission, Role, RolePermission
from accounts.services import otp as otp_services


def totp_code(device):
    """A code the device accepts now (its replay guard is reset first)."""
    device.refresh_from_db()
    device.last_t = -1
    device.throttling_failure_count = 0
    device.throttling_failure_timestamp = None
    device.save()
    token = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()
    return str(token).zfill(device.digits)


def enroll(user):
    return otp_services.create_confirmed_totp(user)


def login_verified(client, user):
    """A browser session that passed the second factor (device created when missing)."""
    device = EncryptedTOTPDevice.objects.filter(user=user, confirmed=True).first() or enroll(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


def role_with(name, perm_names=None, require_two_factor=False):
    """A role holding the given permission names (every enabled permission when None)."""
    role = Role.objects.create(name=name, display_name=name, require_two_factor=require_two_factor)
    perms = Permission.objects.filter(status=1)
    if perm_names is not None:
        perms = perms.filter(name__in=perm_names)
    RolePermission.objects.bulk_create([RolePermission(role=role, permission=p) for p in perms])
    return role


__all__ = ["AuthPermission", "enroll", "login_verified", "role_with", "totp_code"]
