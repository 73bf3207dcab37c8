"""Celery tasks of monitoring (thin: the logic lives in services.py and delivery.py)."""
import logging

from celery import shared_task

from . import delivery

logger = logging.getLogger(__name__)

RETRY_KWARGS = {"max_retries": 5}


@shared_task(name="monitoring.evaluate_alert_rules", ignore_result=True)
def evaluate_alert_rules():
    from . import services

    results = services.evaluate_rules()
    return {name: list(r) if r else None for name, r in results.items()}


@shared_task(name="monitoring.notify_alert", ignore_result=True)
def notify_alert(alert_id):
    """Fan out one alert to its channels: one delivery task per channel target."""
    for channel, target in delivery.targets_for(alert_id):
        deliver_notification.delay(alert_id, channel, target)


@shared_task(
    bind=True,
    name="monitoring.deliver_notification",
    ignore_result=True,
    autoretry_for=(delivery.DeliveryError,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    retry_kwargs=RETRY_KWARGS,
)
def deliver_notification(self, alert_id, channel, target):
    final = self.request.retries >= RETRY_KWARGS["max_retries"]
    return delivery.deliver(alert_id, channel, target, attempt=self.request.retries + 1,
                            final=final)


@shared_task(
    bind=True,
    name="monitoring.flush_robot",
    ignore_result=True,
    autoretry_for=(delivery.DeliveryError,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_kwargs=RETRY_KWARGS,
)
def flush_robot(self, url_token):
    """Send the messages parked for a rate-limited robot, merged into one."""
    return delivery.flush_parked(url_token)


@shared_task(name="monitoring.export_metrics", ignore_result=True)
def export_metrics():
    from . import exporters

    return exporters.export_new_metrics()


@shared_task(name="monitoring.export_logs", ignore_result=True)
def export_logs():
    from . import exporters

    return exporters.export_new_logs()


@shared_task(name="monitoring.report_log_queue", ignore_result=True)
def report_log_queue():
    from .logging_handler import handlers

    return [h.stats() for h in handlers()]
