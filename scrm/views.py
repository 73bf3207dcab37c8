"""scrm's pages: the tag panel's form on the conversation page (messaging's conversation
workspace shows the panel, `services.panels`; its forms post here)."""
from django.contrib import messages as flash
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from messaging.services import conversations
from messaging.views import page
from wework.errors import DomainError

from .services import panels, tags


@page
@require_POST
def conversation_tags(request, account_id, chat_wxid):
    """Add (`op=add`, `tags` ids or names) or remove (`op=remove`, `tag`) tags of the contact of
    a conversation; back to the conversation with a message. Reading the conversation needs
    `messaging.view_message` (else 404); tagging and untagging the scrm permissions, checked by
    the tag service (audited there)."""
    try:
        conv = conversations.open_conversation(request.user, account_id, chat_wxid)
    except conversations.ConversationNotFound as exc:
        raise Http404(exc.message) from exc
    if conv.is_group or not panels.is_contact(conv.account, conv.chat_wxid):
        raise Http404(_("Tags are on contacts: this conversation is not with a contact of the account."))
    op = request.POST.get("op")
    try:
        if op == "add":
            done = tags.tag_contacts(request.user, conv.account, [conv.chat_wxid], request.POST.getlist("tags"))
            flash.success(request, _("Tags added.") if done else _("The contact already had these tags."))
        elif op == "remove":
            tags.untag_contacts(request.user, conv.account, [conv.chat_wxid], request.POST.getlist("tags"))
            flash.success(request, _("Tag removed."))
        else:
            flash.error(request, _("Unknown operation."))
    except DomainError as exc:
        flash.error(request, exc.message if not exc.fields else " ".join(
            str(m) for messages in exc.fields.values() for m in messages))
    return redirect(reverse("messaging:conversation", args=[conv.account.pk, conv.chat_wxid]) + "#tags")
