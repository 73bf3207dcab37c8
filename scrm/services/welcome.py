"""Welcome messages: sent once to each new contact of an account (`contact.added`), and to a
group chat when someone joins it (`room.member_joined`), through messaging's send path (a single
task: paced, retried, idempotent by its message uuid).

Once: a `scrm_welcomes_sent` row per (account, kind, contact or group/member), inserted in the
event's transaction before the task is created; a redelivered event meets the unique key and
sends nothing.
"""
from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from contacts.models import WeworkAccount
from messaging.services import sending, templates
from messaging.services.requests import TaskRequest
from wework.errors import DomainError

from ..models import WelcomeKind, WelcomeMessage, WelcomeSent
from . import optouts

log = logging.getLogger("scrm.welcome")


def check_content(text) -> str:
    """The text of a welcome message, checked as its send will check it (messaging's template
    syntax; the built-in variables only: a welcome has no template or task variables). Raises
    MessagingInvalid under `content`."""
    return templates.validate_plain_text(text)


def _account(instance, event) -> WeworkAccount | None:
    return WeworkAccount.objects.select_related("instance").filter(
        instance_id=instance.pk, wxid=event.get("account_id")).first()


def _welcome(account: WeworkAccount, kind: str) -> WelcomeMessage | None:
    return (WelcomeMessage.objects.select_related("created_by")
            .filter(account=account, kind=kind, is_enabled=True).first())


def _claim(account: WeworkAccount, kind: str, target: str) -> WelcomeSent | None:
    """The row that makes this welcome once, or None when it was sent already."""
    try:
        with transaction.atomic():
            return WelcomeSent.objects.create(account=account, kind=kind, target=target[:210])
    except IntegrityError:
        return None


def _send(welcome: WelcomeMessage, request: TaskRequest):
    if welcome.created_by is None:
        log.warning("welcome %s has no owner to send on behalf of", welcome.pk)
        return None
    try:
        with transaction.atomic():
            return sending.create_task(welcome.created_by, request)
    except DomainError as exc:  # the account cannot send now, or the owner lost the right
        log.warning("welcome %s not sent: %s", welcome.pk, exc.message)
        return None


def on_contact_added(instance, event: dict, result) -> WelcomeSent | None:
    """After `contact.added` is applied: welcome the new contact once."""
    account = _account(instance, event)
    contact = (event.get("data") or {}).get("contact") or {}
    wxid = str(contact.get("contact_id") or "")
    if account is None or not wxid:
        return None
    welcome = _welcome(account, WelcomeKind.CONTACT)
    if welcome is None or optouts.is_opted_out(account.pk, wxid):
        return None
    sent = _claim(account, WelcomeKind.CONTACT, wxid)
    if sent is None:
        return None
    sent.task = _send(welcome, TaskRequest.single(account=account, receiver_wxid=wxid, message_type="text",
                                                  content={"text": welcome.content}))
    sent.save(update_fields=["task"])
    return sent


def on_member_joined(instance, event: dict, result) -> WelcomeSent | None:
    """After `room.member_joined` is applied: one welcome to the group, mentioning the members
    not welcomed there before."""
    account = _account(instance, event)
    data = event.get("data") or {}
    room = str(data.get("room_id") or "")
    if account is None or not room:
        return None
    welcome = _welcome(account, WelcomeKind.GROUP)
    if welcome is None:
        return None
    members = [str(m.get("member_id")) for m in data.get("members") or [] if m.get("member_id")]
    members = [m for m in members if m != account.wxid]
    claimed = [row for row in (_claim(account, WelcomeKind.GROUP, f"{room}/{m}") for m in members) if row]
    if not claimed:
        return None
    task = _send(welcome, TaskRequest.single(
        account=account, receiver_wxid=room, receiver_type="group", message_type="text",
        content={"text": welcome.content}, at_members=[row.target.split("/", 1)[1] for row in claimed]))
    for row in claimed:
        row.task = task
        row.save(update_fields=["task"])
    return claimed[0]
