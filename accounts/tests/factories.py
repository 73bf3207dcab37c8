"""factory-boy factories for accounts/ (users, roles, grants, sessions, login records)."""
import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from accounts.models import LoginLog, LoginResult, Role, User, UserRole, UserSession
from accounts.services.permissions import grant_instance


class UserFactory(DjangoModelFactory):
    """A platform user whose password is "password" (or `password=`)."""

    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        password = kwargs.pop("password", "password")
        return model_class.objects.create_user(*args, password=password, **kwargs)


class RoleFactory(DjangoModelFactory):
    class Meta:
        model = Role

    name = factory.Sequence(lambda n: f"role{n}")
    display_name = factory.LazyAttribute(lambda o: o.name.title())


class UserRoleFactory(DjangoModelFactory):
    class Meta:
        model = UserRole

    user = factory.SubFactory(UserFactory)
    role = factory.SubFactory(RoleFactory)


class UserSessionFactory(DjangoModelFactory):
    """A browser-kind session row (API sessions come from accounts.services.sessions)."""

    class Meta:
        model = UserSession

    session_id = factory.Sequence(lambda n: f"sess{n:08d}")
    family_id = factory.LazyAttribute(lambda o: o.session_id)
    user = factory.SubFactory(UserFactory)
    access_token_hash = factory.Sequence(lambda n: f"{n:064x}")
    refresh_token_hash = factory.Sequence(lambda n: f"{n + 10**9:064x}")
    ip_address = "127.0.0.1"
    kind = 2
    expires_at = factory.LazyFunction(lambda: timezone.now() + timezone.timedelta(days=1))


class LoginLogFactory(DjangoModelFactory):
    class Meta:
        model = LoginLog

    user = factory.SubFactory(UserFactory)
    username = factory.LazyAttribute(lambda o: o.user.username)
    success = True
    result = LoginResult.SUCCESS
    channel = "admin"
    ip_address = "127.0.0.1"


class PermissionFactory(DjangoModelFactory):
    class Meta:
        model = "accounts.Permission"

    name = factory.Sequence(lambda n: f"tests.action_{n}")
    display_name = factory.LazyAttribute(lambda o: o.name)
    module = "tests"


class InstanceGrantFactory(DjangoModelFactory):
    """One object grant (instances.view_weworkinstance) on a new instance."""

    class Meta:
        model = "accounts.InstanceGrant"

    user = factory.SubFactory(UserFactory)
    # by path: instances' factories import this module (its UserFactory)
    instance = factory.SubFactory("instances.tests.factories.WeworkInstanceFactory")
    permission = "instances.view_weworkinstance"

    @classmethod
    def _create(cls, model_class, user=None, instance=None, permission=None, **kwargs):
        grant_instance(user, instance, [permission])
        return model_class.objects.filter(user=user, object_pk=str(instance.pk)).latest("id")
