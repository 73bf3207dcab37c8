"""Beat entries of the platform's own infrastructure (merged by wework/celery.py)."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    # Daily shard rotation: create the coming periods, demote, export; no drops unless
    # SHARDING_BEAT_DROPS is set (see docs/shards.md).
    "shards-rotate-daily": {
        "task": "shards.rotate",
        "schedule": crontab(hour=3, minute=17),
    },
}
