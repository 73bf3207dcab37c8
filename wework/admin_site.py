from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse, reverse_lazy
from django.utils.translation import gettext_lazy as _

from accounts.forms import AdminLoginForm
from accounts.services.otp import has_device, requires_two_factor


class WeworkAdminSite(admin.AdminSite):
    """The admin with two-factor login (django-otp).

    Users who need a second factor (super admins, holders of roles flagged so, everyone who
    enrolled a device) must have logged in with a one-time code; those without a device yet
    are sent to the enrollment page after their password.
    """

    site_header = _("WeWork management platform")
    site_title = _("WeWork platform")
    index_title = _("Operations")
    # "View site" in the header: the operators' pages (message tasks, compose); "/" has no page.
    site_url = reverse_lazy("messaging:task_list")
    login_template = "accounts/admin_login.html"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.login_form = AdminLoginForm

    #: The app list in the order of an operator's day (Django sorts by the translated name,
    #: which in Chinese is the order of code points): daily work first, administration last.
    APP_ORDER = ("messaging", "scrm", "contacts", "instances", "monitoring", "accounts")

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        rank = {label: position for position, label in enumerate(self.APP_ORDER)}
        return sorted(apps, key=lambda app: (rank.get(app["app_label"], len(rank)), app["name"]))

    def has_permission(self, request):
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        if requires_two_factor(user):
            check = getattr(user, "is_verified", None)
            return bool(check and check())
        return True

    def login(self, request, extra_context=None):
        user = request.user
        if (
            user.is_authenticated
            and user.is_active
            and requires_two_factor(user)
            and not has_device(user)
        ):
            return redirect(f"{reverse('accounts:otp-setup')}?next={reverse('admin:index')}")
        return super().login(request, extra_context)
