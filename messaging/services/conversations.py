"""Conversations: one account's messages with one contact or group chat, across month shards.

A conversation is (account, chat_wxid). Its history is read newest first, paged by id
(`shards.paginate`): each month shard is asked `account_id = ? AND chat_wxid = ? AND id < ?
ORDER BY id DESC LIMIT n`, which the design's `idx_account_chat (account_id, chat_wxid)` serves
as an index range (InnoDB appends the primary key to every secondary index), so a page costs
O(page) whatever the shard's size, and shards newer than the cursor are not asked.

Unread: the received messages (no task) above the account's read marker (`ConversationRead`),
counted on the same index range and capped at UNREAD_CAP. Replies go through the one send path
(`sending.create_task`: the send permission, the checks, pacing, idempotent dispatch); an
`idempotency_key` makes a repeated submission return the first task instead of sending twice.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from accounts.models import User
from contacts.models import Contact, Group, WeworkAccount
from wework import audit, shards
from wework.errors import ConflictError, NotFoundError
from wework.ids import id_time

from .. import permissions
from ..errors import invalid
from ..models import ChatType, ConversationRead, Message, MessageTask, TaskType
from . import inbox, sending
from .requests import TaskRequest

VIEW_MESSAGE = "messaging.view_message"
#: Unread counts stop here (shown as "99+").
UNREAD_CAP = 99
#: Columns of a message as the conversation shows it.
FIELDS = ("id", "account_id", "chat_type", "chat_wxid", "message_type", "message_content", "media_url",
          "file_name", "message_metadata", "send_status", "send_time", "error_code", "error_message",
          "task_id", "parent_message_id", "created_at")
IDEMPOTENCY_TTL_S = 24 * 3600


@dataclass(frozen=True)
class Conversation:
    account: WeworkAccount
    chat_wxid: str
    chat_type: int
    name: str

    @property
    def is_group(self) -> bool:
        return self.chat_type == ChatType.GROUP

    @property
    def receiver_type(self) -> str:
        return "group" if self.is_group else "contact"

    @property
    def key(self) -> str:
        return f"{self.account.pk}:{self.chat_wxid}"


class ConversationNotFound(NotFoundError):
    pass


def may_view(user: Any, account: WeworkAccount) -> bool:
    return permissions.may(user, VIEW_MESSAGE, account.instance_id)


def open_conversation(user: Any, account_id: Any, chat_wxid: str) -> Conversation:
    """The conversation of the account with `chat_wxid`, if `user` may read the account's
    messages (`messaging.view_message` on its instance); else ConversationNotFound (an account
    out of scope is not told apart from a missing one)."""
    account = None
    if str(account_id).isdigit():
        account = WeworkAccount.objects.select_related("instance").filter(pk=int(account_id)).first()
    chat_wxid = str(chat_wxid or "")[:100]
    if account is None or not chat_wxid or not may_view(user, account):
        raise ConversationNotFound(_("No such conversation."))
    chat_type, name = _peer(account, chat_wxid)
    if chat_type is None:
        raise ConversationNotFound(_("No such conversation."))
    return Conversation(account=account, chat_wxid=chat_wxid, chat_type=chat_type, name=name)


def _peer(account: WeworkAccount, chat_wxid: str) -> tuple[int | None, str]:
    """(chat type, display name): a group chat or a contact of the account, else what the
    newest message of the conversation says (a stranger who wrote first), else (None, "")."""
    try:
        group = (shards.for_instance(Group, account.instance_id, create=False)
                 .filter(account_id=account.pk, group_wxid=chat_wxid).values("group_name").first())
    except shards.ShardError:
        group = None
    if group is not None:
        return ChatType.GROUP, group["group_name"] or chat_wxid
    try:
        contact = (shards.for_instance(Contact, account.instance_id, create=False)
                   .filter(account_id=account.pk, wxid=chat_wxid).values("nickname", "remark").first())
    except shards.ShardError:
        contact = None
    if contact is not None:
        return ChatType.PRIVATE, contact["remark"] or contact["nickname"] or chat_wxid
    page = history_of(account.pk, chat_wxid, limit=1)
    if page.items:
        return page.items[0]["chat_type"], chat_wxid
    return None, ""


def _filters(account_id: int, chat_wxid: str) -> dict:
    return {"account_id": account_id, "chat_wxid": chat_wxid}


#: Above every id: the first page asks `id < NO_CURSOR` too. Without a bound on id, MariaDB reads
#: the conversation by `ref` on (account_id, chat_wxid) and sorts all its rows (a filesort of a
#: 20,000-message conversation: a second); with one it walks the index range backwards and stops
#: at the page (bench/bench_conversations.py).
NO_CURSOR = (1 << 63) - 1


def history_of(account_id: int, chat_wxid: str, *, after: int | None = None, limit: int = 50) -> shards.Page:
    """A page of the conversation, newest first: `items` (dicts of FIELDS), `next_after`."""
    filters = _filters(account_id, chat_wxid)
    if after is None:
        filters["pk__lt"] = NO_CURSOR
    return shards.paginate(Message, filters=filters, after=after, limit=limit, values=FIELDS)


def history(conversation: Conversation, *, after: int | None = None, limit: int = 50) -> shards.Page:
    return history_of(conversation.account.pk, conversation.chat_wxid, after=after, limit=limit)


def newer(conversation: Conversation, after_id: int, *, limit: int = 100) -> list[dict]:
    """Messages above `after_id`, oldest first (what a page that shows `after_id` lacks):
    only the shards from the cursor's month on are asked, each on the index range."""
    after_id = int(after_id)
    limit = max(1, min(int(limit), 500))
    models = list(reversed(shards.shard_models(Message, since=id_time(after_id) if after_id else None)))
    rows: list[dict] = []
    for model in models:
        qs = (model._default_manager.filter(**_filters(conversation.account.pk, conversation.chat_wxid),
                                            pk__gt=after_id)
              .order_by("pk").values(*FIELDS))
        rows.extend(qs[: limit - len(rows)])
        if len(rows) >= limit:
            break
    return rows


