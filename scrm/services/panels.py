"""What scrm shows beside a conversation (messaging's `register_conversation_panel`): the
contact's tags, with add and remove for whoever may tag and untag on the account's instance.
The forms post to scrm's own view (`scrm.views.conversation_tags`), which calls the one tag
service (permission checks and audit there)."""
from __future__ import annotations

from django.template.loader import render_to_string
from django.urls import reverse

from contacts.models import Contact
from wework import shards

from ..models import Tag
from . import access, tags

#: Tags offered in the panel's "add" list.
TAG_CHOICES = 300


def is_contact(account, wxid: str) -> bool:
    try:
        return (shards.for_instance(Contact, account.instance_id, create=False)
                .filter(account_id=account.pk, wxid=wxid).exists())
    except shards.ShardError:
        return False


def conversation_tags_panel(request, conversation) -> str | None:
    """The tag panel of a one-to-one conversation with a contact of the account; None for a
    group chat or a stranger (tags are on contacts)."""
    if conversation.is_group or not is_contact(conversation.account, conversation.chat_wxid):
        return None
    account = conversation.account
    carried = tags.tags_of(account.pk, conversation.chat_wxid)
    may_tag = access.allowed(request.user, access.TAG_CONTACTS, account.instance_id)
    may_untag = access.allowed(request.user, access.UNTAG_CONTACTS, account.instance_id)
    offered = []
    if may_tag:
        offered = list(Tag.objects.exclude(name__in=carried).select_related("group")
                       .order_by("group__sort_order", "group__name", "sort_order", "name")[:TAG_CHOICES])
    return render_to_string("scrm/_conversation_tags.html", {
        "tags": carried, "offered": offered, "may_tag": may_tag, "may_untag": may_untag,
        "action": reverse("scrm:conversation_tags", args=[account.pk, conversation.chat_wxid]),
    }, request)
