"""Read/write splitting between the primary and optional read replicas.

The rule is the safe one: **every read goes to the primary unless the code says it is a pure
read**, one whose result feeds no write. A stale read that feeds a write loses updates (an API
PATCH that read the row from a lagging replica wrote every old column back), so services,
tasks, claims, update and change-form views, the shard registry and anything not marked read
the primary without having to know about replicas.

Pure reads are marked with `read_only_call()` (or the `replica_reads()` block): the base API
viewsets do it for `list` and `retrieve`, the base admin for changelists. Inside such a call
a read still goes to the primary when
- it is inside a transaction, or for the auth, session and permission tables;
- this request or task has written (`db_for_write` was asked), or the same user wrote in the
  last `pin_seconds()` (read-your-writes across requests; the pin outlives the worst lag a
  replica in rotation may have: DATABASE_REPLICA_MAX_LAG_S plus one check interval);
- no replica is in rotation (wework.db.replicas: lag over DATABASE_REPLICA_MAX_LAG_S, a
  stopped replication thread, unreachable).
A pure read that fails on a replica (connection lost, table not there yet) marks the replica
failed and runs again on the primary: a replica outage costs no error.

Per-module databases (wework.db.layout, docs/schema.md "Storage layout"): every model is first
placed on its module's alias ("default" unless DATABASE_URL_<MODULE> puts the module elsewhere);
the replica choice above then runs among that alias's replicas. Migrations run on each alias for
the apps placed there only.
"""
from __future__ import annotations

import contextvars
import logging
import random
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connections

from wework.db import errors as db_errors
from wework.db.layout import alias_for_app, is_split
from wework.db.replicas import check_interval_s, health, max_lag_s

log = logging.getLogger("wework.routers")

PRIMARY_ONLY_APPS = {"auth", "accounts", "sessions", "contenttypes", "guardian", "otp_totp",
                     "otp_static", "django_otp", "admin", "shards"}

_replica_ok = contextvars.ContextVar("wework_db_replica_ok", default=False)
_force_primary = contextvars.ContextVar("wework_db_force_primary", default=0)
_request_state = contextvars.ContextVar("wework_db_request_state", default=None)
_used = contextvars.ContextVar("wework_db_used_replicas", default=None)


def replica_aliases(primary_alias=None):
    """The replica aliases of `primary_alias`, or of every primary."""
    replicas = getattr(settings, "DATABASE_REPLICAS", None)
    if replicas is None:  # settings without the per-module layout
        found = [alias for alias in settings.DATABASES if alias.startswith("replica_")]
        return found if primary_alias in (None, "default") else []
    if primary_alias is None:
        return [alias for aliases in replicas.values() for alias in aliases]
    return list(replicas.get(primary_alias, ()))


def pin_seconds():
    """How long a user's reads stay on the primary after they wrote."""
    return max_lag_s() + check_interval_s() + 1.0


# --- scopes ---------------------------------------------------------------------------------

@contextmanager
def replica_reads():
    """Reads in this block may go to a healthy replica (the block must only read)."""
    token = _replica_ok.set(True)
    try:
        yield
    finally:
        _replica_ok.reset(token)


@contextmanager
def primary():
    """Reads in this block go to the primary, even inside `replica_reads()`."""
    token = _force_primary.set(_force_primary.get() + 1)
    try:
        yield
    finally:
        _force_primary.reset(token)


def read_only_call(fn, *args, user=None, **kwargs):
    """Run the pure read `fn(*args, **kwargs)` with replica reads allowed.

    `user`: the user the read is for; when they wrote recently, the read stays on the primary.
    When the read fails on a replica, the replica is taken out of rotation and the read runs
    once more on the primary.
    """
    if not replica_aliases() or user_pinned(user):
        return fn(*args, **kwargs)
    used = set()
    used_token = _used.set(used)
    try:
        with replica_reads():
            return fn(*args, **kwargs)
    except DatabaseError as exc:
        if not used or not db_errors.replica_read_failed(exc):
            raise
        for alias in used:
            health.mark_failed(alias, f"a read failed: {exc}"[:300])
            try:
                connections[alias].close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail too
                pass
        log.warning("a read on replica %s failed (%s); read again on the primary",
                    ", ".join(sorted(used)), exc)
    finally:
        _used.reset(used_token)
    return fn(*args, **kwargs)


# --- read-your-writes across requests ---------------------------------------------------------

def _pin_key(user_id):
    return f"wework:db:pin:{user_id}"


def user_pinned(user):
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    from django.core.cache import cache

    try:
        return bool(cache.get(_pin_key(user.pk)))
    except Exception:  # noqa: BLE001 - no cache: the primary is always right
        return True


def pin_user(user):
    if user is None or not getattr(user, "is_authenticated", False) or not replica_aliases():
        return
    from django.core.cache import cache

    try:
        cache.set(_pin_key(user.pk), 1, timeout=max(1, int(pin_seconds() + 0.999)))
    except Exception:  # noqa: BLE001 - the cache is down; reads are pinned while it is (above)
        log.warning("could not pin user %s to the primary (cache unavailable)", user.pk)


@contextmanager
def request_scope():
    """One request or task: starts with nothing written and no replica reads allowed; yields a
    state whose `wrote` says whether anything was written."""
    state = _RequestState()
    tokens = (_request_state.set(state), _replica_ok.set(False), _force_primary.set(0))
    try:
        yield state
    finally:
        _request_state.reset(tokens[0])
        _replica_ok.reset(tokens[1])
        _force_primary.reset(tokens[2])


class _RequestState:
    __slots__ = ("wrote",)

    def __init__(self):
        self.wrote = False


def _note_write():
    state = _request_state.get()
    if state is not None:
        state.wrote = True


# --- the router -------------------------------------------------------------------------------

class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints):
        primary_alias = alias_for_app(model._meta.app_label)
        replicas = replica_aliases(primary_alias)
        if not replicas:
            # One database and no replica: Django's own choice ("default", or the hint's). With
            # several databases the model's own, never a related row's (its hint).
            return primary_alias if is_split() else None
        if not _replica_ok.get() or _force_primary.get():
            return primary_alias
        if model._meta.app_label in PRIMARY_ONLY_APPS:
            return primary_alias
        if connections[primary_alias].in_atomic_block:
            return primary_alias
        state = _request_state.get()
        if state is not None and state.wrote:
            return primary_alias
        healthy = health.healthy(replicas)
        if not healthy:
            return primary_alias
        alias = random.choice(healthy)
        used = _used.get()
        if used is not None:
            used.add(alias)
        return alias

    def db_for_write(self, model, **hints):
        # Tables that are always read from the primary need no pin (a session's last activity).
        if model._meta.app_label not in PRIMARY_ONLY_APPS:
            _note_write()
        return alias_for_app(model._meta.app_label)

    def allow_relation(self, obj1, obj2, **hints):
        # References across modules are constraint-free in a split layout (wework.db.layout):
        # assigning an account to a message stays allowed on any alias.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == alias_for_app(app_label)
