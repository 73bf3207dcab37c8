"""Celery tasks of messaging (thin: the work is in services/ and dispatch/).

Every task is safe to run twice: acks_late + reject_on_worker_lost (settings) re-deliver a task
whose worker died, and the work itself is idempotent (claims, conditional updates, uuids).
The services enqueue these tasks, so this module and theirs import each other: both import
modules, never names, and use them only at call time.
"""
from celery import shared_task

from .dispatch import worker
from .services import counters, lifecycle


@shared_task(name="messaging.start_task", ignore_result=True)
def start_task(task_id):
    return lifecycle.start_task(task_id)


@shared_task(name="messaging.dispatch_task", ignore_result=True)
def dispatch_task(task_id, token=None):
    return worker.run(task_id, token=token)


@shared_task(name="messaging.kick", ignore_result=True)
def kick():
    """Start due tasks, hand back stale claims, keep dispatchers running (beat, every 15 s)."""
    return lifecycle.kick()


@shared_task(name="messaging.reset_daily_counters", ignore_result=True)
def reset_daily_counters():
    return counters.reset_daily_counters()
