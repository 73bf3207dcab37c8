"""Receivers of a task: explicit lists and filters over the account's contacts and groups,
@mentions and reply-to checks, per-receiver template values, and writing the receiver rows."""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import Contact, Group, GroupMember, WeworkAccount
from wework import shards
from wework.db import literals
from wework.db.layout import connection_for
from wework.db.models import SoftDeleteManager

from .. import conf, extensions
from ..errors import invalid
from ..models import Message, MessageReceiver, MessageTask, ReceiverSendStatus as RS, ReceiverType

# Raw SQL on this app's own tables: its database (per-module databases, wework.db.layout).
connection = connection_for("messaging")

MENTIONS_KEY = "@mentions"  # reserved keys in template_variables / receiver variables
REPLY_TO_KEY = "@reply_to"
MAX_MENTIONS = 500
REMARK_VARIABLE = "receiver_remark"  # the operator's remark, for templates that ask for it

#: A receiver dict: {"type": ReceiverType, "wxid": str, "name": str | None, "variables": dict}
Receiver = dict

_TYPE_NAMES = {
    "contact": ReceiverType.CONTACT, "single": ReceiverType.CONTACT, "1": ReceiverType.CONTACT,
    1: ReceiverType.CONTACT, "group": ReceiverType.GROUP, "room": ReceiverType.GROUP,
    "2": ReceiverType.GROUP, 2: ReceiverType.GROUP,
}


def max_receivers() -> int:
    return int(conf.get("MAX_RECEIVERS_PER_TASK"))


def too_many_receivers_error(n: int, limit: int):
    return invalid("receivers", _("%(n)d receivers is more than the limit of %(limit)d per task; split the "
                                  "broadcast into several tasks.") % {"n": n, "limit": limit})


def normalize_receivers(items: Sequence | None) -> list[Receiver]:
    """Explicit receivers (wxids or {"wxid", "type", "name", "variables"}) → receiver dicts,
    de-duplicated by (type, wxid)."""
    if items is None:
        return []
    if not isinstance(items, (list, tuple)):
        raise invalid("receivers", _("Receivers must be a list."))
    limit = max_receivers()
    if len(items) > limit:
        raise too_many_receivers_error(len(items), limit)
    out = []
    seen = set()
    contact = int(ReceiverType.CONTACT)
    fast_keys = _FAST_KEYS
    # The usual shapes ("wxid", {"wxid": .., "variables": {..}}) are read inline (a call per
    # receiver is a measurable share of a 100,000-receiver task); anything else, or anything
    # odd in them, goes through `_normalize_receiver` (same result, or its error).
    for index, item in enumerate(items):
        receiver = None
        if type(item) is str:
            wxid = item.strip()
            if wxid and len(wxid) <= 100:
                receiver = {"type": contact, "wxid": wxid, "name": None, "variables": {}}
        elif type(item) is dict and item.keys() <= fast_keys and "wxid" in item:
            wxid = item["wxid"]
            variables = item.get("variables") or {}
            if type(wxid) is str and type(variables) is dict:
                wxid = wxid.strip()
                if wxid and len(wxid) <= 100:
                    receiver = {"type": contact, "wxid": wxid, "name": item.get("name"), "variables": variables}
        if receiver is None:
            receiver = _normalize_receiver(index, item)
            key = (receiver["type"], receiver["wxid"])
        else:
            key = (contact, wxid)
        if key not in seen:
            seen.add(key)
            out.append(receiver)
    return out


_FAST_KEYS = frozenset(("wxid", "variables", "name"))


