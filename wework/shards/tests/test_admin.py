import time
from datetime import datetime

import pytest
from django.urls import reverse

from accounts.models import User
from accounts.services.otp import SUDO_SESSION_KEY
from wework import ids
from wework.shards import ddl, services, tasks
from wework.shards.conf import period_of, shard_timezone
from wework.shards.models import ShardState, ShardTable
from wework.shards.tests.models import ProbeEvent

pytestmark = pytest.mark.django_db(transaction=True)
URL = "admin:shards_shardtable_changelist"


def local(*args):
    return datetime(*args, tzinfo=shard_timezone())


@pytest.fixture
def old_shard(probe_sharding):
    """probe_events_202501 with two rows, created by the tool, past its cold window."""
    model = services.router.ensure_time_shard(ProbeEvent, period_of("month", local(2025, 1, 5)),
                                              check_range=False)
    for i in range(2):
        model.objects.create(id=ids.new_id(local(2025, 1, 5, i)), event_uuid=ids.new_uuid(), body=str(i),
                             created_at=local(2025, 1, 5, i))
    return ShardTable.objects.get(table_name="probe_events_202501")


@pytest.fixture
def admin_client_verified(client, super_admin, login_verified):
    """Verified with a one-time code, not in sudo mode yet."""
    login_verified(client, super_admin)
    return client


def sudo(client):
    session = client.session
    session[SUDO_SESSION_KEY] = time.time()
    session.save()


def post_drop(client, row, confirm=False):
    data = {"action": "drop_selected", "_selected_action": [row.pk]}
    if confirm:
        data["confirm"] = "yes"
    return client.post(reverse(URL), data)


def test_registry_changelist(admin_client_verified, old_shard):
    response = admin_client_verified.get(reverse(URL))
    assert response.status_code == 200
    assert b"probe_events_202501" in response.content


def test_drop_asks_for_confirmation_then_sudo_then_drops(admin_client_verified, old_shard):
    response = post_drop(admin_client_verified, old_shard)
    assert response.status_code == 200 and b'name="confirm" value="yes"' in response.content
    assert ddl.table_exists("probe_events_202501")
    response = post_drop(admin_client_verified, old_shard, confirm=True)
    assert response.status_code == 302 and "sudo" in response["Location"]
    assert ddl.table_exists("probe_events_202501")
    sudo(admin_client_verified)
    response = post_drop(admin_client_verified, old_shard, confirm=True)
    assert response.status_code in (200, 302)
    assert not ddl.table_exists("probe_events_202501")
    old_shard.refresh_from_db()
    assert old_shard.state == ShardState.DROPPED and old_shard.export_rows == 2


def test_drop_refuses_tables_the_tool_did_not_create(admin_client_verified, old_shard):
    ShardTable.objects.filter(pk=old_shard.pk).update(created_by_tool=False)
    sudo(admin_client_verified)
    post_drop(admin_client_verified, old_shard, confirm=True)
    assert ddl.table_exists("probe_events_202501")


def test_staff_without_permission_cannot_drop(client, old_shard, login_verified):
    user = User.objects.create_user(username="staff", email="s@example.com", password="x" * 12)
    login_verified(client, user)
    sudo(client)
    response = post_drop(client, old_shard, confirm=True)
    assert response.status_code in (302, 403)
    assert ddl.table_exists("probe_events_202501")


def run_eagerly(task):
    # EagerResult.get() refuses to join while celery's process-global "inside a task" flag is
    # set, and any background thread of the test process running an eager task sets it
    # (the inbox publisher does): read the outcome without that check.
    result = task.apply()
    assert result.successful(), result.traceback
    return result.result


def test_beat_rotation_drops_past_the_cold_window_by_default(old_shard, settings):
    del settings.SHARDING_BEAT_DROPS  # the code's default, as without the setting
    result = run_eagerly(tasks.rotate_shards)
    assert "steps" in result
    old_shard.refresh_from_db()
    assert old_shard.state == ShardState.DROPPED and old_shard.export_rows is not None
    assert not ddl.table_exists("probe_events_202501")


def test_settings_drop_by_default_with_an_environment_variable():
    import subprocess
    import sys

    code = "import django; django.setup(); from django.conf import settings; print(settings.SHARDING_BEAT_DROPS)"
    env = {**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "wework.test_settings"}
    env.pop("SHARDING_BEAT_DROPS", None)
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "True"
    env["SHARDING_BEAT_DROPS"] = "0"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_beat_rotation_keeps_the_tables_when_drops_are_off(old_shard, settings):
    settings.SHARDING_BEAT_DROPS = False
    result = run_eagerly(tasks.rotate_shards)
    assert "steps" in result
    old_shard.refresh_from_db()
    assert old_shard.state == ShardState.ARCHIVED  # exported, table kept
    assert ddl.table_exists("probe_events_202501")


def test_beat_schedule_entry():
    from wework.schedules import BEAT_SCHEDULE

    assert BEAT_SCHEDULE["shards-rotate-daily"]["task"] == "shards.rotate"
