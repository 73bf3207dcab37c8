"""Beat entries of the platform's own infrastructure (merged by wework/celery.py)."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    # Daily shard rotation: create the coming periods, demote, export; no drops unless
    # SHARDING_BEAT_DROPS is set (see docs/shards.md).
    "shards-rotate-daily": {
        "task": "shards.rotate",
        "schedule": crontab(hour=3, minute=17),
    },
    # Per-module databases: references across databases naming a missing row (a no-op on one
    # database; docs/schema.md, "Storage layout").
    "database-report-orphans-nightly": {
        "task": "database.report_orphans",
        "schedule": crontab(hour=4, minute=41),
    },
}
