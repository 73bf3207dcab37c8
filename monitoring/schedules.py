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
    "monitoring-export-logs": {
        # No-op unless SYSTEM_LOG_ELASTICSEARCH_HOSTS is set (and the database sink is on).
        "task": "monitoring.export_logs",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "monitoring-report-log-queue": {
        "task": "monitoring.report_log_queue",
        "schedule": crontab(minute="*/5"),
        "options": {"expires": 240},
    },
}
