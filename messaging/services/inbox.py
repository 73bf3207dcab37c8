"""The inbox: the conversations with unread received messages, across the accounts a user may
read, newest first (docs/conversations.md, "The inbox").

Nothing here reads a message shard. Each conversation's row of `conversation_reads` carries
the newest received message (`last_inbound_message_id`, its time and a preview) and
`has_unread`; the inbound handler moves them up when it stores a message (`record_inbound`, in
the event's transaction) and the read marker clears `has_unread` in the same UPDATE that moves
it (`services.conversations._advance`). A page is then a keyset walk by
`last_inbound_message_id` (Snowflake ids: ordered by time, unique per message, so per
conversation):

- a user who may read few accounts (at most PER_ACCOUNT_MAX): one query per account on
  `idx_account_unread (account_id, has_unread, last_inbound_message_id)`, each `LIMIT page`,
  merged: O(accounts x page) index entries, whatever the number of conversations;
- more accounts (or every account): one query on `idx_unread (has_unread,
  last_inbound_message_id)`, walked backwards and filtered by account.

Peer names are read per page: one query per instance shard of contacts and of groups.
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, Q, Value, When

from contacts.models import Contact, Group, WeworkAccount
from wework import shards

from .. import permissions
from ..models import ChatType, ConversationRead, MessageType

VIEW_MESSAGE = "messaging.view_message"
#: Up to this many readable accounts, a page asks each account's index range.
PER_ACCOUNT_MAX = 20
PAGE_SIZE = 30
MAX_LIMIT = 200
PREVIEW_CHARS = 200
FIELDS = ("id", "account_id", "chat_wxid", "chat_type", "last_inbound_message_id", "last_inbound_at",
          "last_inbound_preview", "last_read_message_id")


@dataclass(frozen=True)
class InboxPage:
    items: list[dict]
    #: the cursor of the next (older) page, None on the last one
    next_before: int | None
    #: the newest `last_inbound_message_id` of the page (the polling cursor), 0 when empty
    newest: int


def preview_of(message_type: str, text: str | None) -> str:
    if message_type == MessageType.TEXT:
        return (text or "")[:PREVIEW_CHARS]
    return f"[{message_type}]"


def shown_preview(preview: str) -> str:
    """A stored preview as shown: a non-text message's type by its translated name."""
    if preview.startswith("[") and preview.endswith("]") and preview[1:-1] in MessageType.values:
        return f"[{MessageType(preview[1:-1]).label}]"
    return preview


def record_inbound(account_id: int, chat_wxid: str, chat_type: int, message_id: int, at: datetime | None,
                   preview: str) -> None:
    """A received message was stored: move the conversation's newest received message up to
    it and mark it unread if the marker is below. A message older than the newest one known
    (a late delivery) changes nothing. Runs in the caller's transaction (the event's)."""
    values = {"last_inbound_message_id": message_id, "last_inbound_at": at,
              "last_inbound_preview": preview[:PREVIEW_CHARS], "chat_type": chat_type,
              "has_unread": Case(When(last_read_message_id__lt=message_id, then=Value(1)), default=Value(0))}
    qs = ConversationRead.objects.filter(account_id=account_id, chat_wxid=chat_wxid)
    if qs.filter(last_inbound_message_id__lt=message_id).update(**values) or qs.exists():
        return
    try:
        with transaction.atomic():
            ConversationRead.objects.create(
                account_id=account_id, chat_wxid=chat_wxid, chat_type=chat_type, last_inbound_message_id=message_id,
                last_inbound_at=at, last_inbound_preview=preview[:PREVIEW_CHARS], has_unread=1)
    except IntegrityError:  # created meanwhile (another event of the conversation, or a reader)
        qs.filter(last_inbound_message_id__lt=message_id).update(**values)


def readable_account_ids(user: Any, account: Any = None) -> list[int] | None:
    """Ids of the accounts whose messages `user` may read (optionally only `account`); None
    for every account (a global grant, no account chosen)."""
    if account not in (None, ""):
        if not str(account).isdigit():
            return []
        found = WeworkAccount.objects.filter(pk=int(account)).values_list("pk", "instance_id").first()
        if found is None or not permissions.may(user, VIEW_MESSAGE, found[1]):
            return []
        return [found[0]]
    if permissions.may(user, VIEW_MESSAGE, None):
        return None
    return sorted(permissions.scope(WeworkAccount.objects.all(), user, VIEW_MESSAGE).values_list("pk", flat=True))


