"""Full sync of an account's contacts, groups and members (paged, resumable), and sync
requests: one queued or running sync per account, automatic syncs, the last run."""
from __future__ import annotations

import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from instances import protocol
from instances.exceptions import InstanceError
from instances.services import ServiceError, audit, client_for, record_instance_error

from ..models import (
    SyncStatus,
    WeworkAccount,
)
from . import accounts
from .base import SYNC_PAGE_LIMIT, SYNC_SCOPES, SYNC_STATE_TTL, _stamp
from .rows import (
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
)

logger = logging.getLogger("wework.contacts")

# ---------------------------------------------------------------------------------------------
# Full sync
# ---------------------------------------------------------------------------------------------


def _sync_key(account_pk):
    return f"contacts:sync:{account_pk}"


def get_sync_state(account):
    return cache.get(_sync_key(account.pk))


def sync_account(account, *, scopes=SYNC_SCOPES, resume=True, page_limit=SYNC_PAGE_LIMIT,
                 trigger=None):
    """Full sync of an account's contacts, groups and members from its instance.

    Returns a dict of counts. On a failure raises ServiceError after saving the state to resume.
    `trigger` (what started it, see SyncTrigger) is written to the audit row. Runs in the
    caller; `request_sync()` queues it as a Celery task, one at a time per account.
    """
    instance = account.instance
    if not account.is_logged_in:
        raise ServiceError(_("The account is not logged in."), code="not_logged_in", status=409)
    state = get_sync_state(account) if resume else None
    if state is None or state.get("scopes") != list(scopes):
        state = {"started": _fresh_stamp(account).isoformat(), "scopes": list(scopes), "phase": scopes[0],
                 "cursor": None, "room_index": 0, "counts": {}}
    stamp = datetime.fromisoformat(state["started"])
    client_error = None
    ensure_instance_shards(instance.pk)  # before any transaction (see ensure_shards_for)

    client = client_for(instance)
    try:
        if not account.nickname:
            accounts.refresh_profile(client, account)
        for phase in scopes[scopes.index(state["phase"]):]:
            if state["phase"] != phase:
                state.update(phase=phase, cursor=None, room_index=0)
            _SYNC_PHASES[phase](client, account, state, stamp, page_limit)
    except InstanceError as exc:
        client_error = exc
    finally:
        client.close()
    if client_error is not None:
        cache.set(_sync_key(account.pk), state, SYNC_STATE_TTL)
        record_instance_error(instance, client_error)
        audit("account.sync", account, resource_type="wework_accounts", error=client_error,
              new_values={"trigger": trigger} if trigger else None)
        raise ServiceError(
            _("The sync stopped at %(phase)s: %(error)s (run it again to resume).")
            % {"phase": state["phase"], "error": client_error.user_message},
            code=client_error.code, status=502,
        ) from client_error
    cache.delete(_sync_key(account.pk))
    audit("account.sync", account, resource_type="wework_accounts",
          new_values={"scopes": list(scopes), **state["counts"],
                      **({"trigger": trigger} if trigger else {})})
    contacts, groups = recount_contacts(account)
    WeworkAccount.all_objects.filter(pk=account.pk).update(last_sync_time=timezone.now())
    return {"contacts": contacts, "groups": groups, **state["counts"]}


# ---------------------------------------------------------------------------------------------
# Sync requests: one queued or running sync per account, automatic syncs, the account's last run
# ---------------------------------------------------------------------------------------------

#: How long the per-account lock lives without progress (each written page renews it).
SYNC_LOCK_TTL = 15 * 60
#: How long the last run of an account stays visible on its page.
SYNC_RUN_TTL = 7 * 24 * 3600


class SyncTrigger:
    MANUAL = "manual"  # the admin action or the API
    QR_LOGIN = "qr_login"  # an account logged in by QR code on the platform
    FIRST_ONLINE = "first_online"  # an account seen online (events, heartbeat, registration)
    INSTANCE_SYNC = "instance_sync"  # the instance's sync.completed for an unsynced account


def _sync_lock_key(account_pk):
    return f"contacts:sync-lock:{account_pk}"


def _sync_run_key(account_pk):
    return f"contacts:sync-run:{account_pk}"


def sync_run(account):
    """The account's current or last sync run: {status queued/running/done/failed, trigger,
    queued_at, started_at, finished_at, counts, error} (ISO times), or None."""
    return cache.get(_sync_run_key(getattr(account, "pk", account)))


def sync_in_progress(account):
    return cache.get(_sync_lock_key(getattr(account, "pk", account))) is not None


def _save_run(account_pk, **values):
    run = dict(cache.get(_sync_run_key(account_pk)) or {})
    run.update(values)
    cache.set(_sync_run_key(account_pk), run, SYNC_RUN_TTL)
    return run


def _release_lock(account_pk, token):
    key = _sync_lock_key(account_pk)
    if cache.get(key) == token:
        cache.delete(key)


