"""Which backing service an error says is away: the database (wework.db.errors) or Redis (the
cache, pacing, locks, the broker's client). Requests that meet one answer 503 with Retry-After
(JSON for API clients, a short page for browsers), never a 500. So does a statement the
database stopped at the web process's time limit, with its own code and sentence."""
from __future__ import annotations

from wework.db import errors as db_errors

DATABASE = "database_unavailable"
CACHE = "cache_unavailable"
#: A statement stopped at the web process's time limit (DATABASE_STATEMENT_TIMEOUT_S): the
#: database is up, this request asked too much of it.
STATEMENT_TIMEOUT = "statement_timeout"

#: redis-py's errors that mean "Redis cannot serve now" (not a wrong command).
REDIS_UNAVAILABLE = frozenset({"ConnectionError", "TimeoutError", "BusyLoadingError", "ReadOnlyError",
                               "MasterDownError", "ClusterDownError", "TryAgainError"})


def outage_code(exc: BaseException | None) -> str | None:
    """DATABASE, CACHE, STATEMENT_TIMEOUT or None."""
    if exc is None:
        return None
    if db_errors.is_statement_timeout(exc):
        # a statement stopped at the web's time limit: the request gave up, the server too
        return STATEMENT_TIMEOUT
    if db_errors.is_unavailable(exc):
        return DATABASE
    for cls in type(exc).__mro__:
        if cls.__module__.startswith("redis") and cls.__name__ in REDIS_UNAVAILABLE:
            return CACHE
    return None


def message(code: str):
    """The sentence of a 503 with `code`, in the user's language."""
    from django.conf import settings
    from django.utils.translation import gettext as _

    if code == CACHE:
        return _("A platform service (Redis) is not available right now; retry in a few seconds.")
    if code == STATEMENT_TIMEOUT:
        return _("This request needed longer than the %(seconds)g s the platform allows one database "
                 "query, and was stopped. Narrow it (a filter, a shorter period) or retry later.") % {
            "seconds": getattr(settings, "DATABASE_STATEMENT_TIMEOUT_S", 0) or 0}
    return _("The database is not available right now; retry in a few seconds.")
