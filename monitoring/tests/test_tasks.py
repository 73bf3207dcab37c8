"""Celery wiring of monitoring: beat schedules and the system log handler in workers."""
from wework.celery import app


def test_beat_schedule_names_registered_tasks():
    import monitoring.tasks  # noqa: F401 - registers the shared tasks
    from monitoring.schedules import BEAT_SCHEDULE

    for entry in BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, entry["task"]


def test_celery_root_logger_keeps_the_system_log_handler():
    import logging

    from monitoring.logging_handler import SystemLogHandler
    from monitoring.signals import _keep_system_log_handler

    handler = SystemLogHandler(sinks=[])
    logger = logging.Logger("celery-root")
    _keep_system_log_handler(logger=logger)
    assert handler in logger.handlers
    SystemLogHandler._instances.remove(handler)