class SyncRequest:
    """What request_sync() did: `queued` (False: a sync was already queued or running)."""

    def __init__(self, queued, task_id=None):
        self.queued = queued
        self.task_id = task_id


def request_sync(account, *, trigger=SyncTrigger.MANUAL, scopes=SYNC_SCOPES, resume=True):
    """Queue the Celery sync of `account`, unless one is queued or running for it already.

    De-duplicated by a per-account lock in the cache (Redis): taken here, released by the task
    when it ends, renewed by every page it writes, expiring after SYNC_LOCK_TTL without
    progress (a worker that died). Raises ServiceError for an account that is not logged in.
    """
    if not account.is_logged_in:
        raise ServiceError(_("The account is not logged in."), code="not_logged_in", status=409)
    token = secrets.token_hex(8)
    if not cache.add(_sync_lock_key(account.pk), token, SYNC_LOCK_TTL):
        return SyncRequest(False)
    now = timezone.now().isoformat()
    cache.set(_sync_run_key(account.pk), {"status": "queued", "trigger": trigger,
                                          "queued_at": now}, SYNC_RUN_TTL)
    request = SyncRequest(True)

    def enqueue():
        from ..tasks import sync_account as sync_task

        try:
            request.task_id = sync_task.delay(account.pk, list(scopes), resume, trigger=trigger,
                                              token=token).id
        except Exception as exc:  # a broker outage must not break the caller
            logger.exception("the sync of account %s could not be queued", account.pk)
            _release_lock(account.pk, token)
            _save_run(account.pk, status="failed", finished_at=timezone.now().isoformat(),
                      error=str(exc)[:500])

    transaction.on_commit(enqueue)
    return request


def auto_sync(account_pk, trigger):
    """Start the first sync of an account the platform holds no address book for (after a QR
    login, or when it is first seen online); never raises (called after a commit)."""
    account = WeworkAccount.objects.filter(pk=account_pk, is_logged_in=True).first()
    if account is None:
        return None
    try:
        return request_sync(account, trigger=trigger)
    except Exception:  # the login or event that triggered it has succeeded
        logger.exception("the automatic sync of account %s was not started", account_pk)
        return None


def run_sync(account_pk, *, scopes=SYNC_SCOPES, resume=True, trigger=SyncTrigger.MANUAL,
             token=None):
    """Body of the Celery task: the sync under the account's lock; returns a result dict.

    A task queued by request_sync() holds the lock (`token`); one without a token (or whose
    lock expired) takes it, and gives up when another sync holds it.
    """
    key = _sync_lock_key(account_pk)
    holder = cache.get(key)
    if token is None or holder != token:
        token = token or secrets.token_hex(8)
        if holder is not None or not cache.add(key, token, SYNC_LOCK_TTL):
            return {"ok": False, "code": "sync_running",
                    "message": _("A sync of this account is already running.")}
    try:
        account = WeworkAccount.objects.select_related("instance").filter(pk=account_pk).first()
        if account is None:
            return {"ok": False, "code": "unknown_account", "message": _("No such account.")}
        _save_run(account_pk, status="running", trigger=trigger,
                  started_at=timezone.now().isoformat(), finished_at=None, error=None)
        try:
            counts = sync_account(account, scopes=tuple(scopes), resume=resume, trigger=trigger)
        except ServiceError as exc:
            _save_run(account_pk, status="failed", finished_at=timezone.now().isoformat(),
                      error=exc.message)
            return {"ok": False, "code": exc.code, "message": exc.message}
        _save_run(account_pk, status="done", finished_at=timezone.now().isoformat(),
                  counts=counts)
        return {"ok": True, **counts}
    finally:
        _release_lock(account_pk, token)


SYNC_TRIGGER_LABELS = {
    SyncTrigger.MANUAL: gettext_lazy("started by an operator"),
    SyncTrigger.QR_LOGIN: gettext_lazy("after a QR login"),
    SyncTrigger.FIRST_ONLINE: gettext_lazy("account online for the first time"),
    SyncTrigger.INSTANCE_SYNC: gettext_lazy("after the instance's own sync"),
}


def sync_run_label(run):
    """One line for people: the state of a sync run (account page, QR login page)."""
    if not run:
        return _("No sync run recorded (the last 7 days).")
    trigger = SYNC_TRIGGER_LABELS.get(run.get("trigger"), run.get("trigger") or "")

    def when(key):
        value = run.get(key)
        if not value:
            return "-"
        return timezone.localtime(datetime.fromisoformat(value)).strftime("%Y-%m-%d %H:%M:%S")

    status = run.get("status")
    if status == "queued":
        return _("Queued at %(time)s (%(trigger)s).") % {"time": when("queued_at"),
                                                         "trigger": trigger}
    if status == "running":
        return _("Running since %(time)s (%(trigger)s).") % {"time": when("started_at"),
                                                             "trigger": trigger}
    if status == "done":
        counts = run.get("counts") or {}
        return _("Done at %(time)s (%(trigger)s): %(contacts)d contacts, %(groups)d groups.") % {
            "time": when("finished_at"), "trigger": trigger,
            "contacts": counts.get("contacts", 0), "groups": counts.get("groups", 0)}
    return _("Failed at %(time)s (%(trigger)s): %(error)s") % {
        "time": when("finished_at"), "trigger": trigger, "error": run.get("error") or "?"}


