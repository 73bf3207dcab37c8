"""Sudo mode for sensitive actions, reusable by every app.

* function views: `@sudo_required`
* admin: `sudo_views` on any PlatformModelAdmin (wework.admin), and `sudo_redirect()` there for
  custom admin views
* API: put action names in a viewset's `sudo_actions` (wework.api.permissions).

Sudo mode = a one-time code entered in the last ACCESS_SUDO_MINUTES (default 10) minutes in
this browser session (login with a code counts), or a valid code in the X-OTP-Code header.
"""
from functools import wraps
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import reverse

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
