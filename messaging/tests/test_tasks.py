"""Celery tasks and beat: the schedule is declared, the tasks run the services."""
import pytest

from messaging import tasks
from messaging.models import TaskStatus
from messaging.schedules import BEAT_SCHEDULE

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def test_schedule_declared():
    assert {"messaging.kick", "messaging.reset_daily_counters"} <= set(BEAT_SCHEDULE)
    assert {entry["task"] for entry in BEAT_SCHEDULE.values()} <= {
        "messaging.kick", "messaging.reset_daily_counters"}


def test_start_runs_the_task_through_its_dispatchers(world, sim):
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:2], start=False)
    tasks.start_task.delay(task.pk)  # eager in tests
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 2
    assert tasks.kick.apply().result == {"started": 0, "reclaimed": 0, "kicked": 0}
