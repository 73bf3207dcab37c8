"""Beat schedule of monitoring (merged by wework/celery.py)."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    "monitoring-evaluate-alert-rules": {
        "task": "monitoring.evaluate_alert_rules",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "monitoring-export-metrics": {
        # No-op unless INFLUXDB_URL is set.
        "task": "monitoring.export_metrics",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "monitoring-report-log-queue": {
        "task": "monitoring.report_log_queue",
        "schedule": crontab(minute="*/5"),
        "options": {"expires": 240},
    },
}
