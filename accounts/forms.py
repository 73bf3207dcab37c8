"""Forms: the admin login with a second factor, OTP enrollment, sudo confirmation."""
from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import authenticate
from django.contrib.auth.forms import BaseUserCreationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _, ngettext

from accounts.models import User
from accounts.services import auth as auth_services
from accounts.services import otp as otp_services

CODE_WIDGET = forms.TextInput(
    attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autocapitalize": "off",
           "spellcheck": "false", "size": 12}
)


class AdminLoginForm(AdminAuthenticationForm):
    """Username, password and, when the user has a device, a one-time code (or backup code).

    Wrong password, wrong or missing code and locked or disabled accounts all get the same
    message; the login history records the precise reason.
    """

    otp_token = forms.CharField(
        label=_("One-time code"), required=False, max_length=32, widget=CODE_WIDGET,
        help_text=_("From your authenticator app, or a backup code. Leave empty if you have "
                    "not set up two-factor login."),
    )

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": _("Please enter a correct username, password and one-time code. "
                           "Note that both fields may be case-sensitive."),
        "throttled": _("Too many login attempts. Wait a minute and try again."),
    }

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if not (username and password):
            raise self.get_invalid_login_error()
        self.user_cache = authenticate(self.request, username=username, password=password)
        if self.user_cache is None:
            if getattr(self.request, "login_throttled", False):
                raise ValidationError(self.error_messages["throttled"], code="throttled")
            raise self.get_invalid_login_error()
        self.confirm_login_allowed(self.user_cache)
        if otp_services.has_device(self.user_cache):
            device = otp_services.verify_code(self.user_cache, self.cleaned_data.get("otp_token"))
            if device is None:
                auth_services.register_otp_failure(self.request, self.user_cache)
                self.user_cache = None
                raise self.get_invalid_login_error()
            # django-otp's user_logged_in receiver stores the device in the session.
            self.user_cache.otp_device = device
        return self.cleaned_data

    def confirm_login_allowed(self, user):
        if not user.is_active or not user.is_staff:
            raise self.get_invalid_login_error()


class CodeForm(forms.Form):
    code = forms.CharField(label=_("Code"), max_length=32, widget=CODE_WIDGET)

    def __init__(self, *args, user=None, device=None, **kwargs):
        self.user = user
        self.device = device
        self.verified_device = None
        self.backup_codes = None
        super().__init__(*args, **kwargs)


class TOTPConfirmForm(CodeForm):
    """Confirms a pending TOTP device with its first code."""

    def clean_code(self):
        wait = otp_services.throttle_wait_seconds(self.device)
        if wait:
            # django-otp refuses every code while it throttles: say so, not "wrong code".
            raise ValidationError(
                ngettext("Too many wrong codes. Wait %(n)d second, then enter the code your app "
                         "shows now.",
                         "Too many wrong codes. Wait %(n)d seconds, then enter the code your app "
                         "shows now.", wait) % {"n": wait}
            )
        codes = otp_services.confirm_totp(self.user, self.device, self.cleaned_data["code"])
        if codes is None:
            raise ValidationError(_("That code is not right. Check the time on your phone and try again."))
        self.backup_codes = codes
        return self.cleaned_data["code"]


class SudoForm(CodeForm):
    """Re-enter a one-time code to unlock sensitive actions for a few minutes."""

    def clean_code(self):
        device = otp_services.verify_code(self.user, self.cleaned_data["code"])
        if device is None:
            raise ValidationError(_("That code is not right."))
        self.verified_device = device
        return self.cleaned_data["code"]


class UserCreationForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("username", "email")
