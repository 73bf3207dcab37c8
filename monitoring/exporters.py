"""InfluxDB exporter of instance metrics (official `influxdb-client`), off by default.

Beat runs `export_new_metrics()` every minute: rows of `instance_monitors` newer than the last
exported id (kept in the cache) are written as points
`instance_metric,instance_id=<id>,metric=<name> value=<float> <collected_at>` to
settings.INFLUXDB (url, token, org, bucket). Without INFLUXDB_URL it does nothing.
"""
import datetime
import logging

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from instances.models import InstanceMonitor
from wework import shards

logger = logging.getLogger(__name__)

CURSOR_KEY = "monitoring:influx:last-id"
MAX_ROWS = 50_000
FIRST_WINDOW = datetime.timedelta(minutes=10)


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


SLICE = datetime.timedelta(minutes=1)


def _second_of(id_value):
    return shards.id_time(id_value).replace(microsecond=0)


def export_new_metrics(now=None):
    """Export instance_monitors rows not exported yet, oldest first; returns how many were
    written.

    The cursor is the last exported id and the ids exported in its second: ids made for a
    given time (a sample's own time) interleave within a second (wework/ids.py), so the scan
    starts at the cursor's second and skips the ids already sent. It walks forward one
    minute at a time and stops after MAX_ROWS at a minute's end, so after an outage the oldest
    samples go first and none is skipped.
    """
    conf = influx_config()
    if conf is None:
        return 0
    now = now or timezone.now()
    cursor = cache.get(CURSOR_KEY)
    if isinstance(cursor, int):  # the cursor of earlier versions: the last id alone
        cursor = {"last_id": cursor, "seen": []}
    if cursor:
        since = _second_of(cursor["last_id"])
        seen = set(cursor["seen"])
    else:
        since, seen = now - FIRST_WINDOW, set()
    until = now + datetime.timedelta(seconds=1)
    rows = []
    start = since
    while start < until and len(rows) < MAX_ROWS:
        end = min(start + SLICE, until)
        chunk = [row for row in shards.iterate(InstanceMonitor, since=start, until=end)
                 if row.id not in seen]
        chunk.sort(key=lambda row: row.id)
        rows.extend({"id": row.id, "instance_id": row.instance_id,
                     "metric_name": row.metric_name, "metric_value": row.metric_value,
                     "metric_unit": row.metric_unit, "collected_at": row.collected_at}
                    for row in chunk)
        start = end
    if not rows:
        return 0
    write_points(points_from_rows(rows), conf)
    last_id = max(r["id"] for r in rows)
    last_second = _second_of(last_id)
    seen = {i for i in seen if _second_of(i) == last_second}
    seen.update(r["id"] for r in rows if _second_of(r["id"]) == last_second)
    cache.set(CURSOR_KEY, {"last_id": last_id, "seen": sorted(seen)}, timeout=None)
    logger.info("exported %d metric samples to InfluxDB", len(rows),
                extra={"action": "influx_export"})
    return len(rows)
