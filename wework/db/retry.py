"""Retrying idempotent transactions after conflicts and lost connections.

On a Galera cluster a transaction can fail at COMMIT because another node committed a
conflicting write first (certification; reported as a deadlock, error 1213), and while the
proxy moves to another node a connection is lost mid-transaction. Either way the work of the
transaction did not happen, or (connection lost during COMMIT) it is unknown whether it did.
An operation whose second run has the effect of one run (an *idempotent* operation: a
conditional UPDATE such as `WHERE status = 'pending'`, an upsert, an insert of a row with a
unique key that is checked first) can simply run again. This module runs such an operation in
a transaction and runs it again with backoff when the error is one a retry can cure
(wework.db.errors: CONFLICT and UNAVAILABLE):

    from wework.db.retry import idempotent_transaction

    @idempotent_transaction()
    def mark_sent(receiver_id):
        MessageReceiver.objects.filter(pk=receiver_id, send_status=SENDING).update(...)

    run_idempotent(lambda: claim_batch(worker), attempts=8)

Rules:
- Only for operations declared idempotent (the decorator's name is the declaration). The
  function must touch nothing but the database: no HTTP request, no mail, no Celery message
  inside it (those would run once per attempt). Do those after it returns.
- The retry needs the outermost transaction. Called inside an atomic block (a caller's
  transaction, or a test case's), it runs once in a savepoint and leaves any error to the
  outermost caller, since a deadlock has already rolled back the whole outer transaction.
- After the last attempt the error is raised as `UnavailableError` (HTTP 503 with
  Retry-After through the API's exception handler), so that a client never sees a 500 for a
  database that is switching over, and never a 200 for work that was not stored.
"""
from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.utils.translation import gettext_lazy as _

from wework.db.layout import is_split, primary_aliases
from wework.errors import UnavailableError

from .errors import UNAVAILABLE, classify, error_code

log = logging.getLogger("wework.db.retry")

T = TypeVar("T")

DEFAULT_ATTEMPTS = 6
DEFAULT_BASE_DELAY_S = 0.05
DEFAULT_MAX_DELAY_S = 2.0

UNAVAILABLE_MESSAGE = _("The database is not available right now; retry in a few seconds.")


def backoff_delay(attempt: int, base: float = DEFAULT_BASE_DELAY_S, cap: float = DEFAULT_MAX_DELAY_S,
                  rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: a random delay in [0, min(cap, base * 2**attempt)]
    (attempt 0 is the first retry), so that clients that failed together do not retry
    together."""
    return rng() * min(cap, base * (2 ** attempt))


def run_idempotent(
    fn: Callable[[], T],
    *,
    using: str | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    base_delay: float = DEFAULT_BASE_DELAY_S,
    max_delay: float = DEFAULT_MAX_DELAY_S,
    sleep: Callable[[float], None] = time.sleep,
    name: str | None = None,
) -> T:
    """Run the idempotent `fn()` in a transaction on `using` (default: the primary), again
    after a conflict or a lost connection, up to `attempts` runs in all. See the module
    docstring for what `fn` may do."""
    # Without `using`, the transaction is the platform's default one: in a split layout
    # (per-module databases) it spans every primary alias (wework.db.transactions), so that `fn`
    # may lock and write rows of any module, as it does on one database.
    if using is None and is_split():
        aliases = primary_aliases()
    else:
        aliases = [using or DEFAULT_DB_ALIAS]
    label = name or getattr(fn, "__qualname__", type(fn).__qualname__)

    def atomic():
        return transaction.atomic(using=using) if using else transaction.atomic()

    if any(connections[alias].in_atomic_block for alias in aliases):
        with atomic():
            return fn()
    attempt = 0
    while True:
        committing = False
        try:
            with atomic():
                result = fn()
                committing = True  # the next statement is the COMMIT in atomic's __exit__
            return result
        except DatabaseError as exc:
            kind = classify(exc)
            if kind is None:
                raise
            if kind == UNAVAILABLE:
                # The connection is dead or points at a node that left the cluster: a new
                # one (through the proxy, to a healthy node) is needed for the next attempt.
                for alias in aliases:
                    _discard(connections[alias])
            attempt += 1
            where = "at COMMIT (outcome unknown)" if committing else "before COMMIT"
            if attempt >= attempts:
                log.warning("%s failed %s after %d attempts: %s (error %s)",
                            label, where, attempt, kind, error_code(exc))
                raise UnavailableError(UNAVAILABLE_MESSAGE, code="database_unavailable") from exc
            delay = backoff_delay(attempt - 1, base_delay, max_delay)
            log.info("%s: %s %s (error %s); attempt %d of %d in %.0f ms",
                     label, kind, where, error_code(exc), attempt + 1, attempts, delay * 1000)
            sleep(delay)


def idempotent_transaction(
    fn: Callable[..., T] | None = None,
    *,
    using: str | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    base_delay: float = DEFAULT_BASE_DELAY_S,
    max_delay: float = DEFAULT_MAX_DELAY_S,
):
    """Decorator form of `run_idempotent`: `@idempotent_transaction()` or
    `@idempotent_transaction(attempts=10)`."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            return run_idempotent(
                lambda: func(*args, **kwargs), using=using, attempts=attempts,
                base_delay=base_delay, max_delay=max_delay, name=func.__qualname__,
            )

        return wrapper

    return decorate(fn) if fn is not None else decorate


def _discard(connection) -> None:
    try:
        connection.close()
    except DatabaseError:
        pass
