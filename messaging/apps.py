from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from instances import hooks


class MessagingConfig(AppConfig):
    """Messages, tasks, receivers and templates (design group 消息)."""

    name = "messaging"
    verbose_name = _("Messaging")

    def ready(self):
        from wework import shards

        from . import checks  # noqa: F401 - registers the system checks once the apps are ready
        from .inbound import handle_instance_event
        from .models import Message

        # message.* events from instances (received, status) are stored and counted here.
        hooks.register_event_handler("message.", handle_instance_event)
        # this month's shard; older ones exist already
        hooks.register_shard_preparer("message.received", lambda _instance_id: shards.model_for(Message))
