"""Test-wide setup: development settings, and a hard stop when required services are missing.

With REQUIRE_SERVICES=1 (CI sets it) the run refuses to start unless DATABASE_URL points at a
reachable MySQL/MariaDB and REDIS_URL at a reachable Redis: nothing may fall back to SQLite or
an in-process cache silently.
"""
import os

import pytest

# The project's shared fixtures (personas, verified clients, grants, clock): wework/testing.
pytest_plugins = ["wework.testing.fixtures", "wework.testing.instances"]

# Tests on real topologies (a lagging replica, a Galera cluster behind HAProxy) run only in
# their own session, started by scripts/test-topology with the servers scripts/services starts.
collect_ignore = [] if os.environ.get("WEWORK_TOPOLOGY") else ["tests/topology"]
# The browser suite (chromium, a Celery worker, a live server) runs only when asked:
# scripts/test-browser sets WEWORK_BROWSER=1 (.ci/run has a section of its own).
if os.environ.get("WEWORK_BROWSER") not in ("1", "true", "yes"):
    collect_ignore.append("tests/browser")


def _require_services():
    import socket
    from urllib.parse import urlparse

    problems = []
    db_url = os.environ.get("DATABASE_URL", "")
    if not db_url.startswith(("mysql://", "mysql2://", "mariadb://")):
        problems.append(f"DATABASE_URL must name MySQL/MariaDB, not {db_url or 'the SQLite default'!r}")
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        problems.append("REDIS_URL is not set")
    if redis_url.startswith("redis+cluster://"):  # the first seed node stands for the cluster
        redis_url = "redis://" + urlparse(redis_url).netloc.rsplit("@", 1)[-1].split(",")[0]
    for url, default_port in ((db_url, 3306), (redis_url, 6379)):
        if not url:
            continue
        parsed = urlparse(url)
        try:
            socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), 3).close()
        except OSError as exc:
            problems.append(f"cannot reach {parsed.scheme}://{parsed.hostname}:{parsed.port or default_port} ({exc})")
    return problems


def pytest_collection_modifyitems(config, items):
    """Per-module databases (wework.db.layout): when the modules are on several aliases, every
    database test uses all of them (pytest-django sets up, wraps and flushes each alias)."""
    from django.conf import settings

    if not getattr(settings, "DATABASE_SPLIT", False):
        return
    for item in items:
        marker = item.get_closest_marker("django_db")
        names = getattr(item, "fixturenames", ())
        if marker is None:
            if "transactional_db" in names or "live_server" in names:
                marker = pytest.mark.django_db(transaction=True).mark
            elif "db" in names:
                marker = pytest.mark.django_db.mark
            else:
                continue
        if "databases" in marker.kwargs:
            continue
        item.add_marker(pytest.mark.django_db(*marker.args, **marker.kwargs, databases="__all__"),
                        append=False)


def pytest_configure(config):
    if os.environ.get("REQUIRE_SERVICES") in ("1", "true", "yes"):
        problems = _require_services()
        if problems:
            raise pytest.UsageError("REQUIRE_SERVICES is set but: " + "; ".join(problems) + ".")


@pytest.fixture(autouse=True)
def _drop_shard_tables(request):
    """Shard tables live outside migrations, so the flush after a transactional test leaves them
    (with stale rows) behind: drop them (docs/shards.md, "Tests that create shards")."""
    yield
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        return
    from wework.shards.testing import drop_shard_tables

    with request.getfixturevalue("django_db_blocker").unblock():
        drop_shard_tables()


@pytest.fixture(autouse=True)
def _clear_cache():
    """Each test starts with an empty cache (Redis or local)."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def django_assert_num_queries(pytestconfig):
    """pytest-django's, counted on every database of the layout (wework.testing.queries)."""
    from functools import partial

    from wework.testing.queries import assert_num_queries

    return partial(assert_num_queries, pytestconfig)


@pytest.fixture
def django_assert_max_num_queries(pytestconfig):
    """pytest-django's, counted on every database of the layout (wework.testing.queries)."""
    from functools import partial

    from wework.testing.queries import assert_num_queries

    return partial(assert_num_queries, pytestconfig, exact=False)
