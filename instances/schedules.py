from celery.schedules import crontab

BEAT_SCHEDULE = {
    "instances.check_heartbeats": {"task": "instances.check_heartbeats", "schedule": 15.0},
    "instances.reconnect_offline": {"task": "instances.reconnect_offline", "schedule": 30.0},
    "instances.retry_stuck_events": {"task": "instances.retry_stuck_events", "schedule": 60.0},
    "instances.prune_events": {"task": "instances.prune_events",
                               "schedule": crontab(hour=3, minute=30)},
}
