from django.contrib import admin
from django.shortcuts import redirect
from django.urls import get_script_prefix, get_urlconf, reverse, reverse_lazy
from django.utils.translation import get_language, gettext_lazy as _

from accounts.backends import resolve_access
from accounts.forms import AdminLoginForm
from accounts.services.otp import has_device, requires_two_factor

#: app lists kept by the worker (a few per role and language)
APP_LISTS_KEPT = 512


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
        self._app_lists = {}  # see get_app_list

    #: The app list in the order of an operator's day (Django sorts by the translated name,
    #: which in Chinese is the order of code points): daily work first, administration last.
    APP_ORDER = ("messaging", "scrm", "contacts", "instances", "monitoring", "accounts")

    def get_app_list(self, request, app_label=None):
        """The sidebar's and the index's app list, kept by the worker for the user's access.

        Building it asks every ModelAdmin for its permissions and reverse()s about 60 URLs on
        every admin page (10 % of a changelist). What it shows follows only from the user's
        resolved access (every ModelAdmin's has_*_permission and has_module_permission read
        the role and object grants through accounts.scoping and the role backend), the
        language (names and their order) and the URL prefix: the cache key holds them all, so
        a grant, a revocation, a role's new permissions, a deactivation or a superuser flag
        shows on the next page, as soon as the permission checks themselves see it.
        """
        key = self._app_list_key(request, app_label)
        if key is None:
            return self._ordered_app_list(request, app_label)
        kept = self._app_lists.get(key)
        if kept is None:
            if len(self._app_lists) >= APP_LISTS_KEPT:
                self._app_lists.clear()
            kept = self._app_lists[key] = self._ordered_app_list(request, app_label)
        # copies: a view may add to its app list (Django's app_index does not, others might)
        return [{**app, "models": [dict(model) for model in app["models"]]} for app in kept]

    def _ordered_app_list(self, request, app_label):
        apps = super().get_app_list(request, app_label)
        rank = {label: position for position, label in enumerate(self.APP_ORDER)}
        return sorted(apps, key=lambda app: (rank.get(app["app_label"], len(rank)), app["name"]))

    def _app_list_key(self, request, app_label):
        user = request.user
        if not (user.is_authenticated and user.is_active):
            return None
        if user.is_superuser:
            access = ("superuser",)
        else:
            resolved = resolve_access(user)
            access = (resolved.global_perms, frozenset(resolved.object_perm_names()))
        return (user.pk, access, get_language(), get_script_prefix(), get_urlconf(), app_label,
                len(self._registry))

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