def _unread() -> Any:
    return ConversationRead.objects.filter(has_unread=1)


def page(user: Any, *, before: Any = None, account: Any = None, limit: int = PAGE_SIZE) -> InboxPage:
    """A page of the inbox, newest received message first, older than `before` (a
    `last_inbound_message_id` of the previous page)."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    bound = int(before) if str(before or "").isdigit() else None
    ids = readable_account_ids(user, account)
    cond = Q(last_inbound_message_id__lt=bound) if bound else Q()
    rows = _walk(ids, cond, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return InboxPage(items=_present(rows), next_before=rows[-1]["last_inbound_message_id"] if more else None,
                     newest=rows[0]["last_inbound_message_id"] if rows else 0)


def newer(user: Any, after: int, *, account: Any = None, limit: int = 50) -> InboxPage:
    """Conversations whose newest received message is above `after` and still unread (what a
    shown inbox lacks), newest first: the polling of the inbox page and the API."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    rows = _walk(readable_account_ids(user, account), Q(last_inbound_message_id__gt=int(after)), limit)
    return InboxPage(items=_present(rows), next_before=None,
                     newest=rows[0]["last_inbound_message_id"] if rows else int(after))


def _walk(ids: list[int] | None, cond: Q, limit: int) -> list[dict]:
    """Unread conversations of the accounts `ids` (None: all) matching `cond`, newest first."""
    order = "-last_inbound_message_id"
    if ids is not None and not ids:
        return []
    if ids is None or len(ids) > PER_ACCOUNT_MAX:
        qs = _unread().filter(cond)
        if ids is not None:
            qs = qs.filter(account_id__in=ids)
        return list(qs.order_by(order).values(*FIELDS)[:limit])
    per_account = [list(_unread().filter(cond, account_id=pk).order_by(order).values(*FIELDS)[:limit]) for pk in ids]
    merged = heapq.merge(*per_account, key=lambda r: r["last_inbound_message_id"], reverse=True)
    return [row for _, row in zip(range(limit), merged, strict=False)]


def _present(rows: list[dict]) -> list[dict]:
    """Rows with their account and peer name (one query per instance shard and kind)."""
    if not rows:
        return []
    accounts = WeworkAccount.all_objects.in_bulk({r["account_id"] for r in rows})
    wanted: dict[tuple[int, bool], set[str]] = defaultdict(set)
    for row in rows:
        account = accounts.get(row["account_id"])
        if account is not None:
            wanted[(account.instance_id, row["chat_type"] == ChatType.GROUP)].add(row["chat_wxid"])
    names: dict[tuple[int, str], str] = {}
    for (instance_id, is_group), wxids in wanted.items():
        try:
            if is_group:
                found = (shards.for_instance(Group, instance_id, create=False).filter(group_wxid__in=wxids)
                         .values_list("account_id", "group_wxid", "group_name"))
                names.update({(a, w): n for a, w, n in found if n})
            else:
                found = (shards.for_instance(Contact, instance_id, create=False).filter(wxid__in=wxids)
                         .values_list("account_id", "wxid", "remark", "nickname"))
                names.update({(a, w): r or n for a, w, r, n in found if r or n})
        except shards.ShardError:
            continue
    out = []
    for row in rows:
        account = accounts.get(row["account_id"])
        out.append({**row, "account": account,
                    "name": names.get((row["account_id"], row["chat_wxid"])) or row["chat_wxid"],
                    "is_group": row["chat_type"] == ChatType.GROUP,
                    "preview": shown_preview(row["last_inbound_preview"] or "")})
    return out


def unread_after_read(target: int) -> Case:
    """`has_unread` once the read marker is at `target` (the marker's UPDATE sets both)."""
    return Case(When(last_inbound_message_id__gt=target, then=Value(1)), default=Value(0))
