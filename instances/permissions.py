"""Permission checks of instance actions, through the platform's scoping rules
(accounts/scoping.py: a role grant covers every instance, an object grant one instance)."""
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

from accounts import scoping

VIEW_INSTANCE = "instances.view_weworkinstance"
RESTART = "instances.restart_instance"
PUSH_CONFIG = "instances.push_config"
SYNC_CONTACTS = "contacts.sync_contacts"
LOGIN_ACCOUNT = "contacts.login_account"


def allowed(user, perm, instance_id):
    """True when `user` may use `perm` on the instance `instance_id`."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    return scoping.can_access_instance(user, instance_id, perm)


def require(user, perm, instance_id):
    if not allowed(user, perm, instance_id):
        raise PermissionDenied(_("You do not have permission to do this on this instance."))
