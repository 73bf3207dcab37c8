from django.apps import AppConfig
from django.conf import settings
from django.contrib.admin.apps import AdminConfig
from django.utils.translation import gettext_lazy as _

if getattr(settings, "DATABASE_SPLIT", False):
    # Modules on several databases: `transaction.atomic()` spans all of them
    # (wework.db.transactions).
    # Installed while the apps load (this module is imported first), before any service module
    # decorates a function with `atomic`.
    from wework.db.transactions import install as _install_transactions

    _install_transactions()


class WeworkAdminConfig(AdminConfig):
    """Installs the platform's admin site as `admin.site`, so `@admin.register` keeps working."""

    default_site = "wework.admin_site.WeworkAdminSite"


class WeworkConfig(AppConfig):
    """Cross-cutting infrastructure: database fields, routing, shared commands."""

    name = "wework"
    verbose_name = _("Platform")

    def ready(self):
        # drf-spectacular learns of the bearer token scheme when its extension class is defined
        from wework.api import authentication  # noqa: F401

        if getattr(settings, "DATABASE_SPLIT", False):
            # Queries never join across the databases (wework.db.crossdb), and references to
            # another module's database are checked before each write (wework.db.references).
            from wework.db import crossdb, deletion, references

            crossdb.install()
            references.install()
            deletion.install()
