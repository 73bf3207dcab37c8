"""The platform's Celery application (worker and beat).

Periodic tasks are declared next to their code: each app may define `BEAT_SCHEDULE` (a dict in
Celery's beat_schedule format) in `<app>/schedules.py`; they are merged here.
"""
import os
from importlib import import_module

from celery import Celery

from wework import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wework.settings")
broker.register()  # the embedded broker writes its message files atomically

app = Celery("wework")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

SCHEDULE_APPS = ("wework", "accounts", "instances", "contacts", "messaging", "monitoring")


@app.on_after_configure.connect
def _merge_app_schedules(sender, **kwargs):
    schedule = dict(sender.conf.beat_schedule or {})
    for name in SCHEDULE_APPS:
        try:
            module = import_module(f"{name}.schedules")
        except ModuleNotFoundError as exc:
            if exc.name != f"{name}.schedules":
                raise
            continue
        schedule.update(getattr(module, "BEAT_SCHEDULE", {}))
    sender.conf.beat_schedule = schedule
