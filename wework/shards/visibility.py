"""Which shard tables exist, as each process sees them: the per-process listing cache and how
a drop, restore or move made by one process reaches the others (a version key in the shared
cache) or is noticed on the first "table doesn't exist" error."""
from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import models

from . import ddl

log = logging.getLogger("wework.shards")

#: label -> (when, rows): which shard tables of a model exist, per process.
listing: dict[str, Any] = {}
listing_lock = threading.Lock()
LISTING_TTL = 30


def invalidate_listing(label=None):
    with listing_lock:
        if label is None:
            listing.clear()
        else:
            listing.pop(label, None)


# --- Seeing other processes' drops ------------------------------------------------------------
# Each process caches which shard tables exist. A drop (or restore, or move) writes a new value
# under VERSION_KEY in the shared cache (Redis, or the file cache every process of a host
# shares); every process reads that key at most once per SHARDING_VERSION_CHECK_S and forgets
# its caches when it changed. The drop itself marks the registry row first, announces, waits
# SHARDING_DROP_GRACE_S (longer than the check interval), then drops the table. A query that
# still meets a missing table (a request that had the class in hand) forgets it and answers
# as if the shard were empty (see `missing_table`).

VERSION_KEY = "shards:tables-version"
_version: dict[str, Any] = {"seen": None, "checked": None}


def version_check_interval() -> float:
    return float(getattr(settings, "SHARDING_VERSION_CHECK_S", 1.0))


def check_version(force: bool = False) -> None:
    """Forget the cached table lists when another process announced a change."""
    now = time.monotonic()
    checked = _version["checked"]
    if not force and checked is not None and now - checked < version_check_interval():
        return
    _version["checked"] = now
    try:
        current = cache.get(VERSION_KEY)
    except Exception:  # the cache is down: keep the short TTLs as the fallback
        log.warning("could not read the shard tables version from the cache", exc_info=True)
        return
    if current != _version["seen"]:
        _version["seen"] = current
        ddl.forget()
        invalidate_listing()


def announce_change(label: str | None = None) -> None:
    """Tell every process that shard tables were dropped, restored or moved."""
    ddl.forget()
    invalidate_listing(label)
    try:
        value = uuid.uuid4().hex
        cache.set(VERSION_KEY, value, timeout=None)
        _version["seen"] = value
    except Exception:
        log.warning("could not announce a shard table change in the cache; other processes "
                    "see it when their caches expire or on their first error", exc_info=True)


def missing_table(exc: Exception, model: type[models.Model]) -> bool:
    """True (and the caches forgotten) when `exc` says the shard's table does not exist."""
    if not ddl.is_missing_table_error(exc):
        return False
    table = model._meta.db_table
    log.warning("shard table %s is gone (dropped by another process); forgetting it", table)
    ddl.forget(table)
    invalidate_listing()
    return True
