"""Domain logic of WeCom accounts and their address books.

- QR login: start a login on the instance, follow its status (polling and `login.status`
  events), record the account when confirmed; logout.
- Account states from events and heartbeats; `max_accounts` enforced; `current_accounts`
  recomputed in the same transaction as every change of a logged-in flag.
- Sync of contacts, groups (rooms) and group members into the instance's shards: full (paged)
  and incremental from events.

Sync consistency (see docs/instances.md): each page is upserted in its own transaction, so a
page is either written whole or not at all. A full sync stamps every row it writes with the
sync's start time (`last_sync_time`, members: `updated_at`); only after the last page of a scope
has been written are the rows the instance no longer has (stamp older than the start) soft-
deleted and the counters recomputed. A sync that fails half-way therefore leaves the pages it
wrote (correct, current data), deletes nothing and keeps its cursor in the cache, so that
`sync_account(..., resume=True)` continues from the failed page with the same stamp.

One topic per module: `base` (mappings, limits), `rows` (address-book rows and shards),
`accounts` (accounts, profiles, states), `sync` (full sync and sync requests), `logins` (QR
login, logout), `events` (the event handlers). Their names are re-exported here for callers
that use the app's services as one namespace (`from contacts import services`).
"""
# ruff: noqa: F401 - re-exports
from .accounts import (
    ENSURE_ACCOUNT_FIELDS,
    TROUBLE_ALERTS,
    account_for_event,
    apply_account_states,
    ensure_account,
    mark_instance_accounts_offline,
    profile_fields,
    recount_accounts,
    refresh_profile,
    resolve_account_alerts,
    set_account_state,
)
from .base import (
    LOGIN_TTL,
    ROLE_BY_NAME,
    STATUS_BY_NAME,
    SYNC_PAGE_LIMIT,
    SYNC_SCOPES,
    SYNC_STATE_TTL,
    _cut,
    _ms,
    _stamp,
    logger,
)
from .events import (
    EVENT_HANDLERS,
    E,
    _group_id,
    _require_group,
    _trouble,
    handle_account_offline,
    handle_account_online,
    handle_contact_removed,
    handle_contact_upsert,
    handle_member_joined,
    handle_member_left,
    handle_room_updated,
    handle_sync_completed,
)
from .logins import (
    _apply_login_status,
    _current_login_key,
    _login_key,
    cancel_login,
    current_login,
    get_login_state,
    handle_login_status,
    logout,
    poll_login,
    start_login,
    verify_login,
)
from .rows import (
    CONTACT_UPDATE_FIELDS,
    GROUP_UPDATE_FIELDS,
    MEMBER_UPDATE_FIELDS,
    contact_row,
    contacts_of,
    ensure_instance_shards,
    group_row,
    groups_of,
    member_row,
    members_of,
    recount_contacts,
    recount_members,
    sync_contacts,
    sync_groups,
    sync_members,
    upsert_contacts,
    upsert_groups,
    upsert_members,
)
from .sync import (
    _SYNC_PHASES,
    SYNC_LOCK_TTL,
    SYNC_RUN_TTL,
    SYNC_TRIGGER_LABELS,
    SyncRequest,
    SyncTrigger,
    _fresh_stamp,
    _release_lock,
    _save_progress,
    _save_run,
    _sync_contacts,
    _sync_groups,
    _sync_key,
    _sync_lock_key,
    _sync_members,
    _sync_run_key,
    auto_sync,
    get_sync_state,
    request_sync,
    run_sync,
    sync_account,
    sync_in_progress,
    sync_run,
    sync_run_label,
)
