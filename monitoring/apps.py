from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from instances import hooks
from wework import audit as audit_port


class MonitoringConfig(AppConfig):
    """System logs, audit trail and alerts (design group 监控日志)."""

    name = "monitoring"
    verbose_name = _("Monitoring")

    def ready(self):

        from . import audit, commands, messaging_receivers, orphan_alerts, signals  # noqa: F401 - connects receivers
        from .services import alerts

        audit.connect_model_signals()
        # Code below this app (the core, accounts, instances, ...) audits through this port.
        audit_port.register(audit)
        commands.install_command_actor()
        # Instances raise and resolve their alerts through this service.
        hooks.register_alerts(alerts)
