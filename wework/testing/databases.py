"""The test databases, as the environment of a child process (a Celery worker, the browser
suite's worker): DATABASE_URL and, in a per-module layout (docs/schema.md, "Storage layout"),
every DATABASE_URL_<MODULE>, all naming the test databases of this test process. A child given
only DATABASE_URL would read the modules' settings inherited from the parent's environment,
which name the real (not the test) databases."""
from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connections

from wework.db.layout import MODULES


def database_url(alias="default"):
    connection = connections[alias]
    s = connection.settings_dict
    if connection.vendor == "mysql":
        return f"mysql://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 3306}/{s['NAME']}"
    return f"sqlite:///{s['NAME']}"


def database_env():
    env = {"DATABASE_URL": database_url()}
    aliases = getattr(settings, "DATABASE_MODULE_ALIASES", None) or {}
    for module in MODULES:
        env[f"DATABASE_URL_{module.upper()}"] = database_url(aliases.get(module, "default"))
    return env


def needs_file_database():
    """Skip a test whose live server and test process write concurrently: an in-memory SQLite
    database locks its tables for that ("database table is locked"); MariaDB and a file SQLite
    database (TEST_SQLITE_NAME) run it."""
    if connections["default"].vendor == "sqlite" and connections["default"].is_in_memory_db():
        pytest.skip("needs a file database: the live server and the test write concurrently "
                    "(set TEST_SQLITE_NAME, or run on MariaDB)")