def _normalize_receiver(index: int, item) -> Receiver:
    number = {"i": index + 1}
    if isinstance(item, str):
        item = {"wxid": item}
    if not isinstance(item, dict):
        raise invalid("receivers", _("Receiver %(i)d is not an object.") % number)
    wxid = str(item.get("wxid") or item.get("receiver_wxid") or "").strip()
    if not wxid or len(wxid) > 100:
        raise invalid("receivers", _("Receiver %(i)d has no valid wxid.") % number)
    rtype = _TYPE_NAMES.get(item.get("type", item.get("receiver_type", "contact")))
    if rtype is None:
        raise invalid("receivers", _("Receiver %(i)d has an unknown type; use contact or group.") % number)
    variables = item.get("variables") or {}
    if not isinstance(variables, dict):
        raise invalid("receivers", _("Receiver %(i)d: variables must be an object.") % number)
    return {"type": int(rtype), "wxid": wxid, "name": item.get("name"), "variables": variables}


def _contact_name(row: Mapping) -> str:
    """The customer's own name: the remark is the operator's private note about them (shown
    to a customer it can offend), used only where a template asks for `receiver_remark`."""
    return row.get("nickname") or row["wxid"]


def _remark_variables(remark: str | None) -> dict:
    return {REMARK_VARIABLE: remark} if remark else {}


def resolve_explicit_receivers(account: WeworkAccount, receivers: list[Receiver]) -> list[Receiver]:
    """Check every explicit receiver exists among the account's contacts/groups; fill names."""
    by_type: dict[int, list[Receiver]] = {ReceiverType.CONTACT: [], ReceiverType.GROUP: []}
    for r in receivers:
        by_type[r["type"]].append(r)
    unknown = []
    for rtype, items in by_type.items():
        if items:
            unknown.extend(_resolve_of_type(account, rtype, items))
    if unknown:
        shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise invalid("receivers", _("%(n)d receivers are not contacts or groups of this account: %(list)s.")
                      % {"n": len(unknown), "list": shown})
    return receivers


def _resolve_of_type(account: WeworkAccount, rtype: int, items: list[Receiver]) -> list[str]:
    """Fill the names of `items` (all of `rtype`) from the account's shard; return unknown wxids.

    Raw SELECTs (the ORM built a dict per row: 100,000 for a broadcast). When the account has
    at most twice as many of them as there are items (a broadcast to most of its contacts), one
    read of the account's rows (0.17 s for 100,000) instead of IN lists of 5,000 ids (MariaDB
    took about 1 s for 100,000 ids that way); otherwise, or on a bigger account, the IN lists.
    Either way at most O(items) rows are read."""
    if rtype == ReceiverType.CONTACT:
        model = shards.for_instance(Contact, account.instance_id).model
        key, fields = "wxid", ("wxid", "nickname", "remark")
    else:
        model = shards.for_instance(Group, account.instance_id).model
        key, fields = "group_wxid", ("group_wxid", "group_name", "group_name")
    # The shard is contacts' table: read on contacts' database (per-module databases).
    connection = connection_for(model._meta.app_label)
    qn = connection.ops.quote_name
    meta = model._meta
    live = (f"{qn(meta.get_field('deleted_at').column)} IS NULL AND "
            if isinstance(model._default_manager, SoftDeleteManager) else "")  # as the default manager
    of_account = (f"SELECT {', '.join(qn(meta.get_field(f).column) for f in fields)} "
                  f"FROM {qn(meta.db_table)} WHERE {live}{qn(meta.get_field('account').column)} = {int(account.pk)}")
    select = f"{of_account} AND {qn(meta.get_field(key).column)} IN "
    unknown: list[str] = []
    with connection.cursor() as cursor:
        bound = 2 * len(items)
        cursor.execute(f"{of_account} LIMIT {bound + 1}")
        rows = cursor.fetchall()
        if len(rows) <= bound:
            _fill_names(rtype, items, {row[0]: row for row in rows}, unknown)
            return unknown
        quote = literals.string_quoter(connection)
        for start in range(0, len(items), 5000):
            chunk = items[start : start + 5000]
            if quote is not None:  # escaped by the driver's C function, no parameters
                cursor.execute(select + "(" + ", ".join([quote(r["wxid"]) for r in chunk]) + ")", [])
            else:
                cursor.execute(select + "(" + ", ".join(["%s"] * len(chunk)) + ")", [r["wxid"] for r in chunk])
            _fill_names(rtype, chunk, {row[0]: row for row in cursor.fetchall()}, unknown)
    return unknown


