from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    """User auth: users, roles, permissions, sessions and tokens (design group 用户认证)."""

    name = "accounts"
    verbose_name = _("Users and access")

    def ready(self):
        from accounts import signals

        signals.connect_late()
