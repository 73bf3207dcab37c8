from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitoringConfig(AppConfig):
    """System logs, audit trail and alerts (design group 监控日志)."""

    name = "monitoring"
    verbose_name = _("Monitoring")
