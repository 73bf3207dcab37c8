from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from instances import hooks


class ContactsConfig(AppConfig):
    """WeCom accounts, contacts, groups and members (design group 账号管理)."""

    name = "contacts"
    verbose_name = _("Accounts and contacts")

    def ready(self):

        from . import services

        # What instances report about accounts, contacts and rooms is handled here.
        for kind, handler in services.EVENT_HANDLERS.items():
            hooks.register_event_handler(kind, handler)
        for prefix in ("contact.", "room."):
            hooks.register_shard_preparer(prefix, services.ensure_instance_shards)
        hooks.register_accounts_reporter(services.apply_account_states)
        hooks.register_offline_handler(services.mark_instance_accounts_offline)
