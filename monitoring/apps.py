from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitoringConfig(AppConfig):
    """System logs, audit trail and alerts (design group 监控日志)."""

    name = "monitoring"
    verbose_name = _("Monitoring")

    def ready(self):
        from . import audit, commands, signals  # noqa: F401 - connects receivers

        audit.connect_model_signals()
        commands.install_command_actor()
