"""Tags on contacts: set and removed one by one or in bulk, by operators, the API and rules.

`scrm_contact_tags` says who carries which tag; the design's `contacts.tags` column of each
touched contact is rewritten in the same transaction: its tags that are not platform tags (from
a sync) are kept, the platform's tags replace the rest. Rows are written in chunks, one UPDATE
per distinct resulting tag list, so tagging 100,000 contacts with one tag is a few hundred
statements, not 100,000.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import Contact, WeworkAccount
from messaging.models import MessageReceiver, ReceiverType
from wework import audit, shards
from wework.ids import fits_bigint
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
    ids = [int(t) for t in wanted if isinstance(t, int) or (isinstance(t, str) and t.isascii() and t.isdigit())]
    names = [t for t in wanted if isinstance(t, str) and not (t.isascii() and t.isdigit())]
    found = {t.pk: t for t in objs}
    # an id beyond a BIGINT names no tag (and SQLite could not bind it): unknown, not queried
    found.update({t.pk: t for t in Tag.objects.filter(pk__in=[i for i in ids if fits_bigint(i)])})
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


def existing_wxids(account: WeworkAccount, wxids: Sequence[str]) -> list[str]:
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
    return _bulk(account, wxids, tag_objs, strict, add=True, source=source)


def untag_contacts(user, account: WeworkAccount, wxids: Iterable[str], tags, *, strict: bool = True) -> int:
    """Take `tags` off the account's contacts `wxids`; returns how many pairs were removed."""
    access.require(user, access.UNTAG_CONTACTS, account.instance_id)
    tag_objs = resolve_tags(tags)
    return _bulk(account, wxids, tag_objs, strict, add=False, source=None)


def _bulk(account: WeworkAccount, wxids: Iterable[str], tag_objs: list[Tag], strict: bool, *,
          add: bool, source: str | None) -> int:
    """The one bulk path (bench/bench_scrm.py). Per chunk of TAG_CHUNK contacts, three
    statements: the contacts' rows read and locked (`FOR UPDATE`: two taggings of one contact
    queue instead of losing each other's column), the join rows inserted (`INSERT IGNORE`, its
    row count is what was new) or deleted, and one UPDATE of the `tags` column per distinct
    resulting value. The new column is the locked value with the tags added or taken off: the
    join table and the column change together in this transaction, so the column stays what
    `sync_column` would compute from the join table (tags from a sync kept) without reading
    the join table back. Raw SQL on purpose: the ORM spent more time compiling 1,000-item IN
    lists than the database spent running them. A strict call that meets a wxid that is not
    the account's contact raises after the walk, rolling everything back."""
    wanted = list(dict.fromkeys(str(w) for w in wxids or [] if w))
    if not wanted:
        raise invalid("contacts", _("Choose at least one contact."))
    names = sorted(t.name for t in tag_objs)
    platform = set(Tag.objects.values_list("name", flat=True))
    chunk = int(conf.get("TAG_CHUNK"))
    table = connection.ops.quote_name(_contacts(account).model._meta.db_table)
    changed, found_all, unknown = 0, [], []
    with transaction.atomic():
        for start in range(0, len(wanted), chunk):
            part = wanted[start:start + chunk]
            current = _lock_contacts(table, account.pk, part)
            found = [w for w in part if w in current]
            unknown += [w for w in part if w not in current]
            if not found:
                continue
            found_all += found
            if add:
                changed += _insert([(t.pk, account.pk, w, str(source)) for w in found for t in tag_objs])
            else:
                changed += ContactTag.objects.filter(account=account, contact_wxid__in=found,
                                                     tag__in=tag_objs).delete()[0]
            _rewrite(table, {w: current[w] for w in found}, names, platform, add)
        if unknown and strict:
            shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
            raise invalid("contacts", _("%(n)d are not contacts of this account: %(list)s.")
                          % {"n": len(unknown), "list": shown})
        if not found_all:
            return 0
        _audit("scrm.contacts.tag" if add else "scrm.contacts.untag", account, found_all, tag_objs, changed, source)
    return changed


def _lock_contacts(table: str, account_id: int, wxids: Sequence[str]) -> dict[str, tuple[int, list]]:
    """{wxid: (pk, tags)} of the account's contacts among `wxids`, rows locked."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, wxid, tags FROM {table} WHERE account_id = %s AND wxid IN ("
                       + ",".join(["%s"] * len(wxids)) + ")" + lock, [account_id, *wxids])
        rows = cursor.fetchall()
    return {wxid: (pk, _tags_value(value)) for pk, wxid, value in rows}


def _tags_value(value) -> list:
    if value in (None, ""):
        return []
    try:
        loaded = json.loads(value) if isinstance(value, (str, bytes)) else value
    except ValueError:
        return []
    return [str(t) for t in loaded] if isinstance(loaded, list) else []


def _rewrite(table: str, rows: dict[str, tuple[int, list]], names: list[str], platform: set[str], add: bool) -> int:
    """UPDATE the `tags` column of `rows` ({wxid: (pk, tags)}): kept tags first, then the
    platform's sorted, with `names` added or taken off; one statement per distinct value."""
    by_value: dict[tuple, list[int]] = defaultdict(list)
    for pk, current in rows.values():
        kept = [t for t in current if t not in platform]
        carried = {t for t in current if t in platform}
        carried = carried | set(names) if add else carried - set(names)
        value = tuple(kept + sorted(carried))
        if list(value) != current:
            by_value[value].append(pk)
    field = Contact._meta.get_field("tags")
    with connection.cursor() as cursor:
        for value, pks in by_value.items():
            cursor.execute(f"UPDATE {table} SET tags = %s WHERE id IN (" + ",".join(["%s"] * len(pks)) + ")",
                           [field.get_db_prep_save(list(value), connection), *pks])
    return len(by_value)


def _insert(rows: list[tuple]) -> int:
    """Multi-row INSERT of (tag, account, wxid, source), a row already there skipped; returns
    the rows inserted (the ORM's bulk_create spends most of its time compiling 1,000 objects)."""
    if not rows:
        return 0
    table = connection.ops.quote_name(ContactTag._meta.db_table)
    verb = "INSERT IGNORE INTO" if connection.vendor == "mysql" else "INSERT OR IGNORE INTO"
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(f"{verb} {table} (tag_id, account_id, contact_wxid, source, created_at) VALUES "
                       + ",".join(["(%s, %s, %s, %s, %s)"] * len(rows)),
                       [v for row in rows for v in (*row, now)])
        return max(int(cursor.rowcount), 0)


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
    if not tags or not existing_wxids(account, [wxid]):
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