def _fill_names(rtype: int, items: list[Receiver], found: dict, unknown: list[str]) -> None:
    """Names (and a contact's remark variable) from `found` rows (wxid, name, remark) by wxid,
    exactly as given; the wxids not found go to `unknown`."""
    contact = rtype == ReceiverType.CONTACT
    for r in items:
        row = found.get(r["wxid"])
        if row is None:
            unknown.append(r["wxid"])
        elif not r.get("name"):
            r["name"] = row[1] or row[0]  # a contact's own name (_contact_name): never the remark
            if contact and row[2]:
                r["variables"] = {REMARK_VARIABLE: row[2], **(r.get("variables") or {})}


def select_receivers(account: WeworkAccount, filters: Mapping) -> list[Receiver]:
    """Receivers chosen by filters over the account's contacts and groups.

    filters: {"source": "contacts"|"groups"|"all", "tags": [..] (any of), "tags_all": [..],
              "tags_none": [..], "contact_type": 1..3, "search": "text in name/remark",
              "include_blocked": false}, or the key of an audience an app above registered
              (`extensions.register_audience`, scrm's `"segment": <id>`).
    Contacts that are blocked, deleted or not friends any more are left out unless
    include_blocked is set.
    """
    if not isinstance(filters, dict):
        raise invalid("filters", _("Filters must be an object."))
    for key in extensions.audience_keys():
        resolve = extensions.audience(key)
        if resolve is not None and filters.get(key) not in (None, ""):
            return _limited(resolve(account, filters[key], filters))
    source = filters.get("source", "contacts")
    if source not in ("contacts", "groups", "all"):
        raise invalid("filters", _("source must be contacts, groups or all."))
    tags = TagFilter(_tag_set(filters, "tags"), _tag_set(filters, "tags_all"), _tag_set(filters, "tags_none"))
    search = (filters.get("search") or "").strip()
    rows = []
    if source in ("contacts", "all"):
        rows.append(_filtered_contacts(account, filters, search, tags))
    if source in ("groups", "all"):
        rows.append(_filtered_groups(account, search, tags))
    return _limited(receiver for source_rows in rows for receiver in source_rows)


def _limited(receivers) -> list[Receiver]:
    limit = max_receivers()
    out = []
    for receiver in receivers:
        out.append(receiver)
        if len(out) > limit:
            raise invalid("filters", _("The filters select more than %(limit)d receivers, the limit per "
                                       "task; narrow them or split the broadcast.") % {"limit": limit})
    return out


def _tag_set(filters: Mapping, key: str) -> frozenset:
    tags = filters.get(key) or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    if not isinstance(tags, (list, tuple, set, frozenset)):
        raise invalid("filters", _("%(key)s must be a list of tags.") % {"key": key})
    return frozenset(str(t) for t in tags)


class TagFilter:
    """Tags of the design's `tags` column: any of, all of, none of (empty: no condition)."""

    def __init__(self, any_of: frozenset, all_of: frozenset = frozenset(), none_of: frozenset = frozenset()):
        self.any_of, self.all_of, self.none_of = any_of, all_of, none_of

    def __bool__(self) -> bool:
        return bool(self.any_of or self.all_of or self.none_of)

    def matches(self, row_tags) -> bool:
        have = set(row_tags or [])
        return ((not self.any_of or bool(self.any_of & have)) and self.all_of <= have
                and not (self.none_of & have))


