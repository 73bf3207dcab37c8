"""Tags on contacts: set and removed one by one or in bulk, by operators, the API and rules.

`scrm_contact_tags` says who carries which tag; the design's `contacts.tags` column of each
touched contact is rewritten in the same transaction: its tags that are not platform tags (from
a sync) are kept, the platform's tags replace the rest. Rows are written in chunks, one UPDATE
per distinct resulting tag list, so tagging 100,000 contacts with one tag is a few hundred
statements, not 100,000.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import Contact, WeworkAccount
from messaging.models import MessageReceiver, ReceiverType
from wework import audit, shards
from wework.db.layout import connection_for

from .. import conf
from ..errors import invalid
from ..models import ContactTag, Tag, TagRule, TagSource
from . import access, matching

# Raw SQL on this app's own tables: its database (per-module databases, wework.db.layout).
connection = connection_for("scrm")


def resolve_tags(tags: Iterable[Tag | str | int]) -> list[Tag]:
    """Tags given as objects, names or ids; ScrmInvalid (field `tags`) naming unknown ones."""
    wanted = list(tags or [])
    objs = [t for t in wanted if isinstance(t, Tag)]
    ids = [int(t) for t in wanted if isinstance(t, int) or (isinstance(t, str) and t.isdigit())]
    names = [t for t in wanted if isinstance(t, str) and not t.isdigit()]
    found = {t.pk: t for t in objs}
    found.update({t.pk: t for t in Tag.objects.filter(pk__in=ids)})
    by_name = {t.name: t for t in Tag.objects.filter(name__in=names)}
    found.update({t.pk: t for t in by_name.values()})
    unknown = [str(i) for i in ids if i not in found] + [n for n in names if n not in by_name]
    if unknown:
        raise invalid("tags", _("Unknown tags: %(list)s.") % {"list": ", ".join(unknown)})
    if not found:
        raise invalid("tags", _("Choose at least one tag."))
    return list(found.values())


def _contacts(account: WeworkAccount):
    return shards.for_instance(Contact, account.instance_id).filter(account_id=account.pk)


def _existing_wxids(account: WeworkAccount, wxids: Sequence[str]) -> list[str]:
    found: list[str] = []
    qs = _contacts(account)
    for start in range(0, len(wxids), 1000):
        found += qs.filter(wxid__in=wxids[start:start + 1000]).values_list("wxid", flat=True)
    return found


def tag_contacts(user, account: WeworkAccount, wxids: Iterable[str], tags, *,
                 source: str = TagSource.MANUAL, strict: bool = True) -> int:
    """Put `tags` on the account's contacts `wxids`; returns how many (contact, tag) pairs are
    new. `strict`: a wxid that is not a contact of the account is a 400 naming it; else skipped."""
    access.require(user, access.TAG_CONTACTS, account.instance_id)
    tag_objs = resolve_tags(tags)
    wxids = _checked(account, wxids, strict)
    added = 0
    chunk = int(conf.get("TAG_CHUNK"))
    with transaction.atomic():
        for start in range(0, len(wxids), chunk):
            part = wxids[start:start + chunk]
            have = set(ContactTag.objects.filter(account=account, contact_wxid__in=part, tag__in=tag_objs)
                       .values_list("contact_wxid", "tag_id"))
            rows = [(t.pk, account.pk, w, str(source)) for w in part for t in tag_objs if (w, t.pk) not in have]
            added += _insert(rows)
            sync_column(account, part)
        _audit("scrm.contacts.tag", account, wxids, tag_objs, added, source)
    return added


def untag_contacts(user, account: WeworkAccount, wxids: Iterable[str], tags, *, strict: bool = True) -> int:
    """Take `tags` off the account's contacts `wxids`; returns how many pairs were removed."""
    access.require(user, access.UNTAG_CONTACTS, account.instance_id)
    tag_objs = resolve_tags(tags)
    wxids = _checked(account, wxids, strict)
    removed = 0
    chunk = int(conf.get("TAG_CHUNK"))
    with transaction.atomic():
        for start in range(0, len(wxids), chunk):
            part = wxids[start:start + chunk]
            removed += ContactTag.objects.filter(account=account, contact_wxid__in=part, tag__in=tag_objs).delete()[0]
            sync_column(account, part)
        _audit("scrm.contacts.untag", account, wxids, tag_objs, removed, None)
    return removed


def _insert(rows: list[tuple]) -> int:
    """Multi-row INSERT of (tag, account, wxid, source), a row already there skipped (a
    concurrent tagging): the ORM's bulk_create spends most of its time compiling 1,000 objects."""
    if not rows:
        return 0
    table = connection.ops.quote_name(ContactTag._meta.db_table)
    verb = "INSERT IGNORE INTO" if connection.vendor == "mysql" else "INSERT OR IGNORE INTO"
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(f"{verb} {table} (tag_id, account_id, contact_wxid, source, created_at) VALUES "
                       + ",".join(["(%s, %s, %s, %s, %s)"] * len(rows)),
                       [connection.ops.adapt_datetimefield_value(now) if v is now else v
                        for row in rows for v in (*row, now)])
    return len(rows)


