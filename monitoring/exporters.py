"""Exporters that copy rows of the database to outside stores, from a cursor, in id order.

- InfluxDB (official `influxdb-client`), off unless INFLUXDB_URL: rows of `instance_monitors`
  as points `instance_metric,instance_id=<id>,metric=<name> value=<float> <collected_at>`.
- Elasticsearch (official `elasticsearch` client), off unless SYSTEM_LOG_ELASTICSEARCH_HOSTS:
  rows of `system_logs` into `<prefix>-YYYY.MM.DD` with the log uuid as document id. When the
  database sink stores the logs (SYSTEM_LOG_DB, the default), Elasticsearch is fed from the
  database by this exporter, so an Elasticsearch outage loses nothing; without the database
  sink the live sink (monitoring/sinks.py) writes to it directly.

Beat runs both every minute. Each run reads the rows after its cursor **by id ascending**,
across the shards from the oldest to the newest (`ascending_rows`), and writes them in batches
of BATCH rows; the cursor moves after each accepted batch. After an outage the backlog goes out
oldest first, MAX_ROWS per run, until it is drained; nothing is skipped. The cursor is the last
exported id and the ids already sent in its second: ids made for a given time (a sample's own
time) interleave within a second (wework/ids.py), so a run starts at the first id of the
cursor's second and skips the ids it sent. Both stores are idempotent (a point per series and
time, a document per id), so a batch repeated after a failed cursor update does no harm.
"""
import datetime
import logging

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.utils import timezone

from instances.models import InstanceMonitor
from wework import shards
from wework.shards import ddl

from .models import SystemLog

logger = logging.getLogger(__name__)

CURSOR_KEY = "monitoring:influx:last-id"
LOG_CURSOR_KEY = "monitoring:elasticsearch:last-id"
MAX_ROWS = 50_000  # per run
BATCH = 5_000  # per write
FIRST_WINDOW = datetime.timedelta(minutes=10)


# --- Reading in id order --------------------------------------------------------------------

def _second_of(id_value):
    return shards.id_time(id_value).replace(microsecond=0)


def ascending_rows(base_model, start_id, limit, values):
    """Up to `limit` rows with id >= start_id as dicts, by id ascending, oldest shard first."""
    rows = []
    for model in reversed(shards.shard_models(base_model, since=_second_of(start_id))):
        qs = model._default_manager.filter(pk__gte=start_id).order_by("pk").values(*values)
        try:
            rows.extend(qs[: limit - len(rows)])
        except DatabaseError as exc:
            if ddl.is_missing_table_error(exc):
                continue  # dropped meanwhile (past its retention): nothing to export
            raise
        if len(rows) >= limit:
            break
    return rows


def _load_cursor(key):
    cursor = cache.get(key)
    if isinstance(cursor, int):  # the cursor of earlier versions: the last id alone
        cursor = {"last_id": cursor, "seen": []}
    return cursor


def export_from_cursor(base_model, key, values, write, now=None, max_rows=None, batch=None):
    """Write the rows after the cursor `key` with `write(rows)`, oldest first; returns how many.

    Stops after `max_rows` (a run), moves the cursor after every accepted batch; a failing
    write raises with the cursor at the last accepted batch.
    """
    now = now or timezone.now()
    max_rows = MAX_ROWS if max_rows is None else max_rows
    batch = BATCH if batch is None else batch
    cursor = _load_cursor(key)
    if cursor:
        start = shards.id_bounds(_second_of(cursor["last_id"]))[0]
        seen = set(cursor["seen"])
    else:
        start = shards.id_bounds(now - FIRST_WINDOW)[0]
        seen = set()
    done = 0
    while done < max_rows:
        want = min(batch, max_rows - done)
        requested = want + len(seen)
        fetched = ascending_rows(base_model, start, requested, values)
        rows = [r for r in fetched if r["id"] not in seen][:want]
        if not rows:
            break
        write(rows)
        done += len(rows)
        last_id = rows[-1]["id"]
        last_second = _second_of(last_id)
        seen = {i for i in seen if _second_of(i) == last_second}
        seen.update(r["id"] for r in rows if _second_of(r["id"]) == last_second)
        cache.set(key, {"last_id": last_id, "seen": sorted(seen)}, timeout=None)
        start = shards.id_bounds(last_second)[0]
        if len(fetched) < requested:
            break  # the end of the table: nothing more to read
    return done


# --- InfluxDB -------------------------------------------------------------------------------

def influx_config():
    conf = getattr(settings, "INFLUXDB", None) or {}
    return conf if conf.get("url") else None


def points_from_rows(rows):
    from influxdb_client import Point, WritePrecision

    points = []
    for row in rows:
        points.append(
            Point("instance_metric")
            .tag("instance_id", str(row["instance_id"]))
            .tag("metric", row["metric_name"])
            .field("value", float(row["metric_value"]))
            .time(row["collected_at"], WritePrecision.S)
        )
        if row.get("metric_unit"):
            points[-1].tag("unit", row["metric_unit"])
    return points


def write_points(points, conf):
    from influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS

    with InfluxDBClient(url=conf["url"], token=conf.get("token") or "", org=conf.get("org") or "",
                        timeout=10_000) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=conf.get("bucket") or "wework", org=conf.get("org") or "", record=points)


METRIC_VALUES = ("id", "instance_id", "metric_name", "metric_value", "metric_unit", "collected_at")


def export_new_metrics(now=None, max_rows=None):
    """Export the instance_monitors rows after the cursor to InfluxDB; returns how many."""
    conf = influx_config()
    if conf is None:
        return 0
    count = export_from_cursor(
        InstanceMonitor, CURSOR_KEY, METRIC_VALUES,
        lambda rows: write_points(points_from_rows(rows), conf), now=now, max_rows=max_rows,
    )
    if count:
        logger.info("exported %d metric samples to InfluxDB", count, extra={"action": "influx_export"})
    return count


# --- Elasticsearch --------------------------------------------------------------------------

def elasticsearch_exports():
    """True when Elasticsearch is fed from the database by this exporter."""
    conf = getattr(settings, "SYSTEM_LOG_ELASTICSEARCH", None) or {}
    return bool(conf.get("hosts")) and bool(getattr(settings, "SYSTEM_LOG_DB", True))


def export_new_logs(now=None, max_rows=None, sink=None):
    """Export the system_logs rows after the cursor to Elasticsearch; returns how many."""
    if sink is None:
        if not elasticsearch_exports():
            return 0
        from .sinks import elasticsearch_sink_from_settings

        sink = elasticsearch_sink_from_settings()
    values = ["id"] + [f.attname for f in SystemLog._meta.local_fields if f.attname != "id"]
    count = export_from_cursor(SystemLog, LOG_CURSOR_KEY, values, sink.write, now=now,
                               max_rows=max_rows)
    if count:
        logger.info("exported %d system log records to Elasticsearch", count,
                    extra={"action": "elasticsearch_export"})
    return count