def _filtered_contacts(account: WeworkAccount, filters: Mapping, search: str, tags: TagFilter):
    qs = shards.for_instance(Contact, account.instance_id).filter(account_id=account.pk)
    if filters.get("contact_type"):
        qs = qs.filter(contact_type=int(filters["contact_type"]))
    if not filters.get("include_blocked"):
        qs = qs.filter(is_blocked=False).exclude(friend_status__in=[2, 3])
    if search:
        qs = qs.filter(Q(nickname__icontains=search) | Q(remark__icontains=search) | Q(wxid=search))
    for wxid, nickname, remark, row_tags in (
        qs.order_by("id").values_list("wxid", "nickname", "remark", "tags").iterator(chunk_size=5000)
    ):
        if tags and not tags.matches(row_tags):
            continue
        yield {"type": ReceiverType.CONTACT, "wxid": wxid, "name": nickname or wxid,
               "variables": _remark_variables(remark)}


def _filtered_groups(account: WeworkAccount, search: str, tags: TagFilter):
    qs = shards.for_instance(Group, account.instance_id).filter(account_id=account.pk)
    if search:
        qs = qs.filter(group_name__icontains=search)
    for wxid, name, row_tags in qs.order_by("id").values_list("group_wxid", "group_name", "tags").iterator(
        chunk_size=5000
    ):
        if tags and not tags.matches(row_tags):
            continue
        yield {"type": ReceiverType.GROUP, "wxid": wxid, "name": name or wxid, "variables": {}}


def receiver_values(task_variables: Mapping | None, receiver: Mapping, defaults: Mapping | None = None) -> dict:
    """Variables for one receiver: built-ins < template defaults < task < receiver."""
    return values_for_receivers(task_variables, defaults)(receiver)


def values_for_receivers(task_variables: Mapping | None, defaults: Mapping | None = None):
    """`receiver_values` for many receivers of one task: what the task gives (defaults, task
    variables) is merged once, each receiver adds its built-ins and own variables."""
    shared = dict(defaults or {})
    shared.update({k: v for k, v in (task_variables or {}).items() if not k.startswith("@")})

    def values(receiver: Mapping) -> dict:
        name = receiver.get("name") or receiver["wxid"]
        out = {"receiver_name": name, REMARK_VARIABLE: name, "receiver_wxid": receiver["wxid"]}
        out.update(shared)
        own = receiver.get("variables")
        if own:
            out.update({k: v for k, v in own.items() if not k.startswith("@")})
        return out

    return values


def parse_mentions(value) -> list[str] | str | None:
    """@members as given (a list, a comma-separated string or "all") → a list of ids, "all" or
    None; MessagingInvalid under `at_members` when it is neither."""
    if value in (None, "", []):
        return None
    if isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if (not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)
            or len(value) > MAX_MENTIONS):
        raise invalid("at_members", _("@members must be a list of member ids or \"all\"."))
    return value


def check_mentions_are_members(account: WeworkAccount, mentions: list[str] | str,
                               receivers: list[Receiver]) -> None:
    """@mentions need group chats to mention in: refuse them (also "all") on a task without
    group receivers, and name the member ids that are not current members (in the platform's
    group members, the instance's shard) of every group receiver."""
    group_wxids = [r["wxid"] for r in receivers if r["type"] == ReceiverType.GROUP]
    if not group_wxids:
        raise invalid("at_members", _("@members only apply to group chats, and this task sends to no group chat."))
    if mentions == "all":
        return
    groups = shards.for_instance(Group, account.instance_id)
    members = shards.for_instance(GroupMember, account.instance_id)
    unknown: set[str] = set()
    for start in range(0, len(group_wxids), 500):
        chunk = group_wxids[start : start + 500]
        ids = dict(groups.filter(account_id=account.pk, group_wxid__in=chunk).values_list("pk", "group_wxid"))
        found = set(
            members.filter(group_id__in=list(ids), member_wxid__in=mentions, left_at__isnull=True)
            .values_list("group_id", "member_wxid")
        )
        unknown.update(m for m in mentions for group_id in ids if (group_id, m) not in found)
    if unknown:
        shown = sorted(unknown)
        raise invalid("at_members", _("Not members of the group chats of this task: %(list)s.")
                      % {"list": ", ".join(shown[:10]) + (" …" if len(shown) > 10 else "")})


