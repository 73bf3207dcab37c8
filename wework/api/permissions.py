"""The API's permission checks, applied to every endpoint by default (REST_FRAMEWORK settings).

* Model-backed views: Django model permissions for every method (view for GET/HEAD/OPTIONS,
  add for POST, change for PUT/PATCH, delete for DELETE), through roles or per-instance
  object grants (accounts/scoping.py); custom actions name theirs in `action_permissions`
  ({"restart": ["instances.restart_instance"]}); other custom actions need the model's view
  permission here and must check their own permission on the object.
* Object checks: missing permission on a visible object → 403; an object outside the user's
  scope → 404 (the base viewsets also filter querysets, so such objects are not found).
* Views without a model: `required_permissions` (a list), or authentication alone.
* Users who need two factors (super admins, flagged roles, enrolled users) must be verified:
  a session login with an OTP, or a token (issued only after the OTP).
* `sudo_actions` (a set of action names) additionally need sudo mode: an OTP entered in the
  last minutes, or a fresh code in the X-OTP-Code header.
"""
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, permissions

from accounts.scoping import may_use_model, model_perm
from accounts.services.otp import in_sudo, requires_two_factor
from wework.api.authentication import TokenAuthentication

METHOD_ACTIONS = {
    "GET": "view", "HEAD": "view", "OPTIONS": "view",
    "POST": "add", "PUT": "change", "PATCH": "change", "DELETE": "delete",
}


STANDARD_ACTIONS = {
    "list", "retrieve", "create", "update", "partial_update", "destroy", "metadata", None,
}


def _model_of(view):
    queryset = getattr(view, "queryset", None)
    if queryset is not None:
        return queryset.model
    model = getattr(view, "model", None)
    if model is not None:
        return model
    serializer = getattr(view, "serializer_class", None)
    meta = getattr(serializer, "Meta", None)
    return getattr(meta, "model", None)


def required_perms(request, view, model):
    action = getattr(view, "action", None)
    explicit = getattr(view, "action_permissions", {}) or {}
    if action in explicit:
        return list(explicit[action])
    if model is None:
        return list(getattr(view, "required_permissions", []) or [])
    if action is not None and action not in STANDARD_ACTIONS:
        # A custom @action not named in action_permissions: the model's view permission here
        # (list/object scope), and the action checks its own permission on its instance.
        return [model_perm(model, "view")]
    verb = METHOD_ACTIONS.get(request.method)
    if verb is None:
        return None  # unknown method: refuse
    return [model_perm(model, verb)]


def is_verified(request):
    if isinstance(getattr(request, "successful_authenticator", None), TokenAuthentication):
        return True
    check = getattr(request.user, "is_verified", None)
    return bool(check and check())


class PlatformPermission(permissions.BasePermission):
    message = _("You do not have permission to perform this action.")

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        if requires_two_factor(user) and not is_verified(request):
            raise exceptions.PermissionDenied(_("Two-factor verification is required."))
        model = _model_of(view)
        perms = required_perms(request, view, model)
        if perms is None:
            return False
        sudo_actions = getattr(view, "sudo_actions", None)
        if sudo_actions is None:  # deleting an instance needs sudo by default
            sudo_actions = {"destroy"} if getattr(model, "INSTANCE_PATH", None) == "" else ()
        if getattr(view, "action", None) in sudo_actions and not in_sudo(request):
            raise exceptions.PermissionDenied(
                _("This action needs a recent one-time code (send it in the X-OTP-Code header).")
            )
        return all(may_use_model(user, perm, model) for perm in perms)

    def has_object_permission(self, request, view, obj):
        user = request.user
        perms = required_perms(request, view, type(obj))
        if perms is None:
            return False
        if all(user.has_perm(perm, obj) for perm in perms):
            return True
        if not (
            user.has_perm(model_perm(type(obj), "view"), obj)
            or user.has_perm(model_perm(type(obj), "change"), obj)
        ):
            raise Http404
        return False
