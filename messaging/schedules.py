"""Periodic tasks of messaging, merged into Celery beat by wework/celery.py."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    # Start due (scheduled) tasks, take over expired claims (CLAIM_LEASE_S), restart vanished
    # dispatchers (LEASE_TTL_S).
    "messaging.kick": {"task": "messaging.kick", "schedule": 5.0},
    # today_messages back to 0 at local midnight (CELERY_TIMEZONE, Asia/Shanghai).
    "messaging.reset_daily_counters": {
        "task": "messaging.reset_daily_counters",
        "schedule": crontab(hour=0, minute=0),
    },
}
