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


def export_new_metrics(now=None):
    """Export instance_monitors rows not exported yet; returns how many were written."""
    conf = influx_config()
    if conf is None:
        return 0
    from instances.models import InstanceMonitor
    from wework import shards

    now = now or timezone.now()
    last_id = cache.get(CURSOR_KEY)
    since = now - FIRST_WINDOW if last_id is None else shards.id_time(last_id)
    rows = []
    for row in shards.iterate(InstanceMonitor, since=since, until=now + datetime.timedelta(
            seconds=1), filters={"id__gt": last_id} if last_id else None):
        rows.append({"id": row.id, "instance_id": row.instance_id,
                     "metric_name": row.metric_name, "metric_value": row.metric_value,
                     "metric_unit": row.metric_unit, "collected_at": row.collected_at})
        if len(rows) >= MAX_ROWS:
            break
    if not rows:
        return 0
    write_points(points_from_rows(rows), conf)
    cache.set(CURSOR_KEY, max(r["id"] for r in rows), timeout=None)
    logger.info("exported %d metric samples to InfluxDB", len(rows),
                extra={"action": "influx_export"})
    return len(rows)
