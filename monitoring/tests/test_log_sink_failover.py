"""The database log sink across a database switch-over: a batch is written once, whether the
connection is lost before its COMMIT or during it (wework.db.retry)."""
import logging

import pytest
from django.db import OperationalError, connections
from django.utils import timezone

from monitoring.logging_handler import build_entry
from monitoring.models import SystemLog
from monitoring.sinks import DatabaseSink
from wework import shards
from wework.db.layout import alias_for_app

pytestmark = pytest.mark.django_db(transaction=True)


def _entries(n, tag):
    out = []
    for i in range(n):
        record = logging.LogRecord("tests.failover", logging.WARNING, __file__, 1, f"{tag} {i}", (), None)
        entry = build_entry(record, "test")
        entry["log_uuid"] = shards.new_uuid()
        entry["trace_id"] = tag
        out.append(entry)
    return out


def _stored(tag):
    return [row.message for row in shards.iterate(SystemLog, filters={"trace_id": tag},
                                                  since=timezone.now() - timezone.timedelta(days=1))]


def _fail_commit_once(monkeypatch, after_commit):
    connection = connections[alias_for_app("monitoring")]  # the logs' database
    real_commit = connection.commit
    calls = []

    def commit():
        calls.append(1)
        if len(calls) == 1:
            if after_commit:
                real_commit()  # stored, but the answer never reaches the client
            raise OperationalError(2013, "Lost connection to server during query")
        return real_commit()

    monkeypatch.setattr(connection, "commit", commit)
    return calls


@pytest.mark.parametrize("after_commit", [False, True], ids=["lost-before-commit", "lost-after-commit"])
def test_a_batch_cut_off_at_commit_is_stored_exactly_once(monkeypatch, after_commit):
    entries = _entries(5, f"failover-{after_commit}")
    calls = _fail_commit_once(monkeypatch, after_commit)
    DatabaseSink(retry_attempts=3).write(entries)
    assert len(calls) == 2
    assert sorted(_stored(f"failover-{after_commit}")) == sorted(e["message"] for e in entries)


def test_a_batch_waits_out_an_unreachable_database(monkeypatch):
    entries = _entries(3, "unreachable")
    real = shards.bulk_create
    failures = [OperationalError(2003, "Can't connect to server"), OperationalError(1047, "WSREP not ready")]

    def flaky(*args, **kwargs):
        if failures:
            raise failures.pop(0)
        return real(*args, **kwargs)

    monkeypatch.setattr(shards, "bulk_create", flaky)
    monkeypatch.setattr("wework.db.retry.time.sleep", lambda s: None)
    DatabaseSink(retry_attempts=3).write(entries)
    assert len(_stored("unreachable")) == 3
