"""Signal receivers: permission sync after migrate, browser logins as sessions, cache
invalidation when grants change, guardian clean-up when an instance is removed."""
from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db import connections
from django.db.models.signals import post_delete, post_migrate, post_save
from django.dispatch import receiver
from guardian.models import UserObjectPermission

from accounts.models import (
    InstanceGrant, Permission, Role, RolePermission, SessionKind, UserRole, UserSession,
)
from accounts.services import auth as auth_services
from accounts.services import otp as otp_services
from accounts.services import permissions as perm_services
from accounts.services import sessions as session_services
from wework.db.layout import alias_for_app, is_split, missing_modules


@receiver(post_migrate)
def sync_after_migrate(sender, app_config=None, using="default", **kwargs):
    """Once per migrate (after the last app): create Django's permissions for every app, then
    sync the design's permissions table and the system roles."""
    configs = list(apps.get_app_configs())
    # post_migrate is sent once per app that has a models module: act after the last of them.
    last = [c for c in configs if c.models_module is not None][-1]
    if app_config is None or app_config.label != last.label:
        return
    plan_apps = kwargs.get("apps", apps)
    if is_split():
        # Per-module databases (wework.db.layout): permissions and roles live on the accounts
        # alias, whichever alias was just migrated; they are seeded (and audited, in
        # monitoring) once every module's database has its tables, i.e. after the last alias.
        using = alias_for_app("accounts")
        if Role._meta.db_table not in connections[using].introspection.table_names() or missing_modules():
            return
    for config in configs:
        create_permissions(config, verbosity=0, using=using, apps=plan_apps)
    if Role._meta.db_table not in connections[using].introspection.table_names():
        return  # a partial migration (migrate accounts 0001) has no role tables yet
    perm_services.seed_roles()


@receiver(user_logged_in)
def on_browser_login(sender, request, user, **kwargs):
    if request is None or not hasattr(request, "session"):
        return
    row = session_services.start_browser_session(request, user)
    auth_services.complete_login(request, user, channel="admin", session_id=row.session_id)
    if getattr(user, "otp_device", None) is not None:
        otp_services.mark_sudo(request)


@receiver(user_logged_out)
def on_browser_logout(sender, request, user, **kwargs):
    if request is not None:
        session_services.end_browser_session(request)


@receiver([post_save, post_delete], sender=Role)
@receiver([post_save, post_delete], sender=RolePermission)
@receiver([post_save, post_delete], sender=Permission)
def roles_changed(sender, **kwargs):
    perm_services.bump_generation()


@receiver(post_save, sender="accounts.User")
def password_changed(sender, instance, created, **kwargs):
    """A new password ends the user's API sessions (other browsers are logged out by Django's
    session hash check)."""
    if getattr(instance, "_password_changed", False):
        instance._password_changed = False
        if not created:
            families = UserSession.objects.filter(
                user=instance, kind=SessionKind.API, revoked_at__isnull=True
            ).values_list("family_id", flat=True).distinct()
            for family in list(families):
                session_services.revoke_family(family, reason="password_changed")


@receiver([post_save, post_delete], sender=UserRole)
def grant_changed(sender, instance, **kwargs):
    perm_services.forget_user(instance.user_id)


def _object_grant_changed(sender, instance, **kwargs):
    perm_services.forget_user(instance.user_id)


def _instance_deleted(sender, instance, **kwargs):
    perm_services.purge_instance_grants(instance.pk)


def connect_late():
    """Receivers on models of other apps (guardian, instances), connected in ready()."""
    post_save.connect(_object_grant_changed, sender=UserObjectPermission, dispatch_uid="acl-uop-save")
    post_delete.connect(_object_grant_changed, sender=UserObjectPermission, dispatch_uid="acl-uop-del")
    post_save.connect(_object_grant_changed, sender=InstanceGrant, dispatch_uid="acl-ig-save")
    post_delete.connect(_object_grant_changed, sender=InstanceGrant, dispatch_uid="acl-ig-del")
    model = perm_services.instance_model()
    if model is not None:
        post_delete.connect(_instance_deleted, sender=model, dispatch_uid="acl-instance-del")
