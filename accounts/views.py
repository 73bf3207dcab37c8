"""Pages: two-factor setup, backup codes, sudo confirmation, "my sessions"."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import sudo_required
from accounts.forms import SudoForm, TOTPConfirmForm
from accounts.models import EncryptedTOTPDevice, UserSession
from accounts.services import otp as otp_services
from accounts.services import sessions as session_services

LOGIN_URL = "admin:login"


def _safe_next(request, default):
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


def _verified_or_no_device(view):
    """Users who need two factors and have a device must have used it in this session."""

    def wrapped(request, *args, **kwargs):
        user = request.user
        if otp_services.has_device(user) and not user.is_verified():
            return redirect(f"{reverse(LOGIN_URL)}?next={request.get_full_path()}")
        return view(request, *args, **kwargs)

    return login_required(wrapped, login_url=LOGIN_URL)


def _context(request, **extra):
    from django.contrib import admin

    return {**admin.site.each_context(request), **extra}


@_verified_or_no_device
def otp_setup(request):
    """Enroll an authenticator app: QR code (inline SVG), then a first code to confirm.

    Adding a device when one exists already needs sudo mode."""
    user = request.user
    has_device = otp_services.has_device(user)
    if has_device and not otp_services.in_sudo(request):
        from accounts.decorators import sudo_redirect

        return sudo_redirect(request)
    device = otp_services.pending_totp_device(user)
    if request.method == "POST" and "start" in request.POST or device is None:
        device = otp_services.start_totp_enrollment(user)
    form = TOTPConfirmForm(request.POST if "code" in request.POST else None, user=user, device=device)
    if form.is_bound and form.is_valid():
        otp_services.mark_sudo(request)
        from django_otp import login as otp_login

        otp_login(request, device)
        messages.success(request, _("Two-factor login is on."))
        return render(
            request, "accounts/backup_codes.html",
            _context(request, title=_("Backup codes"), codes=form.backup_codes,
                     next_url=_safe_next(request, reverse("admin:index"))),
        )
    return render(
        request, "accounts/otp_setup.html",
        _context(
            request, title=_("Set up two-factor login"), form=form, qr_svg=otp_services.qr_svg(device.config_url),
            secret=device.config_url.split("secret=")[1].split("&")[0],
            devices=EncryptedTOTPDevice.objects.filter(user=user, confirmed=True),
            next_url=_safe_next(request, ""),
        ),
    )


@_verified_or_no_device
@sudo_required
def backup_codes(request):
    if request.method != "POST":
        return render(
            request, "accounts/backup_codes.html",
            _context(request, title=_("Backup codes"), codes=None,
                     left=otp_services.backup_codes_left(request.user)),
        )
    if not otp_services.has_device(request.user):
        raise Http404
    codes = otp_services.generate_backup_codes(request.user)
    return render(request, "accounts/backup_codes.html",
                  _context(request, title=_("Backup codes"), codes=codes))


@login_required(login_url=LOGIN_URL)
def sudo(request):
    user = request.user
    if not otp_services.has_device(user):
        messages.warning(request, _("Set up two-factor login first: sensitive actions need a one-time code."))
        return redirect(reverse("accounts:otp-setup"))
    form = SudoForm(request.POST or None, user=user)
    if request.method == "POST" and form.is_valid():
        otp_services.mark_sudo(request)
        return redirect(_safe_next(request, reverse("admin:index")))
    return render(request, "accounts/sudo.html",
                  _context(request, title=_("Confirm with a one-time code"), form=form,
                           next_url=_safe_next(request, "")))


@_verified_or_no_device
def my_sessions(request):
    current = request.session.get(session_services.BROWSER_SESSION_KEY)
    rows = session_services.sessions_of(request.user)
    return render(request, "accounts/sessions.html",
                  _context(request, title=_("My sessions"), sessions=rows, current=current))


@_verified_or_no_device
@require_POST
def revoke_session(request, pk):
    row = UserSession.objects.filter(pk=pk, user=request.user).first()
    if row is None:
        raise Http404
    session_services.revoke(row, reason="user")
    messages.success(request, _("The session was ended."))
    return redirect(reverse("accounts:sessions"))


