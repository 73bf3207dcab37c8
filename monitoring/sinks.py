"""Where system log batches go: the database (daily shards) and, optionally, Elasticsearch.

Each sink has `write(entries)` (a list of column dicts, see logging_handler.build_entry) and may
have `reset()` (called after a failure). Sinks run in the log writer thread only.
"""
import logging

from django.conf import settings
from django.db import close_old_connections

from wework import shards
from wework.db.layout import alias_for_app, connection_for
from wework.db.retry import run_idempotent

from .models import SystemLog

# Raw SQL on this app's own tables: its database (per-module databases, wework.db.layout).
connection = connection_for("monitoring")

logger = logging.getLogger("monitoring.logging_handler")


class DatabaseSink:
    """Bulk inserts into `system_logs_YYYYMMDD` through the shard layer (one INSERT per shard
    per batch); into the plain `system_logs` table when sharding is off for the model.

    A batch outlives a database switch-over (a Galera node lost, a restart): it is written in
    one transaction, again with backoff for up to about `retry_seconds` while the database is
    unreachable or reports a conflict (wework.db.retry). A repeat skips the records a batch
    whose COMMIT was cut off may have stored already (their log_uuid is unique).
    """

    def __init__(self, batch_size=1000, retry_attempts=12):
        self.batch_size = batch_size
        self.retry_attempts = retry_attempts

    def write(self, entries):
        close_old_connections()
        attempts = []

        def insert():
            attempts.append(1)
            shards.bulk_create(SystemLog, [dict(e) for e in entries], batch_size=self.batch_size,
                               ignore_conflicts=len(attempts) > 1)

        # On the logs' own database only (a per-module layout would otherwise open a transaction
        # on every module's database for each batch).
        run_idempotent(insert, using=alias_for_app("monitoring"), attempts=self.retry_attempts,
                       base_delay=0.1, max_delay=2.0, name="system log batch")

    def reset(self):
        try:
            connection.close()
        except Exception:  # noqa: BLE001
            pass


class ElasticsearchSink:
    """Indexes each record into `<prefix>-YYYY.MM.DD` with the official `elasticsearch` client
    (bulk API, the log uuid as document id so that a retried batch does not duplicate)."""

    def __init__(self, hosts, index_prefix="wework-logs", api_key=None, username=None,
                 password=None, verify_certs=True, ca_certs=None, timeout=5.0, client=None):
        self.index_prefix = index_prefix
        if client is None:
            from elasticsearch import Elasticsearch

            options = {"request_timeout": timeout, "verify_certs": verify_certs,
                       "max_retries": 1, "retry_on_timeout": False}
            if ca_certs:
                options["ca_certs"] = ca_certs
            if api_key:
                options["api_key"] = api_key
            elif username:
                options["basic_auth"] = (username, password or "")
            client = Elasticsearch(hosts, **options)
        self.client = client

    def index_name(self, entry):
        return f"{self.index_prefix}-{entry['created_at']:%Y.%m.%d}"

    def document(self, entry):
        doc = {k: v for k, v in entry.items() if v is not None and k != "created_at"}
        doc["@timestamp"] = entry["created_at"].isoformat()
        return doc

    def write(self, entries):
        from elasticsearch import helpers

        actions = [
            {"_op_type": "index", "_index": self.index_name(e), "_id": e["log_uuid"],
             "_source": self.document(e)}
            for e in entries
        ]
        ok, errors = helpers.bulk(self.client, actions, raise_on_error=False,
                                  raise_on_exception=True, stats_only=False)
        if errors:
            raise RuntimeError(f"Elasticsearch refused {len(errors)} of {len(actions)} records: "
                               f"{errors[0]!r}"[:500])
        return ok


def elasticsearch_sink_from_settings():
    conf = getattr(settings, "SYSTEM_LOG_ELASTICSEARCH", None) or {}
    hosts = conf.get("hosts") or []
    if not hosts:
        return None
    return ElasticsearchSink(
        hosts,
        index_prefix=conf.get("index_prefix") or "wework-logs",
        api_key=conf.get("api_key") or None,
        username=conf.get("username") or None,
        password=conf.get("password") or None,
        verify_certs=conf.get("verify_certs", True),
        ca_certs=conf.get("ca_certs") or None,
        timeout=conf.get("timeout", 5.0),
    )


def sinks_from_settings():
    """The database sink (default); Elasticsearch live only without it: with the database
    sink, Elasticsearch is fed from the database by `exporters.export_new_logs` (beat, every
    minute), which resumes from its cursor after an outage."""
    sinks = []
    if getattr(settings, "SYSTEM_LOG_DB", True):
        sinks.append(DatabaseSink())
        return sinks
    es = elasticsearch_sink_from_settings()
    if es is not None:
        sinks.append(es)
    return sinks
