"""The platform's own actions, beside Django's add/change/delete/view permissions.

Each entry becomes a row of the design's `permissions` table (`accounts.services.permissions.
sync_permissions`). Apps may add theirs with `register()` from their AppConfig.ready(), or
declare them as `Meta.permissions` on their models (those arrive through auth_permission).

`instance_scoped=True` means the action can also be granted on a single instance (an object
grant, see accounts/scoping.py); otherwise it can only come from a role.
"""
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class PlatformAction:
    name: str  # "<app_label>.<codename>"
    display_name: str
    resource: str = ""  # model name (lower case) the action is about, when there is one
    instance_scoped: bool = False
    description: str = ""

    @property
    def module(self):
        return self.name.split(".", 1)[0]

    @property
    def codename(self):
        return self.name.split(".", 1)[1]


_REGISTRY = {}


def register(name, display_name, resource="", instance_scoped=False, description=""):
    """Declare a platform action (idempotent; the last declaration wins)."""
    if name.count(".") != 1:
        raise ValueError(f"Permission names are '<app>.<action>', not {name!r}.")
    _REGISTRY[name] = PlatformAction(name, display_name, resource, instance_scoped, description)
    return _REGISTRY[name]


def actions():
    return dict(_REGISTRY)


register("instances.restart_instance", _("Restart instances"), "weworkinstance", True)
register("instances.push_config", _("Push configuration to instances"), "weworkinstance", True)
register("instances.change_endpoint", _("Change where instances' secrets are sent (API URL, proxy)"),
         "weworkinstance", description=_("Needs sudo mode; never granted on a single instance."))
register("contacts.sync_contacts", _("Synchronise contacts and groups"), "weworkaccount", True)
register("contacts.login_account", _("Log WeCom accounts in and out"), "weworkaccount", True)
register("messaging.send_message", _("Send messages"), "message", True)
register("messaging.send_broadcast", _("Send broadcasts"), "messagetask", True)
register("messaging.manage_task", _("Start, pause and cancel message tasks"), "messagetask", True)
register("monitoring.ack_alert", _("Acknowledge and resolve alerts"), "alertrecord", True)
register("monitoring.export_audit", _("Export audit logs"), "auditlog")
register("wework.manage_shards", _("Create, archive and drop shard tables"), "shardtable")
