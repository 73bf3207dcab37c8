"""Segments: saved filters over one instance's contacts, counted live (capped) and used as a
broadcast's audience.

Tag and opt-out conditions are EXISTS subqueries on `scrm_contact_tags` / `scrm_opt_outs`
correlated by (account, wxid), both on their unique keys; dates use the contacts' own columns
(`add_time`, `last_chat_time`). A count reads at most SEGMENT_COUNT_CAP + 1 ids (LIMIT), never a
COUNT(*) over a shard of any size: it answers "10000" or "more than 10000".
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, QuerySet
from django.utils.translation import gettext as _

from contacts.models import Contact, WeworkAccount
from messaging.models import ReceiverType
from wework import shards

from messaging.errors import invalid as task_invalid

from .. import conf
from ..models import ContactTag, OptOut, Segment


@dataclass(frozen=True)
class SegmentFilters:
    """What a segment selects (also used unsaved: the contacts list's tag filters)."""

    account_id: int | None = None
    tags_all: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()
    tags_none: tuple[str, ...] = ()
    added_after: object = None
    added_before: object = None
    last_message_after: object = None
    last_message_before: object = None
    opted_out: bool | None = None

    @classmethod
    def of(cls, segment: Segment) -> SegmentFilters:
        return cls(account_id=segment.account_id, tags_all=tuple(segment.tags_all or ()),
                   tags_any=tuple(segment.tags_any or ()), tags_none=tuple(segment.tags_none or ()),
                   added_after=segment.added_after, added_before=segment.added_before,
                   last_message_after=segment.last_message_after, last_message_before=segment.last_message_before,
                   opted_out=segment.opted_out)


# Each (later-than, earlier-than) pair of a segment's date conditions.
DATE_RANGES = (("added_after", "added_before"), ("last_message_after", "last_message_before"))


def check_segment(data: Mapping, add_error) -> None:
    """A segment's rules (the admin's form and the API's serializer call this): its account is on
    its instance, and each date range ends after it starts (`add_error(field, message)`)."""
    account, instance = data.get("account"), data.get("instance")
    if account is not None and instance is not None and account.instance_id != instance.pk:
        add_error("account", _("The account is not on this instance."))
    for after, before in DATE_RANGES:
        start, end = data.get(after), data.get(before)
        if start is not None and end is not None and start >= end:
            add_error(before, _("This date must be later than the one in “%(field)s”.")
                      % {"field": _field_label(after)})


def _field_label(name: str) -> str:
    field = Segment._meta.get_field(name)
    return str(getattr(field, "verbose_name", name))


def _tagged(names: Iterable[str]) -> Exists:
    return Exists(ContactTag.objects.filter(account_id=OuterRef("account_id"), contact_wxid=OuterRef("wxid"),
                                            tag__name__in=list(names)))


def apply_filters(qs: QuerySet, f: SegmentFilters) -> QuerySet:
    """`qs` (contacts of one shard) narrowed by the filters."""
    if f.account_id:
        qs = qs.filter(account_id=f.account_id)
    for name in f.tags_all:
        qs = qs.filter(_tagged([name]))
    if f.tags_any:
        qs = qs.filter(_tagged(f.tags_any))
    if f.tags_none:
        qs = qs.exclude(_tagged(f.tags_none))
    if f.added_after:
        qs = qs.filter(add_time__gte=f.added_after)
    if f.added_before:
        qs = qs.filter(add_time__lt=f.added_before)
    if f.last_message_after:
        qs = qs.filter(last_chat_time__gte=f.last_message_after)
    if f.last_message_before:
        qs = qs.filter(last_chat_time__lt=f.last_message_before)
    if f.opted_out is not None:
        opted = Exists(OptOut.objects.filter(account_id=OuterRef("account_id"), contact_wxid=OuterRef("wxid"),
                                             is_opted_out=True))
        qs = qs.filter(opted) if f.opted_out else qs.exclude(opted)
    return qs


def contacts_of(segment: Segment) -> QuerySet:
    try:
        qs = shards.for_instance(Contact, segment.instance_id, create=False)
    except shards.ShardMissing:
        return Contact.objects.none()
    return apply_filters(qs, SegmentFilters.of(segment))


@dataclass(frozen=True)
class Count:
    value: int
    capped: bool  # there are more than `value`

    def __str__(self):
        if self.capped:
            return _("more than %(n)d") % {"n": self.value}
        return str(self.value)


def count(segment: Segment, cap: int | None = None) -> Count:
    """The segment's live count, reading at most `cap` + 1 ids."""
    cap = int(cap or conf.get("SEGMENT_COUNT_CAP"))
    n = len(contacts_of(segment).values_list("pk", flat=True)[: cap + 1])
    return Count(min(n, cap), n > cap)


def audience(account: WeworkAccount, value, filters: Mapping):
    """messaging's `"segment"` audience: the segment's contacts of the task's account that may
    receive a broadcast (not blocked, still friends)."""
    try:
        segment = Segment.objects.get(pk=int(value))
    except (Segment.DoesNotExist, TypeError, ValueError):
        raise task_invalid("filters", _("Unknown segment.")) from None
    if segment.instance_id != account.instance_id or segment.account_id not in (None, account.pk):
        raise task_invalid("filters", _("The segment is for other accounts than the task's."))
    qs = contacts_of(segment).filter(account_id=account.pk)
    if not filters.get("include_blocked"):
        qs = qs.filter(is_blocked=False).exclude(friend_status__in=[2, 3])
    for wxid, nickname, remark in qs.order_by("id").values_list("wxid", "nickname", "remark").iterator(
            chunk_size=5000):
        yield {"type": int(ReceiverType.CONTACT), "wxid": wxid, "name": nickname or wxid,
               "variables": {"receiver_remark": remark} if remark else {}}
