"""Keyword auto-replies: an inbound one-to-one message matching an enabled rule of its account
gets the rule's reply, through messaging's send path.

Never twice in AUTO_REPLY_INTERVAL_S to the same contact, at most AUTO_REPLY_MAX_PER_HOUR an
hour, and never to: a contact who opted out, a message that is itself an opt-out, our own or
history messages, group chats, another account of the platform, or a text that is one of our
own replies (another bot echoing us). With the per-hour cap, two bots answering each other stop
after a handful of messages at most.
"""
from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import transaction

from contacts.models import WeworkAccount
from messaging.services import sending, templates
from messaging.services.requests import TaskRequest
from wework.errors import DomainError

from .. import conf
from ..models import AutoReply
from . import matching, optouts

log = logging.getLogger("scrm.autoreplies")
KEY = "scrm:autoreply:"



def check_reply(text) -> str:
    """The text of an auto-reply, checked as its send will check it (messaging's template
    syntax, the built-in variables only). Raises MessagingInvalid under `content`."""
    return templates.validate_plain_text(text)

def matching_rule(account_id: int, text: str | None) -> AutoReply | None:
    if not text:
        return None
    rules = (AutoReply.objects.select_related("created_by").filter(account_id=account_id, is_enabled=True)
             .order_by("sort_order", "id"))
    exact = [r for r in rules if r.match_type == "exact"]
    for rule in exact + [r for r in rules if r.match_type != "exact"]:
        if matching.matches(text, rule.keyword, rule.match_type):
            return rule
    return None


def _is_echo(account_id: int, text: str) -> bool:
    said = matching.normalize(text)
    return any(matching.normalize(reply) == said
               for reply in AutoReply.objects.filter(account_id=account_id).values_list("reply", flat=True))


def _take_slot(account_id: int, wxid: str) -> bool:
    """Whether a reply may go now (and the slot is taken): interval and hourly cap."""
    key = f"{KEY}{account_id}:{wxid}"
    interval = int(conf.get("AUTO_REPLY_INTERVAL_S"))
    if interval > 0 and not cache.add(key, 1, timeout=interval):
        return False
    hour = f"{key}:hour"
    cache.add(hour, 0, timeout=3600)
    try:
        n = cache.incr(hour)
    except ValueError:
        cache.set(hour, 1, timeout=3600)
        n = 1
    return n <= int(conf.get("AUTO_REPLY_MAX_PER_HOUR"))


def reply_to(account: WeworkAccount, event: dict):
    """The auto-reply task for a received message event, or None."""
    if not matching.is_private_from_customer(event):
        return None
    text = matching.inbound_text(event)
    data = event.get("data") or {}
    wxid = str(data.get("conversation_id"))
    sender = str((data.get("sender") or {}).get("id") or wxid)
    if not text or optouts.matched_keyword(text) or optouts.is_opted_out(account.pk, wxid):
        return None
    if WeworkAccount.all_objects.filter(wxid=sender).exists():
        return None  # one of the platform's own accounts: two rule sets would talk to each other
    rule = matching_rule(account.pk, text)
    if rule is None or rule.created_by is None or _is_echo(account.pk, text):
        return None
    if not _take_slot(account.pk, wxid):
        log.info("auto-reply to %s on account %s held back (rate limit)", wxid, account.pk)
        return None
    try:
        with transaction.atomic():
            return sending.create_task(rule.created_by, TaskRequest.single(
                account=account, receiver_wxid=wxid, message_type="text", content={"text": rule.reply}))
    except DomainError as exc:
        log.warning("auto-reply %s not sent: %s", rule.pk, exc.message)
        return None
