"""Counting queries on every database of the layout (docs/schema.md, "Storage layout").

`CaptureQueriesContext(connection)` sees only the "default" alias: with the modules on five
databases, a list that queried messages once per row would still pass a query-count test that
captured "default" alone. `capture_queries()` captures on every primary alias (exactly one,
"default", in the one-database layout), and the root conftest.py's
`django_assert_num_queries`/`django_assert_max_num_queries` count the same way.
"""
from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager

import pytest
from django.db import connections

from wework.db.layout import primary_aliases


class AllQueries:
    """The queries run on every alias, as one list in the order they ran (a lock-order test
    reads the order across databases): dicts with "sql" (as sent), "alias" and "time"."""

    def __init__(self):
        self.captured_queries = []

    def on(self, alias):
        return [q for q in self.captured_queries if q["alias"] == alias]

    def __len__(self):
        return len(self.captured_queries)

    def __iter__(self):
        return iter(self.captured_queries)

    def __getitem__(self, index):
        return self.captured_queries[index]


@contextmanager
def capture_queries():
    """Like `CaptureQueriesContext(connection)`, on every primary alias of the layout."""
    captured = AllQueries()

    def recorder(alias):
        def record(execute, sql, params, many, context):
            start = time.monotonic()
            try:
                return execute(sql, params, many, context)
            finally:
                connection = connections[alias]
                try:
                    sent = connection.ops.last_executed_query(context["cursor"], sql, params)
                except Exception:  # noqa: BLE001 - the statement as written is enough then
                    sent = sql
                captured.captured_queries.append(
                    {"sql": sent, "alias": alias, "time": f"{time.monotonic() - start:.3f}"})
        return record

    with ExitStack() as stack:
        for alias in primary_aliases():
            stack.enter_context(connections[alias].execute_wrapper(recorder(alias)))
        yield captured


@contextmanager
def assert_num_queries(config, num, exact=True, connection=None, info=None, *, using=None):
    """pytest-django's assertion, counted on every alias; with `connection` or `using` (as
    pytest-django's), on that one only."""
    if connection is not None or using is not None:
        from pytest_django.fixtures import _assert_num_queries

        with _assert_num_queries(config, num, exact, connection, info, using=using) as context:
            yield context
        return
    with capture_queries() as queries:
        yield queries
    done = len(queries)
    if (num != done) if exact else (done > num):
        msg = f"Expected to perform {num} queries {'' if exact else 'or less '}but {done} were done"
        if info:
            msg += f"\n{info}"
        if config.getoption("verbose") > 0:
            msg += "\n\nQueries:\n========\n\n" + "\n\n".join(q["sql"] for q in queries)
        pytest.fail(msg)
