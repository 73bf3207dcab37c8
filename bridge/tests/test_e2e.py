"""End to end through the bridge: the real puppet-service server (npm wechaty-puppet-service with
the mock puppet), the bridge in front of it, and the platform on a live server. Registration,
QR login, the contacts/rooms sync into the instance's shards, a broadcast to the mock's contacts,
inbound messages, and a stream gap reported as an alert."""
import time

import pytest
from django.db import connection

from bridge.runtime import Bridge
from bridge.server import BridgeServer
from contacts import services as contact_services
from contacts.models import AccountStatus, Contact, Group, GroupMember, WeworkAccount
from instances import services
from instances.models import EventState, InstanceEvent, InstanceStatus
from messaging.models import ReceiverSendStatus as RS, TaskStatus
from messaging.services import sending
from messaging.services.requests import TaskRequest
from monitoring.models import AlertRecord
from wework import shards

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TOKEN = "bridge-e2e-token"
FAST = {"MIN_INTERVAL_S": 0, "JITTER_S": 0, "PER_MINUTE": 0, "DAILY": 0, "CONVERSATION_INTERVAL_S": 0,
        "CHECK_MEDIA_URLS": False, "ACK_POLL_AFTER_S": 0.2, "ACK_WAIT_S": 15, "RETRY_BASE_S": 0,
        "FLUSH_INTERVAL_S": 0.2}


def wait_for(predicate, timeout=30.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s: {predicate.__doc__ or predicate}")


def needs_file_database():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("needs a file database: the live server and the test write concurrently "
                    "(set TEST_SQLITE_NAME, or run on MariaDB)")


@pytest.fixture
def drop_shards_before_flush():
    yield
    from wework.shards.testing import drop_shard_tables

    drop_shard_tables()


@pytest.fixture
def bridge(puppet_mock, ports, tmp_path):
    b = Bridge(str(tmp_path / "bridge.sqlite3"), token=TOKEN, ding_interval_s=1, retry_base_s=0.1, retry_max_s=1,
               providers=[{"token": "insecure_bridge_test", "endpoint": f"127.0.0.1:{ports[0]}"}])
    server = BridgeServer(b, port=0)
    b.start()
    b.url = server.start()
    yield b
    server.stop()
    b.stop()


def test_platform_drives_a_puppet_service_account(live_server, drop_shards_before_flush, settings, puppet_mock,
                                                  bridge, django_user_model):
    needs_file_database()
    settings.PLATFORM_BASE_URL = live_server.url
    settings.MESSAGING = dict(FAST)
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-1234567")
    world = puppet_mock.ctl("/setup", contacts=12, rooms=2, members=3)

    registration = services.register_instance(name="bridge", api_url=bridge.url, token=TOKEN, max_accounts=1,
                                              heartbeat_interval=1, created_by=admin)
    assert registration.pushed, registration.push_error
    instance = registration.instance

    def online():
        """the bridge's heartbeats bring the instance online"""
        instance.refresh_from_db()
        return instance.status == InstanceStatus.ONLINE
    wait_for(online)

    # QR login: the provider shows a QR code (scan event), the phone confirms (login event)
    puppet_mock.ctl("/scan")
    state = contact_services.start_login(instance, user=admin)
    assert state["qrcode"].startswith("https://login.weixin.qq.com/")
    puppet_mock.ctl("/login")
    state = wait_for(lambda: (lambda s: s if s["status"] == "confirmed" else None)(
        contact_services.poll_login(instance, state["login_id"])))
    account = WeworkAccount.objects.get(pk=state["account_pk"])
    assert account.wxid == world["self_id"]
    assert account.is_logged_in and account.status == AccountStatus.ONLINE

    # the platform syncs the address book by itself after the login: contacts, rooms, members
    def synced():
        """the sync after the QR login is done"""
        run = contact_services.sync_run(account)
        return run and run["status"] == "done"
    wait_for(synced, timeout=60)
    contacts = shards.for_instance(Contact, instance.pk).filter(account=account)
    groups = shards.for_instance(Group, instance.pk).filter(account=account)
    assert set(contacts.values_list("wxid", flat=True)) == set(world["contact_ids"])
    assert set(groups.values_list("group_wxid", flat=True)) == set(world["room_ids"])
    members = shards.for_instance(GroupMember, instance.pk).filter(group_id__in=list(groups.values_list("id", flat=True)))
    assert members.count() == 2 * 4  # the account and three contacts in each room

    # a broadcast to every contact: each receiver succeeds once, the provider got each message once
    task = sending.create_task(admin, TaskRequest(account=account, message_type="text", content="Hello {{ receiver_name }}",
                                                  filters={"source": "contacts"}), start=True)

    def finished():
        """the broadcast completed"""
        task.refresh_from_db()
        return task.status == TaskStatus.COMPLETED
    wait_for(finished, timeout=60)
    assert task.receivers.filter(send_status=RS.SUCCESS).count() == 12
    received = puppet_mock.ctl("/received")["received"]
    assert sorted(r["conversation_id"] for r in received) == sorted(world["contact_ids"])

    # inbound messages become signed events the platform processes
    puppet_mock.ctl("/inbound", **{"from": world["contact_ids"][0], "text": "hello platform", "count": 3})
    wait_for(lambda: InstanceEvent.objects.filter(instance=instance, event_type="message.received",
                                                  state=EventState.DONE).count() >= 3)
    assert not InstanceEvent.objects.filter(instance=instance, state=EventState.FAILED).exists()

    # the provider's stream breaks; upstream puppet-service cannot resume: an alert names the window
    provider = next(iter(bridge.providers.values()))
    assert not provider.resume_supported
    provider.reconnect()
    wait_for(lambda: AlertRecord.objects.filter(rule_name="instance.stream_gap", source_id=str(instance.pk)).exists())


def test_tokens_are_an_instance_configuration_push(settings, puppet_mock, ports, tmp_path, django_user_model):
    """set_puppet_services stores the tokens encrypted, sets max_accounts and pushes them: the bridge
    connects to the new provider and saves the list for its next start."""
    from django.core.management import call_command

    from instances.models import InstanceConfig

    settings.PLATFORM_BASE_URL = "http://127.0.0.1:9"  # no webhook deliveries needed here
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-1234567")
    bridge = Bridge(str(tmp_path / "bridge.sqlite3"), token=TOKEN, ding_interval_s=1)
    server = BridgeServer(bridge, port=0)
    bridge.start()
    url = server.start()
    try:
        instance = services.register_instance(name="bridge", api_url=url, token=TOKEN, created_by=admin).instance
        call_command("set_puppet_services", "--instance", "bridge", "--service", f"insecure_bridge_test@127.0.0.1:{ports[0]}")
        instance.refresh_from_db()
        assert instance.max_accounts == 1
        row = InstanceConfig.objects.get(instance=instance, config_key="puppet_services")
        assert row.is_encrypted and "insecure_bridge_test" not in row.config_value
        wait_for(lambda: bridge.providers.get("insecure_bridge_test") and bridge.providers["insecure_bridge_test"].connected)
        assert bridge.store.get("providers") == [{"token": "insecure_bridge_test", "endpoint": f"127.0.0.1:{ports[0]}"}]
        with pytest.raises(Exception, match="TOKEN@HOST:PORT"):
            call_command("set_puppet_services", "--instance", "bridge", "--service", "no-endpoint")
    finally:
        server.stop()
        bridge.stop()
