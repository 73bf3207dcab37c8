import itertools

import pytest

_seq = itertools.count()


def grant_perms(user, *names):
    """Give `user` a fresh role holding the platform permissions `names`; returns the user
    reloaded (permission caches are per object and per cache key)."""
    from accounts.models import Permission, Role, RolePermission
    from accounts.services.permissions import forget_user, grant_role, sync_permissions

    if not Permission.objects.filter(name__in=names).count() == len(set(names)):
        sync_permissions()
    n = next(_seq)
    role = Role.objects.create(name=f"test_role_{n}", display_name=f"Test role {n}")
    for name in names:
        RolePermission.objects.create(role=role, permission=Permission.objects.get(name=name))
    grant_role(user, role, granted_by=None)
    forget_user(user.pk)
    return type(user).objects.get(pk=user.pk)


ROLE_BACKEND = "accounts.backends.RoleBackend"


@pytest.fixture
def grant(settings):
    """`grant(user, *names)`; role grants answer object checks only through the role backend,
    which is installed here when settings do not list it yet."""
    if ROLE_BACKEND not in settings.AUTHENTICATION_BACKENDS:
        settings.AUTHENTICATION_BACKENDS = [ROLE_BACKEND, *settings.AUTHENTICATION_BACKENDS]
    return grant_perms


@pytest.fixture
def admin_client(client, admin_user):
    """A superuser session verified with a one-time code (the admin requires two factors for
    super admins)."""
    from django_otp import DEVICE_ID_SESSION_KEY

    from accounts.services.otp import create_confirmed_totp

    device = create_confirmed_totp(admin_user)
    client.force_login(admin_user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client