def last_read_id(account_id: int, chat_wxid: str) -> int:
    value = (ConversationRead.objects.filter(account_id=account_id, chat_wxid=chat_wxid)
             .values_list("last_read_message_id", flat=True).first())
    return int(value or 0)


def unread_count(account_id: int, chat_wxid: str, *, marker: int | None = None, cap: int = UNREAD_CAP) -> int:
    """Received messages above the read marker, at most cap + 1 (shown as "cap+")."""
    marker = last_read_id(account_id, chat_wxid) if marker is None else marker
    found = 0
    for model in shards.shard_models(Message, since=id_time(marker) if marker else None):
        qs = model._default_manager.filter(**_filters(account_id, chat_wxid), pk__gt=marker, task_id__isnull=True)
        found += len(qs.order_by("-pk").values_list("pk", flat=True)[: cap + 1 - found])
        if found > cap:
            break
    return found


def unread_by_account(user: Any, conversation: Conversation) -> list[dict]:
    """The same peer seen by each account of the instance the user may read that also has it
    as a contact or group: [{"account", "unread", "current"}] (one lookup per account)."""
    model, column = (Group, "group_wxid") if conversation.is_group else (Contact, "wxid")
    try:
        having = set(shards.for_instance(model, conversation.account.instance_id, create=False)
                     .filter(**{column: conversation.chat_wxid}).values_list("account_id", flat=True))
    except shards.ShardError:
        having = set()
    having.add(conversation.account.pk)
    accounts = permissions.scope(
        WeworkAccount.objects.filter(instance_id=conversation.account.instance_id, pk__in=sorted(having))
        .order_by("pk"), user, VIEW_MESSAGE)
    return [{"account": account, "unread": unread_count(account.pk, conversation.chat_wxid),
             "current": account.pk == conversation.account.pk} for account in accounts]


def newest_id(conversation: Conversation) -> int:
    page = history(conversation, limit=1)
    return int(page.items[0]["id"]) if page.items else 0


def mark_read(user: Any, conversation: Conversation, message_id: Any = None) -> int:
    """Move the account's read marker up to `message_id` (default: the newest message); it
    never moves back. Returns the marker. Audited (`conversation.read`) when it moves."""
    if message_id in (None, ""):
        target = newest_id(conversation)
    else:
        target = _own_message_id(conversation, message_id)
    if not target:
        return last_read_id(conversation.account.pk, conversation.chat_wxid)
    with transaction.atomic():
        old = _advance(conversation, target, user)
        if old is None:
            return last_read_id(conversation.account.pk, conversation.chat_wxid)
        audit.record("conversation.read", resource_type="conversation", resource_id=conversation.key,
                     resource_name=conversation.name, operation_type="UPDATE",
                     old_values={"last_read_message_id": old}, new_values={"last_read_message_id": target})
    return target


