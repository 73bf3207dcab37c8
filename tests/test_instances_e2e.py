"""End to end: a simulator on a local port, registered as an instance, delivering to the real
webhook endpoint of a live server; QR login by URL, sync, heartbeats, inbound messages, and the
instance going offline when the simulator stops."""
import time

import httpx
import pytest
from django.utils import timezone

from contacts import services as contact_services
from contacts.models import AccountStatus, Contact, Group, GroupMember, WeworkAccount
from instances import services
from instances.models import EventState, InstanceEvent, InstanceMonitor, InstanceStatus
from simulator.server import Simulator
from wework import shards

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout=15.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s: {predicate.__doc__ or predicate}")


def _in_memory_sqlite():
    from django.db import connection

    return connection.vendor == "sqlite" and connection.is_in_memory_db()


@pytest.fixture
def drop_shards_before_flush():
    """live_server's database teardown (flush) runs before conftest's shard cleanup; rows in
    shard tables would then break the flush's foreign keys: drop the shards first."""
    yield
    from wework.shards.testing import drop_shard_tables

    drop_shard_tables()


def test_instance_end_to_end(live_server, drop_shards_before_flush, settings,
                             django_user_model):
    if _in_memory_sqlite():
        pytest.skip("needs a file database: the live server and the test write concurrently "
                    "(set TEST_SQLITE_NAME, or run on MariaDB)")
    settings.PLATFORM_BASE_URL = live_server.url
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-1234567")
    sim = Simulator(port=0, token="e2e-token", accounts=1, contacts=120, rooms=5, members=8,
                    seed=11, chatter_per_min=0, history_on_login=2, heartbeat_interval_s=1,
                    duplicate_rate=0.2, retry_base_s=0.2, retry_max_s=1.0)
    sim.start()
    try:
        registration = services.register_instance(
            name="e2e", api_url=sim.url, token="e2e-token", max_accounts=3,
            heartbeat_interval=1, created_by=admin)
        assert registration.pushed, registration.push_error
        instance = registration.instance

        # heartbeats arrive through the signed webhook and bring the instance online
        def online():
            """instance online with a heartbeat"""
            instance.refresh_from_db()
            return instance.status == InstanceStatus.ONLINE and instance.last_heartbeat
        wait_for(online)
        assert instance.version == sim.client_version
        wait_for(lambda: shards.model_for(InstanceMonitor).objects.filter(
            instance_id=instance.pk, metric_name="cpu").exists())
        # the simulator's pre-existing online account is reported by heartbeats, and the
        # platform syncs its address book by itself (first time online)
        wait_for(lambda: WeworkAccount.objects.filter(instance=instance).count() == 1)
        first = WeworkAccount.objects.get(instance=instance)
        wait_for(lambda: shards.for_instance(Contact, instance.pk).filter(
            account=first).count() == len(sim.accounts[first.wxid].contacts))

        # QR login: the phone "scans" the QR code's URL and confirms
        state = contact_services.start_login(instance, user=admin)
        assert httpx.get(state["qrcode"]).status_code == 200
        login_id = state["login_id"]
        assert httpx.get(f"{sim.url}/sim/confirm/{login_id}").status_code == 200
        state = wait_for(lambda: (lambda s: s if s["status"] == "confirmed" else None)(
            contact_services.poll_login(instance, login_id)))
        account = WeworkAccount.objects.get(pk=state["account_pk"])
        assert account.is_logged_in and account.status == AccountStatus.ONLINE
        instance.refresh_from_db()
        assert instance.current_accounts == 2

        # full sync of contacts, groups and members into the instance's shards, started by
        # the platform after the QR login: no manual action (F9)
        sim_acc = sim.accounts[account.wxid]
        contacts = shards.for_instance(Contact, instance.pk).filter(account=account)

        def synced():
            """the QR-logged account's sync done"""
            run = contact_services.sync_run(account)
            return run and run["status"] == "done"
        wait_for(synced)
        assert contact_services.sync_run(account)["trigger"] == "qr_login"
        groups = shards.for_instance(Group, instance.pk).filter(account=account)
        members = shards.for_instance(GroupMember, instance.pk).filter(
            group_id__in=list(groups.values_list("id", flat=True)))
        assert contacts.count() == len(sim_acc.contacts)
        assert groups.count() == len(sim_acc.rooms)
        assert members.count() == sum(len(m) for m in sim_acc.members.values())
        account.refresh_from_db()
        assert account.contact_count == len(sim_acc.contacts)
        assert account.group_count == len(sim_acc.rooms)

        # inbound messages (and the history replayed at login, marked as such)
        before = instance.total_messages
        assert httpx.post(f"{sim.url}/sim/chatter",
                          json={"count": 4, "account_id": account.wxid}).status_code == 200
        wait_for(lambda: InstanceEvent.objects.filter(
            instance=instance, event_type="message.received", state=EventState.DONE,
            payload__data__is_history=False).count() >= 4)
        instance.refresh_from_db()
        # counted by the messaging app, which also drops copies under a new id (fallback key)
        assert 1 <= instance.total_messages - before <= 4
        # each event once, however often the simulator re-delivered it
        # (one query: heartbeats keep arriving while the test reads)
        seqs = list(InstanceEvent.objects.filter(instance=instance).values_list("seq", flat=True))
        assert len(seqs) == len(set(seqs))
        assert not InstanceEvent.objects.filter(instance=instance,
                                                state=EventState.FAILED).exists()
    finally:
        sim.stop()

    # the simulator is gone: after three missed heartbeats the instance goes offline
    time.sleep(3.2)
    assert services.mark_silent_instances_offline(timezone.now()) == [instance.pk]
    instance.refresh_from_db()
    assert instance.status == InstanceStatus.OFFLINE
    account.refresh_from_db()
    assert account.status == AccountStatus.OFFLINE
    from monitoring.models import AlertRecord

    assert AlertRecord.objects.filter(rule_name="instance.offline",
                                      source_id=str(instance.pk)).exists()
