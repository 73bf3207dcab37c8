"""What instance events do here (registered by ScrmConfig.ready() in instances.hooks)."""
from __future__ import annotations

from contacts.models import WeworkAccount

from . import autoreplies, matching, optouts, tags, welcome


def before_message_received(instance, event: dict) -> None:
    """First of all, in its own committed transaction: the opt-out the message asks for."""
    if event.get("type") == "message.received":
        optouts.record_from_event(instance, event)


def after_message_received(instance, event: dict, result) -> None:
    """Once messaging stored the message (not for a duplicate): tag rules, then the auto-reply."""
    if event.get("type") != "message.received" or not isinstance(result, dict) or not result.get("stored"):
        return
    if not matching.is_private_from_customer(event):
        return
    account = WeworkAccount.objects.select_related("instance").filter(
        instance_id=instance.pk, wxid=event.get("account_id")).first()
    if account is None:
        return
    wxid = str((event.get("data") or {}).get("conversation_id"))
    tags.apply_keyword_rules(account, wxid, matching.inbound_text(event))
    autoreplies.reply_to(account, event)


def after_contact_added(instance, event: dict, result) -> None:
    welcome.on_contact_added(instance, event, result)


def after_member_joined(instance, event: dict, result) -> None:
    welcome.on_member_joined(instance, event, result)