def _fresh_stamp(account):
    """A sync stamp later than every stamp already written for the account.

    Rows older than the stamp are swept at the end; DATETIME keeps seconds only, so a sync
    started in the same second as the previous one waits for the next second.
    """
    from django.db.models import Max

    newest = max(
        (v for v in (
            contacts_of(account).aggregate(m=Max("last_sync_time"))["m"],
            groups_of(account).aggregate(m=Max("last_sync_time"))["m"],
        ) if v is not None),
        default=None,
    )
    stamp = _stamp()
    for _attempt in range(3):  # a stamp in the future (clock skew) does not stall the sync
        if newest is None or stamp > newest:
            break
        time.sleep(1.05 - timezone.now().microsecond / 1e6)
        stamp = _stamp()
    return stamp


def _save_progress(account, state):
    cache.set(_sync_key(account.pk), state, SYNC_STATE_TTL)
    cache.touch(_sync_lock_key(account.pk), SYNC_LOCK_TTL)  # a long sync keeps its lock


def _pages_ahead(fetch, cursor):
    """The pages `fetch(cursor)` returns, following `next_cursor`; the next page is fetched in
    a thread while the caller writes the current one (the fetch is HTTP and JSON, the write
    waits on the database: overlapped, a 50,000-contact sync no longer pays both in turn).

    Nothing changes for resuming: the caller saves a page's `next_cursor` only after writing
    the page, and a failed fetch raises where its page would have been taken. Close the
    generator (`contextlib.closing`) before closing the client: that waits for a fetch under way.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="contacts-sync-fetch") as pool:
        future = pool.submit(fetch, cursor)
        while True:
            page = future.result()
            if page.next_cursor is not None:
                future = pool.submit(fetch, page.next_cursor)
            yield page
            if page.next_cursor is None:
                return


def _sync_listed(account, state, stamp, fetch, to_row, upsert, existing, kind, removed):
    """A listed phase (contacts, groups): every page upserted, its cursor saved after it is
    written, then the rows this sync did not see marked deleted (plus the `removed` fields)."""
    with closing(_pages_ahead(fetch, state["cursor"])) as pages:
        for page in pages:
            rows = [to_row(account.pk, item, stamp) for item in page.items]
            with transaction.atomic():
                upsert(account.instance_id, rows)
            state["counts"][f"{kind}_seen"] = state["counts"].get(f"{kind}_seen", 0) + len(rows)
            state["cursor"] = page.next_cursor
            _save_progress(account, state)
    with transaction.atomic():
        gone = existing.filter(
            Q(last_sync_time__lt=stamp) | Q(last_sync_time__isnull=True)
        ).update(deleted_at=timezone.now(), sync_status=SyncStatus.NOT_SYNCED, **removed)
    state["counts"][f"{kind}_removed"] = gone


def _sync_contacts(client, account, state, stamp, limit):
    _sync_listed(account, state, stamp,
                 lambda cursor: client.list_contacts(account.wxid, cursor=cursor, limit=limit),
                 contact_row, sync_contacts, contacts_of(account), "contacts", {})


def _sync_groups(client, account, state, stamp, limit):
    _sync_listed(account, state, stamp,
                 lambda cursor: client.list_rooms(account.wxid, cursor=cursor, limit=limit),
                 group_row, sync_groups, groups_of(account), "groups", {"is_active": False})


def _sync_members(client, account, state, stamp, limit):
    groups = list(groups_of(account).order_by("id").values_list("id", "group_wxid"))
    index = state.get("room_index", 0)
    while index < len(groups):
        group_id, room_id = groups[index]
        while True:
            try:
                page = client.list_room_members(account.wxid, room_id, cursor=state["cursor"],
                                                limit=limit)
            except InstanceError as exc:
                if exc.code == protocol.ErrorCode.TARGET_NOT_FOUND:
                    break  # the room vanished since the groups phase: the next sync drops it
                raise
            rows = [member_row(group_id, item, stamp) for item in page.items]
            with transaction.atomic():
                sync_members(account.instance_id, rows)
            state["counts"]["members_seen"] = state["counts"].get("members_seen", 0) + len(rows)
            state["cursor"] = page.next_cursor
            _save_progress(account, state)
            if page.next_cursor is None:
                break
        with transaction.atomic():
            members_of(account.instance_id, [group_id]).filter(
                updated_at__lt=stamp, left_at__isnull=True
            ).update(left_at=timezone.now(), is_active=False)
            recount_members(account.instance_id, group_id)
        index += 1
        state.update(room_index=index, cursor=None)
        _save_progress(account, state)


_SYNC_PHASES = {"contacts": _sync_contacts, "groups": _sync_groups, "members": _sync_members}
