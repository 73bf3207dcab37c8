from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ScrmConfig(AppConfig):
    """Private-domain operations: tags, segments, opt-outs, welcome messages, auto-replies and
    sensitive words (docs/scrm.md). Sits above messaging: it tells messaging and instances what
    to do through the hooks they offer."""

    name = "scrm"
    verbose_name = _("Private-domain operations")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from instances import hooks
        from messaging import extensions
        from messaging.services import stats

        from .services import events, optouts, panels, segments, sensitive

        # an opt-out is recorded before anything else is done with the message
        hooks.register_event_observer("message.received", events.before_message_received, before=True)
        hooks.register_event_observer("message.received", events.after_message_received)
        hooks.register_event_observer("contact.added", events.after_contact_added)
        hooks.register_event_observer("room.member_joined", events.after_member_joined)
        extensions.register_receiver_exclusion(optouts.broadcast_exclusion)
        extensions.register_audience("segment", segments.audience)
        extensions.register_content_check(sensitive.content_check)
        # the contact's tags beside a conversation, with add and remove
        extensions.register_conversation_panel(panels.conversation_tags_panel)
        # mass-send statistics count who opted out after a broadcast reached them
        stats.register_opt_out_source(optouts.opted_out_after_send)