def _checked(account: WeworkAccount, wxids: Iterable[str], strict: bool) -> list[str]:
    wanted = list(dict.fromkeys(str(w) for w in wxids or [] if w))
    if not wanted:
        raise invalid("contacts", _("Choose at least one contact."))
    found = set(_existing_wxids(account, wanted))
    unknown = [w for w in wanted if w not in found]
    if unknown and strict:
        shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise invalid("contacts", _("%(n)d are not contacts of this account: %(list)s.")
                      % {"n": len(unknown), "list": shown})
    return [w for w in wanted if w in found]


def _audit(operation, account, wxids, tags, changed, source):
    shown = wxids[:20]
    audit.record(operation, resource_type="scrm_contact_tags", resource_id=account.pk,
                 resource_name=str(account), operation_type="UPDATE",
                 new_values={"tags": sorted(t.name for t in tags), "contacts": len(wxids), "changed": changed},
                 extra={"contact_wxids": shown, "source": source} if source else {"contact_wxids": shown})


def sync_column(account: WeworkAccount, wxids: Sequence[str]) -> int:
    """Rewrite the design's `tags` column of these contacts from the platform's tags (tags from
    elsewhere kept); returns the number of UPDATE statements."""
    platform_names = set(Tag.objects.values_list("name", flat=True))
    carried: dict[str, set[str]] = defaultdict(set)
    for wxid, name in (ContactTag.objects.filter(account=account, contact_wxid__in=wxids)
                       .values_list("contact_wxid", "tag__name")):
        carried[wxid].add(name)
    by_value: dict[tuple, list[int]] = defaultdict(list)
    qs = _contacts(account)
    for pk, wxid, current in qs.filter(wxid__in=wxids).values_list("pk", "wxid", "tags"):
        kept = [t for t in (current or []) if t not in platform_names]
        value = tuple(kept + sorted(carried.get(wxid, ())))
        if list(value) != list(current or []):
            by_value[value].append(pk)
    for value, pks in by_value.items():
        qs.filter(pk__in=pks).update(tags=list(value))
    return len(by_value)


def tags_of(account_id: int, wxid: str) -> list[str]:
    return list(ContactTag.objects.filter(account_id=account_id, contact_wxid=wxid)
                .order_by("tag__name").values_list("tag__name", flat=True))


# --- rules ----------------------------------------------------------------------------------

def apply_keyword_rules(account: WeworkAccount, wxid: str, text: str | None) -> int:
    """Tag a contact whose reply matches an enabled keyword rule of the account."""
    if not text:
        return 0
    tags = [rule.tag for rule in TagRule.objects.filter(account=account, kind="keyword", is_enabled=True)
            .select_related("tag") if matching.matches(text, rule.keyword, rule.match_type)]
    if not tags or not _existing_wxids(account, [wxid]):
        return 0
    return tag_contacts(None, account, [wxid], tags, source=TagSource.RULE)


def apply_campaign_rule(user, rule: TagRule) -> int:
    """Tag every contact receiver of the rule's campaign with its tag."""
    if rule.task_id is None:
        raise invalid("task", _("A campaign rule needs a campaign."))
    access.require(user, access.TAG_CONTACTS, rule.account.instance_id)
    wxids = list(MessageReceiver.objects.filter(task_id=rule.task_id, receiver_type=ReceiverType.CONTACT)
                 .values_list("receiver_wxid", flat=True))
    if not wxids:
        return 0
    added = tag_contacts(None, rule.account, wxids, [rule.tag], source=TagSource.CAMPAIGN, strict=False)
    rule.applied_count = len(wxids)
    rule.save(update_fields=["applied_count", "updated_at"])
    return added


def delete_tag(user, tag: Tag) -> None:
    """Delete a tag: taken off every contact (their `tags` columns rewritten), then removed."""
    accounts = WeworkAccount.all_objects.filter(
        pk__in=ContactTag.objects.filter(tag=tag).values("account_id").distinct())
    with transaction.atomic():
        for account in accounts:
            wxids = list(ContactTag.objects.filter(tag=tag, account=account).values_list("contact_wxid", flat=True))
            access.require(user, access.UNTAG_CONTACTS, account.instance_id)
            ContactTag.objects.filter(tag=tag, account=account).delete()
            # the tag still exists here, so its name counts as a platform tag and is dropped
            chunk = int(conf.get("TAG_CHUNK"))
            for start in range(0, len(wxids), chunk):
                sync_column(account, wxids[start:start + chunk])
            _audit("scrm.contacts.untag", account, wxids, [tag], len(wxids), None)
        tag.delete()
