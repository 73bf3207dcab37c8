"""Address-book rows: mapping the protocol's objects onto the design's columns, upserts into
the instance's shards, listings and recounts."""
from __future__ import annotations

from django.db import connections, router, transaction

from wework import shards

from .. import bulk
from ..models import (
    Contact,
    ContactType,
    FriendStatus,
    Gender,
    Group,
    GroupMember,
    GroupRole,
    SyncStatus,
    WeworkAccount,
)
from .base import ROLE_BY_NAME, _cut, _ms

# ---------------------------------------------------------------------------------------------
# Row mapping (protocol -> design columns)
# ---------------------------------------------------------------------------------------------

CONTACT_UPDATE_FIELDS = [
    "nickname", "remark", "avatar_url", "phone", "gender", "region", "signature",
    "contact_type", "friend_status", "add_time", "custom_fields", "sync_status",
    "last_sync_time", "deleted_at", "updated_at",
]
GROUP_UPDATE_FIELDS = [
    "group_name", "group_avatar_url", "group_notice", "member_count", "max_member_count",
    "owner_wxid", "my_role", "join_time", "is_active", "sync_status", "last_sync_time",
    "deleted_at", "updated_at",
]
MEMBER_UPDATE_FIELDS = [
    "member_nickname", "group_nickname", "member_avatar_url", "role", "join_time",
    "invite_by", "is_active", "left_at", "updated_at",
]


def contact_row(account_id, item, stamp):
    gender = item.get("gender")
    return {
        "account_id": account_id,
        "wxid": _cut(item["contact_id"], 100),
        "nickname": _cut(item.get("name"), 100),
        "remark": _cut(item.get("remark"), 100),
        "avatar_url": _cut(item.get("avatar"), 500),
        "phone": _cut(item.get("phone"), 20),
        "gender": gender if gender in (0, 1, 2) else Gender.UNKNOWN,
        "region": _cut(item.get("region"), 100),
        "signature": item.get("signature"),
        "contact_type": (ContactType.OFFICIAL_ACCOUNT if item.get("kind") == "official"
                         else ContactType.FRIEND),
        "friend_status": FriendStatus.NORMAL,
        "add_time": _ms(item.get("added_at_ms")),
        "custom_fields": {
            "corp_name": item.get("corp_name"),
            "is_external": bool(item.get("is_external", False)),
        },
        "sync_status": SyncStatus.SYNCED,
        "last_sync_time": stamp,
        "deleted_at": None,
        "created_at": stamp,
        "updated_at": stamp,
    }


def group_row(account_id, item, stamp):
    return {
        "account_id": account_id,
        "group_wxid": _cut(item["room_id"], 100),
        "group_name": _cut(item.get("topic"), 200),
        "group_avatar_url": _cut(item.get("avatar"), 500),
        "group_notice": item.get("notice"),
        "member_count": int(item.get("member_count") or 0),
        "max_member_count": int(item.get("max_member_count") or 500),
        "owner_wxid": _cut(item.get("owner_id"), 100),
        "my_role": ROLE_BY_NAME.get(item.get("my_role"), GroupRole.MEMBER),
        "join_time": _ms(item.get("joined_at_ms")),
        "is_active": True,
        "sync_status": SyncStatus.SYNCED,
        "last_sync_time": stamp,
        "deleted_at": None,
        "created_at": stamp,
        "updated_at": stamp,
    }


def member_row(group_id, item, stamp):
    return {
        "group_id": group_id,
        "member_wxid": _cut(item["member_id"], 100),
        "member_nickname": _cut(item.get("name"), 100),
        "group_nickname": _cut(item.get("room_alias"), 100),
        "member_avatar_url": _cut(item.get("avatar"), 500),
        "role": ROLE_BY_NAME.get(item.get("role"), GroupRole.MEMBER),
        "join_time": _ms(item.get("joined_at_ms")),
        "invite_by": _cut(item.get("invited_by"), 100),
        "is_active": True,
        "left_at": None,
        "created_at": stamp,
        "updated_at": stamp,
    }


def upsert_contacts(instance_id, rows):
    if not rows:
        return 0
    return bulk.upsert(Contact, instance_id, rows, ["account", "wxid"],
                              CONTACT_UPDATE_FIELDS)


def _compared(update_fields, stamps):
    """A model's update fields without the sync's own stamps: what tells whether a stored row
    changed."""
    return [f for f in update_fields if f not in stamps]


