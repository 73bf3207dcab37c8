"""Moving a module's tables to another database (`manage.py move_module`, wework/db/moving.py):
a platform populated on one database moves its messaging module (month shards included) out by
RENAME or by a checked copy, and the platform then reads and writes the same rows with
DATABASE_URL_MESSAGING; refusals are sentences. MariaDB only (the CI section on MariaDB runs it).

The platform under test runs in subprocesses on scratch databases of its own, since a move
changes which tables a running process may use."""
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import MySQLdb
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from wework.db import moving

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)

POPULATE = """
import json
from datetime import timedelta
from django.utils import timezone
from contacts.tests.factories import WeworkAccountFactory
from messaging.models import Message
from wework import shards
account = WeworkAccountFactory()
now = timezone.now()
for days in (0, 40, 80):  # three month shards
    for i in range(4):
        shards.create(Message, account_id=account.pk, chat_type=1, chat_wxid="peer", message_type="text",
                      message_content=f"{days}-{i}", created_at=now - timedelta(days=days))
"""

READ = """
import json
from messaging.models import Message
from wework import shards
print(json.dumps(sorted([m.pk, m.message_content, m.account_id] for m in shards.iterate(Message))))
"""

WRITE = """
from django.utils import timezone
from contacts.models import WeworkAccount
from messaging.models import Message
from wework import shards
account = WeworkAccount.objects.get()
shards.create(Message, account_id=account.pk, chat_type=1, chat_wxid="peer", message_type="text",
              message_content="after the move", created_at=timezone.now())
"""


def _url(name):
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"mysql://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 3306}/{name}"


def _sql(statement, params=None):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def _tables(name):
    return {row[0] for row in _sql("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                                   [name])}


@pytest.fixture
def scratch():
    """Two empty databases, the platform's and the move's target; the manage.py runner."""
    if connection.vendor != "mysql":
        pytest.skip("moving a module needs MariaDB/MySQL (the SQLite default is one file)")
    base = connection.settings_dict["NAME"]
    source, target = f"{base}_mvsrc", f"{base}_mvdst"
    for name in (source, target):
        _sql(f"DROP DATABASE IF EXISTS `{name}`")
    _sql(f"CREATE DATABASE `{source}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DJANGO_SETTINGS"))}
    env.update(DATABASE_URL=_url(source), DJANGO_SECRET_KEY="move-test",
               FIELD_ENCRYPTION_KEYS=base64.urlsafe_b64encode(b"m" * 32).decode())

    def manage(*args, stdin=None, **extra_env):
        return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], input=stdin, capture_output=True,
                              text=True, timeout=300, cwd=ROOT, env={**env, **extra_env})

    done = manage("migrate_all", "-v0")
    assert done.returncode == 0, done.stderr
    yield source, target, manage
    for name in (source, target):
        _sql(f"DROP DATABASE IF EXISTS `{name}`")


def _rows(manage, **env):
    done = manage("shell", stdin=READ, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.mysql
@pytest.mark.parametrize("method", ["rename", "copy"])
def test_the_messaging_module_moves_out_and_the_platform_keeps_its_rows(scratch, method):
    source, target, manage = scratch
    assert manage("shell", stdin=POPULATE).returncode == 0
    before = _rows(manage)
    assert len(before) == 12
    moving = {t for t in _tables(source) if t.startswith(("messages", "message_", "conversation_reads"))}
    assert len([t for t in moving if t.startswith("messages_")]) >= 2  # month shards move too

    shown = manage("move_module", "messaging", "--to", _url(target), "--method", method)
    assert shown.returncode == 0, shown.stderr
    assert "Nothing changed" in shown.stdout and _tables(target) == set()

    done = manage("move_module", "messaging", "--to", _url(target), "--method", method, "--execute")
    assert done.returncode == 0, done.stderr
    assert "DATABASE_URL_MESSAGING=" in done.stdout
    assert moving <= _tables(target)
    assert not moving & _tables(source)
    # No foreign key crosses the two databases any more.
    crossing = _sql("SELECT COUNT(*) FROM information_schema.referential_constraints "
                    "WHERE (constraint_schema = %s AND unique_constraint_schema = %s) "
                    "OR (constraint_schema = %s AND unique_constraint_schema = %s)",
                    [source, target, target, source])
    assert crossing[0][0] == 0

    split = {"DATABASE_URL_MESSAGING": _url(target)}
    assert _rows(manage, **split) == before
    check = manage("migrate", "--database", "messaging", "--check", **split)
    assert check.returncode == 0, check.stdout + check.stderr  # every migration counts as applied there
    assert manage("shell", stdin=WRITE, **split).returncode == 0
    after = _rows(manage, **split)
    assert len(after) == 13 and "after the move" in {row[1] for row in after}
    audit = _sql(f"SELECT operation, result FROM `{source}`.audit_logs WHERE operation = 'database.move_module'")
    assert audit == (("database.move_module", "SUCCESS"),)


@pytest.mark.mysql
def test_a_move_is_refused_with_a_sentence(scratch):
    source, target, manage = scratch
    # A connection of "the running platform" on the source database.
    other = connection.settings_dict
    platform = MySQLdb.connect(host=other["HOST"] or "127.0.0.1", port=int(other["PORT"] or 3306),
                               user=other["USER"], passwd=other["PASSWORD"], db=source)
    try:
        done = manage("move_module", "messaging", "--to", _url(target), "--execute")
    finally:
        platform.close()
    assert done.returncode != 0
    assert "other connection(s) use the database" in done.stderr and "stop the platform" in done.stderr
    assert _tables(target) == set()
    _sql(f"CREATE DATABASE `{target}`")
    _sql(f"CREATE TABLE `{target}`.messages (id INT PRIMARY KEY)")
    cases = [
        (("messaging", "--to", _url(target), "--execute"), "already holds 1 of the tables"),
        (("messaging", "--to", "postgres://u@h/db"), "not a MariaDB/MySQL database URL"),
        (("messaging", "--to", _url(source)), "already in"),
        (("messaging", "--to", "mysql://root@127.0.0.1:1/x", "--method", "rename"), "within one server only"),
        (("messaging", "--to", "mysql://root@127.0.0.1:1/x"), "cannot be reached"),
        (("accounts", "--to", _url(target)), "invalid choice"),
    ]
    for args, sentence in cases:
        done = manage("move_module", *args)
        assert done.returncode != 0, args
        assert sentence in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert _tables(target) == {"messages"}


def test_the_accounts_module_stays_with_the_platform_and_sqlite_is_one_file():
    with pytest.raises(moving.MoveError, match="platform's own tables"):
        moving.plan("accounts", "mysql://root@127.0.0.1/x")
    if connection.vendor == "sqlite":
        with pytest.raises(CommandError, match="needs MariaDB/MySQL"):
            call_command("move_module", "messaging", "--to", "mysql://root@127.0.0.1/x")
    with pytest.raises(CommandError):
        call_command("move_module", "nowhere", "--to", "mysql://root@127.0.0.1/x")
