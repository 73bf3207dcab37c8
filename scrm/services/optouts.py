"""Opt-outs: a reply with an opt-out keyword marks the contact opted out of the account's
broadcasts and auto-replies, and is confirmed once; an operator may opt them back in.

`record_from_event` runs before anything else is done with a received message (a before-observer
of `message.received`, committed in its own transaction), so a failure later in the intake never
loses an opt-out; a redelivered event finds the contact opted out already and does nothing.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import WeworkAccount
from instances.exceptions import EventNotReady
from messaging.models import ReceiverType
from messaging.services import lifecycle, sending
from messaging.services.requests import TaskRequest
from wework import audit
from wework.errors import DomainError

from .. import conf
from ..models import MatchType, OptOut, OptOutKeyword
from ..errors import invalid
from . import access, matching, tags

log = logging.getLogger("scrm.optouts")


def matched_keyword(text: str | None) -> str | None:
    """The enabled opt-out keyword the text matches (exact or contains), or None."""
    if not text:
        return None
    for keyword, match_type in OptOutKeyword.objects.filter(is_enabled=True).values_list("keyword", "match_type"):
        if matching.matches(text, keyword, match_type or MatchType.EXACT):
            return keyword
    return None


def record_from_event(instance, event: dict) -> OptOut | None:
    """The opt-out a received message asks for, recorded (None when it asks for none)."""
    if not matching.is_private_from_customer(event):
        return None
    keyword = matched_keyword(matching.inbound_text(event))
    if keyword is None:
        return None
    account = WeworkAccount.all_objects.filter(instance_id=instance.pk, wxid=event.get("account_id")).first()
    if account is None:
        raise EventNotReady(f"opt-out for account {event.get('account_id')!r}, not known on instance "
                            f"{instance.pk} yet")
    data = event.get("data") or {}
    row, _changed = opt_out(account, str(data["conversation_id"])[:100], keyword=keyword,
                            event_id=str(event.get("event_id") or "")[:100])
    return row


def opt_out(account: WeworkAccount, wxid: str, *, keyword: str = "", event_id: str = "") -> tuple[OptOut, bool]:
    """Mark `wxid` opted out of `account`'s broadcasts; (row, True) when it was not before, and
    then the confirmation is sent (once per opt-out)."""
    with transaction.atomic():
        row = OptOut.objects.select_for_update().filter(account=account, contact_wxid=wxid).first()
        if row is None:
            try:
                with transaction.atomic():
                    row = OptOut.objects.create(account=account, contact_wxid=wxid, is_opted_out=False)
            except IntegrityError:
                row = OptOut.objects.select_for_update().get(account=account, contact_wxid=wxid)
        if row.is_opted_out:
            return row, False
        row.is_opted_out = True
        row.keyword, row.event_id = keyword[:50], event_id
        row.opted_out_at = timezone.now()
        row.confirmation_task = _confirm(account, wxid)
        row.save()
        _skip_in_running_broadcasts(account, wxid)
    return row, True


def _skip_in_running_broadcasts(account: WeworkAccount, wxid: str) -> int:
    """From then on: the contact's pending receivers of broadcasts already under way are skipped."""
    skipped = lifecycle.skip_receiver_in_broadcasts(account.pk, wxid, code="opted_out",
                                                    reason=_("The contact opted out."))
    if skipped:
        audit.record("scrm.opt_out.skip_receivers", resource_type="message_receivers", resource_id=account.pk,
                     resource_name=wxid, operation_type="UPDATE", new_values={"skipped": skipped})
    return skipped


def _confirm(account: WeworkAccount, wxid: str):
    text = conf.get("OPT_OUT_CONFIRMATION")
    owner = account.instance.created_by if account.instance_id else None
    if not text or owner is None:
        return None
    try:
        with transaction.atomic():
            return sending.create_task(owner, TaskRequest.single(
                account=account, receiver_wxid=wxid, message_type="text", content={"text": text}))
    except DomainError as exc:  # the account cannot send now: the opt-out stands, unconfirmed
        log.warning("opt-out of %s on account %s not confirmed: %s", wxid, account.pk, exc.message)
        return None


