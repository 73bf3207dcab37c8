from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ShardsConfig(AppConfig):
    """Shard tables of big models: registry, routing, rotation."""

    name = "wework.shards"
    label = "shards"
    verbose_name = _("Shards")

    def ready(self):
        from . import signals  # noqa: F401  (instance shards follow their instance)
