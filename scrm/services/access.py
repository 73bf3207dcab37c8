"""Who may change what: scrm's rules through the platform's scoping (a role grant covers every
instance, an object grant one instance; accounts/scoping.py)."""
from __future__ import annotations

from django.utils.translation import gettext as _

from accounts import scoping

from ..errors import ScrmPermissionDenied

TAG_CONTACTS = "scrm.add_contacttag"
UNTAG_CONTACTS = "scrm.delete_contacttag"
CHANGE_OPT_OUT = "scrm.change_optout"


def allowed(user, perm: str, instance_id: int) -> bool:
    if user is None:
        return True  # the platform itself (a rule)
    return bool(user.is_authenticated and user.is_active and scoping.can_access_instance(user, instance_id, perm))


def require(user, perm: str, instance_id: int) -> None:
    if not allowed(user, perm, instance_id):
        raise ScrmPermissionDenied(_("You do not have permission to do this on this instance."))
