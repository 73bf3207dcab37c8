"""Settings for the test suite: development defaults, then the real settings module.

Everything else still comes from the environment: DATABASE_URL and REDIS_URL choose MariaDB and
Redis (CI) or the embedded SQLite and local cache.
"""
import os

os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-" + "x" * 40)
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "dGVzdHMtb25seS1maWVsZC1lbmNyeXB0aW9uLWtleSE=")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault("SYSTEM_LOG_DB", "0")  # the log writer thread stays off in tests
os.environ.setdefault("WEWORK_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", "var", "test-data"))

from wework.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed, tests only
