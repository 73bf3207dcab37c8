"""The bridge killed with SIGKILL in the middle of a broadcast and started again: every receiver
ends exactly once, and the provider received each message at most once (a send whose call was
under way at the kill has an unknown outcome: it is reported failed with `outcome_unknown`,
never sent again)."""
import threading
import time

import httpx
import pytest

from bridge.testing import BridgeProcess
from contacts.models import AccountStatus, WeworkAccount
from instances import services
from instances.models import InstanceStatus
from messaging.models import MessageReceiver, ReceiverSendStatus as RS, TaskStatus
from messaging.services import lifecycle, sending
from messaging.services.requests import TaskRequest
from wework import shards

from .test_e2e import FAST, drop_shards_before_flush, needs_file_database, wait_for  # noqa: F401 - a fixture

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

N = 40
TOKEN = "bridge-crash-token"


def test_sigkill_mid_broadcast(live_server, drop_shards_before_flush, settings, puppet_mock, ports,  # noqa: F811
                               tmp_path, django_user_model):
    needs_file_database()
    from contacts.models import Contact

    settings.PLATFORM_BASE_URL = live_server.url
    # retries spaced out so that the platform's retries of the sends the kill interrupted span
    # the bridge's restart
    settings.MESSAGING = {**FAST, "RETRY_BASE_S": 1.0, "RETRY_MAX_S": 4.0}
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-1234567")
    world = puppet_mock.ctl("/setup", contacts=N, rooms=1, members=2)
    puppet_mock.ctl("/faults", send_delay_ms=40)  # a broadcast lasting a few seconds
    puppet_mock.ctl("/scan")
    puppet_mock.ctl("/login")
    bridge = BridgeProcess(ports[1], TOKEN, tmp_path / "bridge.sqlite3", [("insecure_bridge_test", ports[0])],
                           ding_interval=1, heartbeat_interval=1)
    bridge.start()
    try:
        instance = services.register_instance(name="bridge", api_url=bridge.url, token=TOKEN, max_accounts=1,
                                              heartbeat_interval=1, created_by=admin).instance
        account = wait_for(lambda: WeworkAccount.objects.filter(instance=instance, wxid=world["self_id"]).first())
        WeworkAccount.objects.filter(pk=account.pk).update(status=AccountStatus.ONLINE, is_logged_in=True)
        account.refresh_from_db()
        # the account's first sync may store some of them at the same time
        shards.bulk_create(Contact, [{"account_id": account.pk, "wxid": c, "nickname": c, "contact_type": 1}
                                     for c in world["contact_ids"]], instance_id=instance.pk,
                           ignore_conflicts=True)
        wait_for(lambda: (instance.refresh_from_db(), instance.status == InstanceStatus.ONLINE)[1])

        killed = threading.Event()

        def killer():
            control = puppet_mock.control.base_url
            while not killed.is_set():
                received = httpx.post(f"{control}/received", json={}).json()["received"]
                if len(received) >= N // 3:
                    bridge.kill()
                    killed.set()
                    time.sleep(0.3)
                    bridge.start()
                    return
                time.sleep(0.02)
        watcher = threading.Thread(target=killer, daemon=True)
        watcher.start()
        task = sending.create_task(admin, TaskRequest(account=account, message_type="text", content="Hi {{ receiver_name }}",
                                                      filters={"source": "contacts"}), start=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            task.refresh_from_db()
            if task.status == TaskStatus.COMPLETED:
                break
            lifecycle.kick()  # what beat does: retries that are due, reclaimed claims
            time.sleep(0.5)
        watcher.join(timeout=30)
        assert killed.is_set(), "the broadcast ended before the kill"
        task.refresh_from_db()
        assert task.status == TaskStatus.COMPLETED
    finally:
        bridge.stop()

    receivers = list(MessageReceiver.objects.filter(task=task).values_list("receiver_wxid", "send_status", "error_code"))
    assert len(receivers) == N and len({r[0] for r in receivers}) == N
    received = [r["conversation_id"] for r in puppet_mock.ctl("/received")["received"]]
    # the provider got each message at most once
    assert len(received) == len(set(received)), sorted(c for c in received if received.count(c) > 1)
    succeeded = {r[0] for r in receivers if r[1] == RS.SUCCESS}
    failed = [r for r in receivers if r[1] == RS.FAILED]
    assert succeeded <= set(received)
    # only the send under way at the kill can have an unknown outcome (one sender per account)
    assert len(failed) <= 1 and all(r[2] == "outcome_unknown" for r in failed), failed
    assert len(succeeded) + len(failed) == N
