"""Sudo mode for sensitive actions, reusable by every app.

* function views: `@sudo_required`
* class-based views: `SudoRequiredMixin`
* admin: `sudo_views` on any PlatformModelAdmin ("delete_view", "delete_action", "actions",
  "changeform_post"; deleting instances needs sudo by default), or `SudoAdminMixin` (which
  adds "add_view"/"change_view"/"changeform_post" handling)
* API: put action names in a viewset's `sudo_actions` (wework.api.permissions), or use
  `SudoPermission` in `permission_classes`.

Sudo mode = a one-time code entered in the last ACCESS_SUDO_MINUTES (default 10) minutes in
this browser session (login with a code counts), or a valid code in the X-OTP-Code header.
"""
from functools import wraps
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from rest_framework import permissions

from accounts.services.otp import in_sudo


def sudo_redirect(request):
    query = urlencode({"next": request.get_full_path()})
    return redirect(f"{reverse('accounts:sudo')}?{query}")


def sudo_required(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            raise PermissionDenied
        if not in_sudo(request):
            return sudo_redirect(request)
        return view(request, *args, **kwargs)

    wrapped.sudo_required = True
    return wrapped


class SudoRequiredMixin:
    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not in_sudo(request):
            return sudo_redirect(request)
        return super().dispatch(request, *args, **kwargs)


class SudoAdminMixin:
    """Admin views that need sudo mode. `sudo_views` names ModelAdmin view methods
    ("delete_view", "add_view", "change_view") or "changeform_post" (saving a form only),
    or "actions" (any bulk action POST)."""

    sudo_views = ("delete_view",)

    def _needs_sudo(self, request, name):
        return name in self.sudo_views and not in_sudo(request)

    def delete_view(self, request, object_id, extra_context=None):
        if self._needs_sudo(request, "delete_view"):
            return sudo_redirect(request)
        return super().delete_view(request, object_id, extra_context)

    def add_view(self, request, form_url="", extra_context=None):
        if self._needs_sudo(request, "add_view") or (
            request.method == "POST" and self._needs_sudo(request, "changeform_post")
        ):
            return sudo_redirect(request)
        return super().add_view(request, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if self._needs_sudo(request, "change_view") or (
            request.method == "POST" and self._needs_sudo(request, "changeform_post")
        ):
            return sudo_redirect(request)
        return super().change_view(request, object_id, form_url, extra_context)

    def response_action(self, request, queryset, *args, **kwargs):
        if self._needs_sudo(request, "actions"):
            return sudo_redirect(request)
        return super().response_action(request, queryset, *args, **kwargs)


class SudoPermission(permissions.BasePermission):
    """DRF: unsafe methods need sudo mode (X-OTP-Code header for token clients)."""

    message = _("This action needs a recent one-time code (send it in the X-OTP-Code header).")

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return True
        return in_sudo(request)
