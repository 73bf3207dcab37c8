"""Celery tasks of messaging (thin: the work is in services.py and dispatch.py).

Every task is safe to run twice: acks_late + reject_on_worker_lost (settings) re-deliver a task
whose worker died, and the work itself is idempotent (claims, conditional updates, uuids).
"""
from celery import shared_task

from . import dispatch, services


@shared_task(name="messaging.start_task", ignore_result=True)
def start_task(task_id):
    return services.start_task(task_id)


@shared_task(name="messaging.dispatch_task", ignore_result=True)
def dispatch_task(task_id, token=None):
    return dispatch.run(task_id, token=token)


@shared_task(name="messaging.kick", ignore_result=True)
def kick():
    """Start due tasks, hand back stale claims, keep dispatchers running (beat, every 15 s)."""
    return services.kick()


@shared_task(name="messaging.reset_daily_counters", ignore_result=True)
def reset_daily_counters():
    return services.reset_daily_counters()
