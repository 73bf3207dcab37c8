"""Celery tasks of instances (thin: the logic is in instances.services)."""
from celery import shared_task

from . import services


@shared_task(name="instances.process_event", acks_late=True, ignore_result=True)
def process_event(event_pk):
    return services.process_event(event_pk)


@shared_task(name="instances.process_events", acks_late=True, ignore_result=True)
def process_events(event_pks):
    """Process the events the intake stored together (one publish per inbox batch)."""
    return services.process_events(event_pks)


@shared_task(name="instances.replay_events", ignore_result=True)
def replay_events(instance_id, after_seq):
    from .models import WeworkInstance

    instance = WeworkInstance.objects.filter(pk=instance_id).first()
    if instance is None:
        return 0
    try:
        return services.replay_events(instance, after_seq)
    except services.ServiceError:
        return 0  # recorded on the instance; the next gap or heartbeat retries


@shared_task(name="instances.check_heartbeats", ignore_result=True)
def check_heartbeats():
    return services.mark_silent_instances_offline()


@shared_task(name="instances.reconnect_offline", ignore_result=True)
def reconnect_offline():
    return services.reconnect_offline_instances()


@shared_task(name="instances.retry_stuck_events", ignore_result=True)
def retry_stuck_events():
    return services.retry_stuck_events()


@shared_task(name="instances.prune_events", ignore_result=True)
def prune_events():
    return services.prune_events()


@shared_task(name="instances.restart", ignore_result=True)
def restart(instance_id, reason=None):
    from .models import WeworkInstance

    services.restart_instance(WeworkInstance.objects.get(pk=instance_id), reason=reason)