CONTACT_STAMPS = ("last_sync_time", "updated_at")
GROUP_STAMPS = ("last_sync_time", "updated_at")
MEMBER_STAMPS = ("updated_at",)
CONTACT_COMPARED_FIELDS = _compared(CONTACT_UPDATE_FIELDS, CONTACT_STAMPS)
GROUP_COMPARED_FIELDS = _compared(GROUP_UPDATE_FIELDS, GROUP_STAMPS)
MEMBER_COMPARED_FIELDS = _compared(MEMBER_UPDATE_FIELDS, MEMBER_STAMPS)


def _sync_rows(model, instance_id, rows, scope, key, compared, stamps, upsert):
    """`upsert` for a sync's page of rows (one scope, one stamp): rows stored with the same
    values are only stamped (`stamps`, as the upsert wrote them, in one UPDATE by id: the sweep
    that follows the sync keeps them); new and changed rows are upserted as before. A re-sync of
    a mostly unchanged address book writes little."""
    if not rows:
        return 0
    model = shards.model_for(model, instance_id=instance_id)
    connection = connections[router.db_for_write(model)]
    # DATETIME keeps whole seconds on MySQL/MariaDB (wework.db.fields): a stored join or add time
    # is the protocol's milliseconds truncated (MariaDB; MySQL rounds, so there a rounded-up
    # value reads as changed and is written again, as before)
    seconds_only = connection.vendor == "mysql"
    times = [i for i, name in enumerate(compared) if name in ("add_time", "join_time")]
    stored = {
        found: values for found, *values in model._base_manager.filter(
            **{scope: rows[0][scope], f"{key}__in": [row[key] for row in rows]},
        ).values_list(key, "id", *compared)
    }
    changed, same = [], []
    for row in rows:
        hit = stored.get(row[key])
        if hit is None:
            changed.append(row)
            continue
        wanted = [row[name] for name in compared]
        if seconds_only:
            for i in times:
                if wanted[i] is not None:
                    wanted[i] = wanted[i].replace(microsecond=0)
        if hit[1:] == wanted:
            same.append(hit[0])
        else:
            changed.append(row)
    if same:
        # updated_at too: MariaDB's `ON UPDATE CURRENT_TIMESTAMP` (the design's DDL) would set it
        # anyway, and every backend keeps what the upsert wrote before
        model._base_manager.filter(pk__in=same).update(**{name: rows[0][name] for name in stamps})
    upsert(instance_id, changed)
    return len(rows)


def sync_contacts(instance_id, rows):
    """A sync's page of `contact_row`s (one account): see `_sync_rows`."""
    return _sync_rows(Contact, instance_id, rows, "account_id", "wxid", CONTACT_COMPARED_FIELDS,
                      CONTACT_STAMPS, upsert_contacts)


def sync_groups(instance_id, rows):
    """A sync's page of `group_row`s (one account): see `_sync_rows`."""
    return _sync_rows(Group, instance_id, rows, "account_id", "group_wxid", GROUP_COMPARED_FIELDS,
                      GROUP_STAMPS, upsert_groups)


def sync_members(instance_id, rows):
    """A sync's page of `member_row`s (one group): see `_sync_rows`."""
    return _sync_rows(GroupMember, instance_id, rows, "group_id", "member_wxid",
                      MEMBER_COMPARED_FIELDS, MEMBER_STAMPS, upsert_members)


def upsert_groups(instance_id, rows):
    if not rows:
        return 0
    return bulk.upsert(Group, instance_id, rows, ["account", "group_wxid"],
                              GROUP_UPDATE_FIELDS)


def upsert_members(instance_id, rows):
    if not rows:
        return 0
    return bulk.upsert(GroupMember, instance_id, rows, ["group", "member_wxid"],
                              MEMBER_UPDATE_FIELDS)


def ensure_instance_shards(instance_id):
    """Create the instance's contact, group and member shard tables (before any transaction:
    see instances.services.ensure_shards_for)."""
    for model in (Contact, Group, GroupMember):
        shards.model_for(model, instance_id=instance_id)


def contacts_of(account):
    return shards.for_instance(Contact, account.instance_id).filter(account_id=account.pk)


def groups_of(account):
    return shards.for_instance(Group, account.instance_id).filter(account_id=account.pk)


def members_of(instance_id, group_ids):
    return shards.for_instance(GroupMember, instance_id).filter(group_id__in=group_ids)


def recount_contacts(account):
    with transaction.atomic():
        contacts = contacts_of(account).count()
        groups = groups_of(account).count()
        WeworkAccount.all_objects.filter(pk=account.pk).update(
            contact_count=contacts, group_count=groups
        )
    account.contact_count, account.group_count = contacts, groups
    return contacts, groups


def recount_members(instance_id, group_id):
    count = members_of(instance_id, [group_id]).filter(left_at__isnull=True).count()
    shards.for_instance(Group, instance_id).filter(pk=group_id).update(member_count=count)
    return count
