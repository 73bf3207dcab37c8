from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ContactsConfig(AppConfig):
    """WeCom accounts, contacts, groups and members (design group 账号管理)."""

    name = "contacts"
    verbose_name = _("Accounts and contacts")
