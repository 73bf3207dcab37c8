"""Settings for the test suite: development defaults, then the real settings module.

Everything else still comes from the environment: DATABASE_URL and REDIS_URL choose MariaDB and
Redis (CI) or the embedded SQLite and local cache.
"""
import os

os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-" + "x" * 40)
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "dGVzdHMtb25seS1maWVsZC1lbmNyeXB0aW9uLWtleSE=")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault("WEWORK_ID_LEASE_CHECK_S", "0.1")  # every test flushes Redis: short id fences
os.environ.setdefault("SYSTEM_LOG_DB", "0")  # the log writer thread stays off in tests
os.environ.setdefault("EMBEDDED_CACHE", "locmem")  # without REDIS_URL: one cache per test process
os.environ.setdefault("WEWORK_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", "var", "test-data"))


def _per_worker_redis_db():
    """Parallel test workers (pytest-xdist gwN) each get their own Redis database, since
    tests flush their database between tests: gw0 keeps the given one, gw1 the one below..."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    url = os.environ.get("REDIS_URL", "")
    if not (url and worker.startswith("gw")) or url.startswith("redis+cluster://"):
        return  # a cluster has one database: its tests run in one process (scripts/test)
    # Subprocesses of a test (Celery workers) inherit the shifted URL and PYTEST_XDIST_WORKER:
    # shift once only, so that they use the same database as their test.
    if url == os.environ.get("WEWORK_TEST_REDIS_URL_SHIFTED"):
        return
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    db = (base - int(worker[2:])) % 16
    os.environ["REDIS_URL"] = os.environ["WEWORK_TEST_REDIS_URL_SHIFTED"] = urlunsplit(
        parts._replace(path=f"/{db}")
    )


_per_worker_redis_db()

from wework.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed, tests only
# Tests assert English messages; tests/test_i18n.py checks the Chinese default (zh-hans) itself.
LANGUAGE_CODE = "en"
# A drop waits this long between announcing it and dropping the table (wework/shards/router.py);
# the tests that exercise the wait set their own.
SHARDING_DROP_GRACE_S = 0
