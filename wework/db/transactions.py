"""Transactions in a split layout (wework.db.layout): `transaction.atomic()` without `using`
spans every primary alias.

The platform's services write in `transaction.atomic()` blocks and lock rows with
`select_for_update()`; written for one database, they name no alias. When the modules are on
several aliases, `install()` (called at start-up in a split layout only) makes
`django.db.transaction.atomic()` without `using` open one atomic block per primary alias,
"default" outermost: a block's writes on each database commit together at its end or roll back
together on an exception, `select_for_update()` works on every alias, and `on_commit()` (on
"default") runs after all of them committed. The commits are one per database, in sequence,
not a two-phase commit: a crash between two commits can leave one database ahead, which the
services' existence checks and the constraint-free references tolerate (docs/schema.md).

With an explicit `using`, and in the one-database layout, Django's `atomic` is used unchanged.
"""
import threading
from contextlib import ContextDecorator, ExitStack

from django.db import transaction

_django_atomic = transaction.atomic


class MultiAtomic(ContextDecorator):
    def __init__(self, aliases, savepoint=True, durable=False):
        self.aliases = list(aliases)
        self.savepoint = savepoint
        self.durable = durable
        self._local = threading.local()

    def __enter__(self):
        stacks = self._local.__dict__.setdefault("stacks", [])
        stack = ExitStack()
        stacks.append(stack)
        try:
            for alias in self.aliases:
                stack.enter_context(_django_atomic(using=alias, savepoint=self.savepoint,
                                                   durable=self.durable))
        except BaseException:
            stacks.pop()
            stack.close()
            raise

    def __exit__(self, exc_type, exc, tb):
        stack = self._local.stacks.pop()
        return stack.__exit__(exc_type, exc, tb)


def atomic(using=None, savepoint=True, durable=False):
    from wework.db.layout import is_split, primary_aliases

    if callable(using):  # @transaction.atomic
        if not is_split():
            return _django_atomic(using)
        return MultiAtomic(primary_aliases(), savepoint, durable)(using)
    if using is None and is_split():
        return MultiAtomic(primary_aliases(), savepoint, durable)
    return _django_atomic(using, savepoint, durable)


def install():
    transaction.atomic = atomic
