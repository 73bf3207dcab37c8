"""The project's shared pytest fixtures (a plugin registered by the root conftest.py).

Every app's tests use these by name; none imports another app's test modules.

* `verified_admin_client`: a super administrator's browser session that passed the second
  factor and is in sudo mode (the admin requires both for sensitive pages).
* `login_verified(client, user)` / `api_client_for(user)`: sessions for any user.
* `grant(user, *permission_names)`: gives the user a fresh role holding those permissions.
* `otp`: `otp.enroll(user)` (a confirmed authenticator) and `otp.code(device)` (a valid code).
* `personas`: six users and two instances for permission matrices (see `Personas`).
* `clock`: an injected clock (`clock.now()`, `clock.advance(seconds)`) patched into
  `django.utils.timezone.now`, instead of sleeping or back-dating rows.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from rest_framework.test import APIClient

from accounts.models import EncryptedTOTPDevice, Permission, Role, User, UserRole, UserStatus
from accounts.services import otp as otp_services
from accounts.services import permissions as perm_services
from accounts.services import roles as role_services
from accounts.services import sessions as session_services
from accounts.tests.factories import UserFactory
from instances.tests.factories import WeworkInstanceFactory

ROLE_BACKEND = "accounts.backends.RoleBackend"
_roles = itertools.count()


# --- one-time codes ------------------------------------------------------------------------------


def enroll(user: User) -> EncryptedTOTPDevice:
    """A confirmed authenticator device for `user`."""
    return otp_services.create_confirmed_totp(user)


def totp_code(device: EncryptedTOTPDevice) -> str:
    """A code the device accepts now (its replay guard and throttle are reset first)."""
    device.refresh_from_db()
    device.last_t = -1
    device.throttling_failure_count = 0
    device.throttling_failure_timestamp = None
    device.save()
    token = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()
    return str(token).zfill(device.digits)


@dataclass
class Otp:
    """The `otp` fixture: `otp.enroll(user)` and `otp.code(device)`."""

    enroll: object = staticmethod(enroll)
    code: object = staticmethod(totp_code)


@pytest.fixture
def otp(db) -> Otp:
    return Otp()


# --- sessions ------------------------------------------------------------------------------------


def login_verified(client: Client, user: User, *, sudo: bool = False) -> EncryptedTOTPDevice:
    """A browser session of `user` that passed the second factor (device created when
    missing); in sudo mode with `sudo=True`."""
    device = (EncryptedTOTPDevice.objects.filter(user=user, confirmed=True).first()
              or otp_services.create_confirmed_totp(user))
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    if sudo:
        session[otp_services.SUDO_SESSION_KEY] = int(time.time())
    session.save()
    return device


def api_client_for(user: User) -> APIClient:
    """An API client sending a fresh access token of `user` (tokens count as verified)."""
    _row, access, _refresh = session_services.issue_tokens(user, None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


@pytest.fixture(name="login_verified")
def login_verified_fixture():
    return login_verified


@pytest.fixture(name="api_client_for")
def api_client_for_fixture(db):
    return api_client_for


@pytest.fixture
def super_admin(db) -> User:
    return UserFactory(username="verified_root", is_superuser=True)


@pytest.fixture
def verified_admin_client(super_admin) -> Client:
    """A super administrator verified with a one-time code, in sudo mode."""
    client = Client()
    login_verified(client, super_admin, sudo=True)
    client.user = super_admin
    return client


# --- grants --------------------------------------------------------------------------------------


def role_with(name: str, perm_names=None, require_two_factor: bool = False) -> Role:
    """A role holding the given permission names (every enabled permission when None)."""
    role = Role.objects.create(name=name, display_name=name, require_two_factor=require_two_factor)
    perms = Permission.objects.filter(status=1)
    if perm_names is not None:
        missing = set(perm_names) - set(perms.filter(name__in=perm_names).values_list("name", flat=True))
        if missing:
            perm_services.sync_permissions()
        perms = perms.filter(name__in=perm_names)
    role_services.set_role_permissions(role, perms)
    return role


def grant_perms(user: User, *names: str) -> User:
    """Give `user` a fresh role holding the permissions `names`; returns the user reloaded
    (permission caches live on the object and under the user's cache key)."""
    role = role_with(f"test_role_{next(_roles)}", names)
    perm_services.grant_role(user, role, granted_by=None)
    perm_services.forget_user(user.pk)
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def grant(settings):
    """`grant(user, *names)`; role grants answer object checks only through the role backend,
    which is installed here when settings do not list it yet."""
    if ROLE_BACKEND not in settings.AUTHENTICATION_BACKENDS:
        settings.AUTHENTICATION_BACKENDS = [ROLE_BACKEND, *settings.AUTHENTICATION_BACKENDS]
    return grant_perms


# --- personas ------------------------------------------------------------------------------------

PERSONAS = ("super_admin", "role_holder", "object_grantee", "expired_grant", "disabled", "outsider")


@dataclass
class Personas:
    """Six users and two instances.

    * super_admin    - is_super_admin: the baseline every other answer is compared with.
    * role_holder    - a role with every permission: the same answers as the baseline.
    * object_grantee - object grants of every grantable permission on instance `a` only.
    * expired_grant  - the all-permission role, expired one second ago: like an outsider.
    * disabled       - the all-permission role, account disabled (`disable()` after logging in).
    * outsider       - active, no grant.
    """

    a: object
    b: object
    users: dict[str, User] = field(default_factory=dict)

    def admin_client(self, persona: str) -> Client:
        client = Client()
        user = self.users[persona]
        if persona == "super_admin":
            login_verified(client, user, sudo=True)
        else:
            client.force_login(user)
        if persona == "disabled":
            self.disable()
        return client

    def api_client(self, persona: str) -> APIClient:
        user = self.users[persona]
        if persona == "super_admin":
            otp_services.create_confirmed_totp(user)  # super admins have a second factor
        client = api_client_for(user)
        if persona == "disabled":
            self.disable()
        return client

    def disable(self) -> None:
        User.all_objects.filter(pk=self.users["disabled"].pk).update(status=UserStatus.DISABLED)


@pytest.fixture
def personas(db) -> Personas:
    inst_a = WeworkInstanceFactory(name="Instance A")
    inst_b = WeworkInstanceFactory(name="Instance B")
    everything = role_with("matrix_all")
    users = {name: UserFactory(username=f"persona_{name}", is_superuser=name == "super_admin")
             for name in PERSONAS}
    UserRole.objects.create(user=users["role_holder"], role=everything)
    UserRole.objects.create(user=users["disabled"], role=everything)
    UserRole.objects.create(
        user=users["expired_grant"], role=everything,
        expires_at=timezone.now().replace(microsecond=0) - timedelta(seconds=1),
    )
    grantable = [n for n in Permission.objects.filter(status=1).values_list("name", flat=True)
                 if perm_services.grantable_on_instance(n)]
    perm_services.grant_instance(users["object_grantee"], inst_a, grantable)
    return Personas(a=inst_a, b=inst_b, users=users)


# --- clock ---------------------------------------------------------------------------------------


class Clock:
    """A clock tests move by hand: `now()` (aware), `time()` (epoch seconds), `advance(s)`."""

    def __init__(self, start: datetime):
        self._now = start

    def now(self) -> datetime:
        return self._now

    def time(self) -> float:
        return self._now.timestamp()

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """An injected clock that `django.utils.timezone.now` reads (modules that imported `now`
    by name are not affected: they call `timezone.now()`, as the project's code does)."""
    fake = Clock(timezone.now().replace(microsecond=0))
    monkeypatch.setattr(timezone, "now", fake.now)
    return fake
