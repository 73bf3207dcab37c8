"""The conversation workspace: one account's conversation with a contact or a group chat.

The page shows the history newest first (paged by id, `?after=`), the unread counts of the
accounts that share the peer, a reply box for every message type (the compose form's fields
and checks, sending through `conversations.reply`) and quick replies from the enabled
templates. New messages appear without a reload: the page polls `messages.json?after_id=`.
Everything is decided in `services.conversations`; who may read is `messaging.view_message` on
the account's instance (else 404), who may reply is the send path's rule.
"""
import uuid

from django.contrib import messages as flash
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from wework.errors import ConflictError

from . import display, extensions, permissions
from .errors import MessagingInvalid, SendPermissionDenied
from .forms import CONTENT_FIELDS, TYPE_FIELDS, ComposeForm
from .models import SendStatus
from .services import conversations
from .services.templates import compose_templates
from .views import _ctx, page

PAGE_SIZE = 30
QUICK_REPLIES = 20


def _open(request, account_id, chat_wxid):
    try:
        return conversations.open_conversation(request.user, account_id, chat_wxid)
    except conversations.ConversationNotFound as exc:
        raise Http404(exc.message) from exc


def present(row: dict, conversation) -> dict:
    """A message row as the page shows it."""
    meta = row.get("message_metadata") or {}
    inbound = row.get("task_id") is None and meta.get("direction") != "out"
    sender = (meta.get("sender") or {}) if inbound else {}
    return {
        "id": row["id"],
        "inbound": inbound,
        "sender": sender.get("name") or sender.get("id") or (conversation.name if inbound else ""),
        "time": row.get("send_time") or row.get("created_at"),
        "html": display.render(row["message_type"], row.get("message_content")),
        "failed": not inbound and row.get("send_status") == SendStatus.FAILED,
        "pending": not inbound and row.get("send_status") in (SendStatus.PENDING, SendStatus.SENDING),
        "error": row.get("error_message") or row.get("error_code") or "",
        "task_id": row.get("task_id"),
    }


def _reply_form(request, conversation, data=None):
    account = conversation.account
    choices = [(conversation.chat_wxid, conversation.name)]
    return ComposeForm(data, accounts=[account], contacts=[] if conversation.is_group else choices,
                       groups=choices if conversation.is_group else [],
                       initial={"account": str(account.pk), "message_type": "text"})


@page
def conversation(request, account_id, chat_wxid):
    conv = _open(request, account_id, chat_wxid)
    can_reply = permissions.may(request.user, permissions.SEND_MESSAGE, conv.account.instance_id)
    form = _reply_form(request, conv)
    if request.method == "POST":
        if not can_reply:
            raise PermissionDenied
        form = _reply_form(request, conv, _reply_data(request, conv))
        if form.is_valid():
            try:
                task = conversations.reply(request.user, conv, form.task_request(conv.account),
                                           idempotency_key=request.POST.get("idempotency_key") or None)
            except SendPermissionDenied as exc:
                raise PermissionDenied(exc.message) from exc
            except MessagingInvalid as exc:
                form.add_request_errors(exc)
            except ConflictError as exc:  # the key of another reply, or this one still being sent
                form.add_error(None, exc.message)
            else:
                flash.success(request, _("Reply queued (task %(id)s).") % {"id": task.pk})
                return redirect(request.path)
    after = request.GET.get("after", "")
    page_ = conversations.history(conv, after=int(after) if after.isdigit() else None, limit=PAGE_SIZE)
    rows = [present(row, conv) for row in page_.items]
    return render(request, "messaging/conversation.html", _ctx(
        request, title=_("Conversation with %(name)s") % {"name": conv.name}, conversation=conv, rows=rows,
        next_after=page_.next_after, first_page=not after, newest_id=rows[0]["id"] if rows else 0,
        accounts=conversations.unread_by_account(request.user, conv),
        form=form, can_reply=can_reply, type_fields=TYPE_FIELDS, content_fields=[form[name] for name in CONTENT_FIELDS],
        quick_replies=list(compose_templates().order_by("sort_order", "name")[:QUICK_REPLIES]) if can_reply else [],
        idempotency_key=uuid.uuid4().hex, panels=extensions.conversation_panels(request, conv),
        poll_url=reverse("messaging:conversation_poll", args=[conv.account.pk, conv.chat_wxid]),
        read_url=reverse("messaging:conversation_read", args=[conv.account.pk, conv.chat_wxid]),
    ))


def _reply_data(request, conv):
    """The posted reply with the conversation as its only receiver (whatever was posted)."""
    data = request.POST.copy()
    data["account"] = str(conv.account.pk)
    data.setlist("groups" if conv.is_group else "contacts", [conv.chat_wxid])
    data.setlist("contacts" if conv.is_group else "groups", [])
    data.pop("use_filters", None)
    data.setdefault("priority", "1")
    return data


@page
def conversation_poll(request, account_id, chat_wxid):
    """New messages above `after_id` (oldest first, rendered) and the unread count."""
    conv = _open(request, account_id, chat_wxid)
    after_id = request.GET.get("after_id", "")
    if not after_id.isdigit():
        return JsonResponse({"after_id": [_("Give the id of the newest message shown.")]}, status=400)
    rows = [present(row, conv) for row in conversations.newer(conv, int(after_id))]
    # ids as strings: Snowflake ids are above 2**53, which a JavaScript number rounds (the page
    # then asked for the wrong cursor and marked a message that does not exist as read)
    return JsonResponse({
        "messages": [{"id": str(r["id"]), "inbound": r["inbound"],
                      "html": render_to_string("messaging/_conversation_message.html", {"m": r}, request)}
                     for r in rows],
        "newest_id": str(rows[-1]["id"] if rows else int(after_id)),
        "unread": conversations.unread_count(conv.account.pk, conv.chat_wxid),
    })


@page
@require_POST
def conversation_read(request, account_id, chat_wxid):
    conv = _open(request, account_id, chat_wxid)
    try:
        marker = conversations.mark_read(request.user, conv, request.POST.get("message_id") or None)
    except MessagingInvalid as exc:
        return JsonResponse(exc.fields or {"message_id": [exc.message]}, status=400)
    return JsonResponse({"last_read_message_id": str(marker),
                         "unread": conversations.unread_count(conv.account.pk, conv.chat_wxid)})