def check_reply_to(account: WeworkAccount, reply_to) -> int | None:
    """The id of the message to reply to (a message of the same account), or None."""
    if reply_to in (None, ""):
        return None
    try:
        parent = shards.get(Message, int(reply_to))
    except (Message.DoesNotExist, TypeError, ValueError):
        raise invalid("reply_to", _("The message to reply to does not exist.")) from None
    if parent.account_id != account.pk:
        raise invalid("reply_to", _("The message to reply to belongs to another account."))
    return parent.pk


RECEIVER_COLUMNS = ("task_id", "receiver_type", "receiver_wxid", "receiver_name", "send_status",
                    "retry_count", "variables", "created_at", "updated_at")


def materialize_receivers(task: MessageTask, receivers: list[Receiver], now: datetime | None = None) -> None:
    """Insert receiver rows with multi-row INSERTs in chunks (inside the caller's transaction);
    a raw INSERT because `bulk_create` builds a model instance per row (100,000 per task).

    What every row shares (task, state, retry count, timestamps) is written into the statement
    once per row as a literal, so the driver escapes 4 values a row instead of 9."""
    now = now or timezone.now()
    qn = connection.ops.quote_name
    chunk = int(conf.get("MATERIALIZE_CHUNK"))
    ts = connection.ops.adapt_datetimefield_value(now)  # as the backend stores it (naive UTC)
    if not _TIMESTAMP_RE.match(str(ts)):  # pragma: no cover - every backend adapts to this form
        raise ValueError(f"unexpected timestamp literal {ts!r}")
    row_sql = f"({int(task.pk)}, %s, %s, %s, {int(RS.PENDING)}, 0, %s, '{ts}', '{ts}')"
    insert = (f"INSERT INTO {qn(MessageReceiver._meta.db_table)} "
              f"({', '.join(qn(c) for c in RECEIVER_COLUMNS)}) VALUES ")
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    with connection.cursor() as cursor:
        quote = literals.string_quoter(connection)
        for start in range(0, len(receivers), chunk):
            part = receivers[start : start + chunk]
            if quote is not None:
                # MySQL/MariaDB: the strings escaped by the driver's C function into the
                # statement, no parameters (the per-value `literal()` was most of the Python).
                lead, tail = f"({int(task.pk)}, ", f", {int(RS.PENDING)}, 0, "
                end = f", '{ts}', '{ts}')"
                rows = []
                for r in part:
                    variables = r.get("variables")
                    name = r.get("name")
                    rows.append(f"{lead}{int(r['type'])}, {quote(r['wxid'])}, "
                                f"{quote(str(name)[:100]) if name else 'NULL'}{tail}"
                                f"{quote(dumps(variables)) if variables else 'NULL'}{end}")
                cursor.execute(insert + ", ".join(rows), [])  # [] : the driver undoes the quoted %%
                continue
            params: list = []
            add = params.extend
            for r in part:
                variables = r.get("variables")
                name = r.get("name")
                add((int(r["type"]), r["wxid"], str(name)[:100] if name else None,
                     dumps(variables) if variables else None))
            cursor.execute(insert + ", ".join([row_sql] * len(part)), params)


_TIMESTAMP_RE = re.compile(r"\A[0-9][0-9 :.T+-]*\Z")


def failed_receivers(task: MessageTask) -> QuerySet:
    return MessageReceiver.objects.filter(task_id=task.pk, send_status=RS.FAILED).order_by("id")


def unknown_contacts(account: WeworkAccount, wxids: Sequence[str]) -> list[str]:
    """Of `wxids`, those that are not contacts of the account (a card shares one of them)."""
    qs = shards.for_instance(Contact, account.instance_id).filter(account_id=account.pk)
    found: set[str] = set()
    for start in range(0, len(wxids), 1000):
        found.update(qs.filter(wxid__in=wxids[start:start + 1000]).values_list("wxid", flat=True))
    return [w for w in wxids if w not in found]
