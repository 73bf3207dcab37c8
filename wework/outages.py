"""Which backing service an error says is away: the database (wework.db.errors) or Redis (the
cache, pacing, locks, the broker's client). Requests that meet one answer 503 with Retry-After
(JSON for API clients, a short page for browsers), never a 500."""
from __future__ import annotations

from wework.db import errors as db_errors

DATABASE = "database_unavailable"
CACHE = "cache_unavailable"

#: redis-py's errors that mean "Redis cannot serve now" (not a wrong command).
REDIS_UNAVAILABLE = frozenset({"ConnectionError", "TimeoutError", "BusyLoadingError", "ReadOnlyError",
                               "MasterDownError", "ClusterDownError", "TryAgainError"})


def outage_code(exc: BaseException | None) -> str | None:
    """DATABASE, CACHE or None."""
    if exc is None:
        return None
    if db_errors.is_unavailable(exc) or db_errors.is_statement_timeout(exc):
        # a statement stopped at the web's time limit: the request gave up, the server too
        return DATABASE
    for cls in type(exc).__mro__:
        if cls.__module__.startswith("redis") and cls.__name__ in REDIS_UNAVAILABLE:
            return CACHE
    return None