def _own_message_id(conversation: Conversation, message_id: Any) -> int:
    try:
        message = shards.get(Message, int(message_id))
    except (Message.DoesNotExist, TypeError, ValueError):
        raise invalid("message_id", _("No such message in this conversation.")) from None
    if message.account_id != conversation.account.pk or message.chat_wxid != conversation.chat_wxid:
        raise invalid("message_id", _("No such message in this conversation."))
    return int(message.pk)


def _advance(conversation: Conversation, target: int, user: Any) -> int | None:
    """The marker's old value when it moved to `target`, None when it was already there."""
    reader = user if getattr(user, "pk", None) else None
    qs = ConversationRead.objects.filter(account_id=conversation.account.pk, chat_wxid=conversation.chat_wxid)
    row = qs.select_for_update().values_list("last_read_message_id", flat=True).first()
    if row is None:
        try:
            with transaction.atomic():
                ConversationRead.objects.create(account=conversation.account, chat_wxid=conversation.chat_wxid,
                                                last_read_message_id=target, read_by=reader)
            return 0
        except IntegrityError:  # created meanwhile by another reader
            row = qs.select_for_update().values_list("last_read_message_id", flat=True).first() or 0
    if int(row) >= target:
        return None
    qs.filter(last_read_message_id__lt=target).update(last_read_message_id=target, read_by=reader,
                                                      has_unread=inbox.unread_after_read(target))
    return int(row)


def reply(user: User, conversation: Conversation, request: TaskRequest, *,
          idempotency_key: str | None = None) -> MessageTask:
    """Send one message to the conversation: `request` says what (type and content, or a
    template and its variables, @members, reply_to); its account and receiver are the
    conversation's. The send path checks the permission (`messaging.send_message`), the
    content, pacing and dispatch. With `idempotency_key`, a repeat within a day returns the
    first task (ConflictError while the first is still being created). Moves the read marker
    to the newest message: whoever answers has read the conversation."""
    request.account = conversation.account
    request.receivers = [{"wxid": conversation.chat_wxid, "type": conversation.receiver_type}]
    request.filters = None
    request.task_type = TaskType.SINGLE
    key = f"wework:msg:reply:{getattr(user, 'pk', 0)}:{idempotency_key}" if idempotency_key else None
    fingerprint = request_fingerprint(request)
    if key is not None and not cache.add(key, f"pending:{fingerprint}", IDEMPOTENCY_TTL_S):
        return _replay(cache.get(key), fingerprint)
    try:
        task = sending.create_task(user, request)
    except Exception:
        if key is not None:
            cache.delete(key)
        raise
    if key is not None:
        cache.set(key, f"{task.pk}:{fingerprint}", IDEMPOTENCY_TTL_S)
    if permissions.may(user, VIEW_MESSAGE, conversation.account.instance_id):
        mark_read(user, conversation)
    return task


def request_fingerprint(request: TaskRequest) -> str:
    """What a reply asks for, as a hash: the same idempotency key with another request is a
    conflict, not a replay."""
    asked = {name: getattr(request, name) for name in (
        "account", "receivers", "message_type", "content", "template", "template_variables", "at_members",
        "reply_to", "scheduled_time")}
    asked["account"] = getattr(asked["account"], "pk", asked["account"])
    raw = json.dumps(asked, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _replay(stored, fingerprint: str) -> MessageTask:
    """The first task of an idempotency key (stored as "<task id or pending>:<fingerprint>")."""
    previous, _sep, first_fingerprint = str(stored or "").partition(":")
    if first_fingerprint and first_fingerprint != fingerprint:
        raise ConflictError(_("This idempotency key was used for a different request: use a new key "
                              "for a new message."), code="idempotency_conflict")
    task = MessageTask.objects.filter(pk=previous).first() if previous.isdigit() else None
    if task is None:
        raise ConflictError(_("This reply is being sent already."))
    return task
