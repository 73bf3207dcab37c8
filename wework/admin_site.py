from django.contrib import admin
from django.utils.translation import gettext_lazy as _


class WeworkAdminSite(admin.AdminSite):
    site_header = _("WeWork management platform")
    site_title = _("WeWork platform")
    index_title = _("Operations")
