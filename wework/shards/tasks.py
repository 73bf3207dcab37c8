"""Celery tasks of the shard layer (thin: the work is in services)."""
import logging

from celery import shared_task
from django.conf import settings

from . import services
from .exceptions import RotationLocked

log = logging.getLogger("wework.shards")


@shared_task(name="shards.rotate")
def rotate_shards(drops=None):
    """The daily rotation: create ahead, demote, export then drop past the cold window
    (SHARDING_BEAT_DROPS, default on; off: export and keep)."""
    drops = getattr(settings, "SHARDING_BEAT_DROPS", True) if drops is None else drops
    try:
        steps = services.rotate(drops=drops)
    except RotationLocked as exc:
        log.info("shard rotation skipped: %s", exc)
        return {"skipped": str(exc)}
    changes = services.sync_schema()
    return {"steps": [str(s) for s in steps], "schema_changes": changes}
