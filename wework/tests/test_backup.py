"""Backup and restore (scripts/backup): a dump of a populated database, shard tables and their
registry included, restored into a fresh database, has the same tables, row counts and
checksums; a restore never lands on a database that has tables, nor from a damaged file.
MariaDB only (the CI section on MariaDB runs it)."""
import subprocess
from pathlib import Path

import pytest
from django.db import connection, connections
from django.utils import timezone

from wework.db.layout import alias_for_model, primary_aliases

ROOT = Path(__file__).resolve().parents[2]
BACKUP = ROOT / "scripts" / "backup"

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]


def _url(name):
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"mysql://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 3306}/{name}"


def _run(*args):
    return subprocess.run([str(BACKUP), *args], capture_output=True, text=True, timeout=300)


def _sql(statement):
    with connection.cursor() as cursor:
        cursor.execute(statement)


@pytest.fixture
def restore_db():
    if connection.vendor != "mysql":
        pytest.skip("scripts/backup works on MariaDB/MySQL (the SQLite default is a file: copy it)")
    name = connection.settings_dict["NAME"] + "_restore"
    _sql(f"DROP DATABASE IF EXISTS `{name}`")
    yield name
    _sql(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def restore_dbs():
    """{alias: the scratch database its dump is restored into}: one per module database (one,
    "default", unless the modules are on several: docs/schema.md, "Storage layout")."""
    if connection.vendor != "mysql":
        pytest.skip("scripts/backup works on MariaDB/MySQL (the SQLite default is a file: copy it)")
    names = {alias: connections[alias].settings_dict["NAME"] + "_restore" for alias in primary_aliases()}
    for name in names.values():
        _sql(f"DROP DATABASE IF EXISTS `{name}`")
    yield names
    for name in names.values():
        _sql(f"DROP DATABASE IF EXISTS `{name}`")


def _populate():
    from contacts.models import Contact
    from contacts.tests.factories import WeworkAccountFactory
    from messaging.models import Message
    from messaging.tests.factories import MessageTemplateFactory
    from monitoring.models import SystemLog
    from wework import shards

    account = WeworkAccountFactory()
    MessageTemplateFactory(name="模板 ✓", content="你好 {{ name }}", tags=["a", "b"])
    shards.bulk_create(Contact, [{"account_id": account.pk, "wxid": f"wxid_{i}", "nickname": f"联系人 {i} 🙂",
                                  "contact_type": 1, "remark": None} for i in range(120)],
                       instance_id=account.instance_id)
    now = timezone.now()
    shards.bulk_create(Message, [{"message_uuid": shards.new_uuid(), "account_id": account.pk, "chat_type": 1,
                                  "chat_wxid": f"wxid_{i}", "message_type": "text", "message_content": f"第 {i} 条",
                                  "message_metadata": {"direction": "out", "n": i}, "send_status": 2,
                                  "created_at": now} for i in range(200)])
    shards.bulk_create(SystemLog, [{"log_uuid": shards.new_uuid(), "level": "INFO", "service": "test",
                                    "module": "backup", "message": f"line {i}", "context": {"i": i},
                                    "created_at": now} for i in range(50)])
    return {
        "contacts": shards.model_for(Contact, instance_id=account.instance_id)._meta.db_table,
        "messages": shards.model_for(Message, when=now)._meta.db_table,
        "logs": shards.model_for(SystemLog, when=now)._meta.db_table,
    }


def test_a_dump_restores_into_a_fresh_database_with_equal_rows_and_checksums(restore_dbs, tmp_path):
    """Each database of the layout is dumped, restored and verified (a per-module layout is
    backed up database by database: docs/deployment.md, "Backup and restore")."""
    from contacts.models import Contact
    from messaging.models import Message, MessageTemplate
    from monitoring.models import SystemLog
    from wework.shards.models import ShardTable

    tables = _populate()
    for alias, restored_name in restore_dbs.items():
        source = _url(connections[alias].settings_dict["NAME"])
        dump = _run("dump", source, str(tmp_path / f"{alias}.sql.gz"))
        assert dump.returncode == 0, dump.stderr
        assert (tmp_path / f"{alias}.sql.gz.sha256").exists()
        restored = _run("restore", str(tmp_path / f"{alias}.sql.gz"), _url(restored_name))
        assert restored.returncode == 0, restored.stderr
        verified = _run("verify", source, _url(restored_name))
        assert verified.returncode == 0, verified.stdout
        assert verified.stdout.startswith("identical:")

    def restored(model):  # the scratch database holding the model's tables
        return restore_dbs[alias_for_model(model)]

    with connection.cursor() as cursor:  # one server: any connection reads every schema
        for model, table, rows in ((Contact, tables["contacts"], 120), (Message, tables["messages"], 200),
                                   (SystemLog, tables["logs"], 50)):
            cursor.execute(f"SELECT COUNT(*) FROM `{restored(model)}`.`{table}`")
            assert cursor.fetchone()[0] == rows, table
        cursor.execute(f"SELECT COUNT(*) FROM `{restored(ShardTable)}`.shard_tables")
        assert cursor.fetchone()[0] >= 3  # the registry came along: no migrate, no rotation needed
        cursor.execute(f"SELECT name FROM `{restored(MessageTemplate)}`.message_templates")
        assert cursor.fetchone()[0] == "模板 ✓"

    # verify can fail: one changed value in one shard is found.
    messages_db = restored(Message)
    _sql(f"UPDATE `{messages_db}`.`{tables['messages']}` SET message_content = 'changed' ORDER BY id LIMIT 1")
    different = _run("verify", _url(connections[alias_for_model(Message)].settings_dict["NAME"]), _url(messages_db))
    assert different.returncode == 1 and tables["messages"] in different.stdout


def test_a_restore_refuses_a_database_with_tables_and_a_damaged_file(restore_db, tmp_path):
    source = _url(connection.settings_dict["NAME"])
    assert _run("dump", source, str(tmp_path / "b.sql.gz")).returncode == 0
    refused = _run("restore", str(tmp_path / "b.sql.gz"), source)
    assert refused.returncode == 1 and "already has" in refused.stderr

    data = (tmp_path / "b.sql.gz").read_bytes()
    (tmp_path / "b.sql.gz").write_bytes(data[:-40] + bytes(40))
    damaged = _run("restore", str(tmp_path / "b.sql.gz"), _url(restore_db))
    assert damaged.returncode == 1 and "does not match its checksum" in damaged.stderr


def test_bad_arguments_are_a_sentence_not_a_traceback():
    result = _run("dump", "sqlite:///x.sqlite3")
    assert result.returncode == 1 and "not a MariaDB/MySQL URL" in result.stderr
    result = _run("restore", "/no/such/file.sql.gz", "mysql://root@127.0.0.1:3306/x")
    assert result.returncode == 1 and "no such file" in result.stderr
