from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MessagingConfig(AppConfig):
    """Messages, tasks, receivers and templates (design group 消息)."""

    name = "messaging"
    verbose_name = _("Messaging")
