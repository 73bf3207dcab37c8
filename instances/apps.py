from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InstancesConfig(AppConfig):
    """WeCom client instances, their configs and monitors (design group 企业微信实例)."""

    name = "instances"
    verbose_name = _("Instances")