def opt_in(user, rows: Iterable[OptOut]) -> int:
    """Opt contacts back in (an operator's decision, audited row by row); returns how many."""
    done = 0
    for row in rows:
        access.require(user, access.CHANGE_OPT_OUT, row.account.instance_id)
        if not row.is_opted_out:
            continue
        row.is_opted_out = False
        row.opted_in_at = timezone.now()
        row.save(update_fields=["is_opted_out", "opted_in_at", "updated_at"])
        done += 1
    return done


def opt_out_by_operator(user, account: WeworkAccount, wxids: Iterable[str]) -> int:
    """Opt contacts out on their behalf (they asked in another channel); no confirmation.
    `wxids` are WeCom ids of the account's contacts: anything else is refused (ScrmInvalid under
    `contacts`, nothing written), as tagging refuses it."""
    access.require(user, access.CHANGE_OPT_OUT, account.instance_id)
    wanted = _contact_wxids(account, wxids)
    done = 0
    for wxid in wanted:
        with transaction.atomic():
            row, created = OptOut.objects.get_or_create(account=account, contact_wxid=wxid)
            if row.is_opted_out and not created:
                continue
            row.is_opted_out, row.opted_out_at, row.keyword = True, timezone.now(), ""
            row.save()  # audited by the model signals, as every save
            _skip_in_running_broadcasts(account, wxid)
            done += 1
    return done


def _contact_wxids(account: WeworkAccount, wxids: Iterable[str]) -> list[str]:
    """`wxids` without repeats, when every one is a contact of the account."""
    wxids = list(wxids or [])
    if not all(isinstance(w, str) and w.strip() for w in wxids):
        raise invalid("contacts", _("Contacts are given by their WeCom ids (text)."))
    wanted = list(dict.fromkeys(wxids))
    if not wanted:
        raise invalid("contacts", _("Choose at least one contact."))
    found = set(tags.existing_wxids(account, wanted))
    unknown = [w for w in wanted if w not in found]
    if unknown:
        shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise invalid("contacts", _("%(n)d are not contacts of this account: %(list)s.")
                      % {"n": len(unknown), "list": shown})
    return wanted


def opted_out_wxids(account_id: int, wxids: Iterable[str] | None = None) -> set[str]:
    qs = OptOut.objects.filter(account_id=account_id, is_opted_out=True)
    if wxids is None:
        return set(qs.values_list("contact_wxid", flat=True))
    wxids = list(wxids)
    if not wxids:
        return set()
    # An account has usually far fewer opt-outs than a broadcast has receivers: one indexed
    # read of them (at most one row more than there are wxids, so never worse than O(wxids))
    # instead of an IN query per 1,000 receivers (100 queries for a 100,000-receiver task).
    head = list(qs.values_list("contact_wxid", flat=True)[: len(wxids) + 1])
    if len(head) <= len(wxids):
        return set(head).intersection(wxids)
    found: set[str] = set()
    for start in range(0, len(wxids), 1000):
        found |= set(qs.filter(contact_wxid__in=wxids[start:start + 1000]).values_list("contact_wxid", flat=True))
    return found


def is_opted_out(account_id: int, wxid: str) -> bool:
    return OptOut.objects.filter(account_id=account_id, contact_wxid=wxid, is_opted_out=True).exists()


def opted_out_after_send(task, receivers: list) -> set[str]:
    """messaging's opt-out source for mass-send statistics: of a chunk of the task's receivers
    `(wxid, sent_at)`, those who are opted out of the task's account now and opted out at or
    after their send."""
    sent_at = dict(receivers)
    rows = (OptOut.objects.filter(account_id=task.account_id, is_opted_out=True,
                                  contact_wxid__in=list(sent_at), opted_out_at__isnull=False)
            .values_list("contact_wxid", "opted_out_at"))
    return {wxid for wxid, at in rows if sent_at.get(wxid) is not None and at >= sent_at[wxid]}


def broadcast_exclusion(account, receivers: list[dict]) -> set:
    """messaging's receiver exclusion: contacts who opted out of this account's broadcasts."""
    contacts = [r["wxid"] for r in receivers if r["type"] == ReceiverType.CONTACT]
    return {(int(ReceiverType.CONTACT), wxid) for wxid in opted_out_wxids(account.pk, contacts)}
