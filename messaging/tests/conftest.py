"""Fixtures of messaging's tests: no pacing by default, an instance simulator, a "world" (an
instance, an online account, its contacts, groups and group members in their per-instance
shards), logged-in browsers and operators, a fake clock, and a record of account stops.

Fixtures other apps' tests could use too (the simulator, a verified admin client, personas)
belong in the project's shared test plugin once it exists; they are here until then."""
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone, translation

from accounts.services.permissions import grant_instance
from wework.testing.fixtures import login_verified
from contacts.models import AccountStatus, Contact, Group, GroupMember, WeworkAccount
from instances import services as instance_services
from simulator.server import Simulator
from messaging import inbound
from messaging.clock import FakeClock
from messaging.models import MessageTask, ReceiverSendStatus, TaskStatus
from messaging.services import sending
from messaging.services.requests import TaskRequest
from messaging.signals import account_stopped
from wework import shards

TOKEN = "sim-token"

FAST = {
    "MIN_INTERVAL_S": 0, "JITTER_S": 0, "PER_MINUTE": 0, "DAILY": 0, "CONVERSATION_INTERVAL_S": 0,
    "CHECK_MEDIA_URLS": False,
    "ACK_POLL_AFTER_S": 0.0, "ACK_WAIT_S": 10, "RETRY_BASE_S": 0, "FLUSH_INTERVAL_S": 0.2,
}


@pytest.fixture
def fast(settings):
    settings.MESSAGING = dict(FAST)
    return settings.MESSAGING


@pytest.fixture
def sim():
    s = Simulator(port=0, token=TOKEN, accounts=1, contacts=60, rooms=3, members=5, seed=3,
                  duplicate_rate=0.0, chatter_per_min=0, history_on_login=0, heartbeat_interval_s=3600,
                  send_delay_ms=0, webhook_timeout_s=1.0, max_delivery_attempts=1)
    s.start()
    yield s
    s.stop()


class World:
    pass


def build_world(sim, *, contacts=None, user=None):
    """Instance registered for `sim`, its first account online, contacts and rooms in shards."""
    w = World()
    w.admin = user or get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    w.instance = instance_services.register_instance(
        name="sim", api_url=sim.url, token=TOKEN, webhook_secret="s3cret", created_by=w.admin, push=False
    ).instance
    sim_account = next(iter(sim.accounts.values()))
    w.sim_account = sim_account
    w.account = WeworkAccount.objects.create(
        instance=w.instance, wxid=sim_account.account_id, nickname=sim_account.nickname,
        status=AccountStatus.ONLINE, is_logged_in=True, last_login_time=timezone.now(),
    )
    sim_contacts = sim_account.contacts if contacts is None else sim_account.contacts[:contacts]
    rows = [
        {"account_id": w.account.pk, "wxid": c["contact_id"], "nickname": c["name"], "remark": c["remark"],
         "contact_type": 1, "tags": ["vip"] if i % 2 == 0 else ["lead"]}
        for i, c in enumerate(sim_contacts)
    ]
    shards.bulk_create(Contact, rows, instance_id=w.instance.pk)
    w.contacts = [c["contact_id"] for c in sim_contacts]
    groups = [{"account_id": w.account.pk, "group_wxid": r["room_id"], "group_name": r.get("topic") or r["room_id"],
               "tags": ["team"]} for r in sim_account.rooms]
    shards.bulk_create(Group, groups, instance_id=w.instance.pk)
    w.rooms = [r["room_id"] for r in sim_account.rooms]
    w.members = {r["room_id"]: [m["member_id"] for m in sim_account.members[r["room_id"]]] for r in sim_account.rooms}
    # the rooms' members, as the contacts sync records them (@mentions are checked against them)
    group_ids = dict(shards.for_instance(Group, w.instance.pk).values_list("group_wxid", "pk"))
    shards.bulk_create(GroupMember, [{"group_id": group_ids[room], "member_wxid": member}
                                     for room, members in w.members.items() for member in members],
                       instance_id=w.instance.pk)
    return w


@pytest.fixture
def world(transactional_db, sim, fast):
    return build_world(sim)


def make_task(world, *, user=None, start=True, **fields):
    """A task created by the service for `world`'s account (as its admin unless `user`)."""
    fields.setdefault("account", world.account)
    return sending.create_task(user or world.admin, TaskRequest(**fields), start=start)


def assert_each_sent_once(world, sim, task, n):
    """The task completed with its `n` receivers sent, each message reached the instance once
    (one attempt per uuid), and the account counted them."""
    task.refresh_from_db()
    assert (task.status, task.success_count, task.fail_count) == (TaskStatus.COMPLETED, n, 0)
    assert set(task.receivers.values_list("send_status", flat=True)) == {ReceiverSendStatus.SUCCESS}
    assert len(sim.messages) == n and set(sim.receipts.values()) == {1}
    world.account.refresh_from_db()
    assert world.account.total_messages == n


def running_task(world, n, content="Hi {{ receiver_name }}", **fields):
    """A text task to the world's first `n` contacts, RUNNING without a dispatcher started (the
    test runs one itself)."""
    task = make_task(world, message_type="text", content=content,
                     receivers=[{"wxid": w} for w in world.contacts[:n]], start=False, **fields)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    return task


@pytest.fixture
def browser(world, client):
    """The world's superuser, logged in with a second factor."""
    login_verified(client, world.admin)
    return client


@pytest.fixture
def make_operator(world, django_user_model):
    """`make_operator(*perms, username=...)`: a user holding `perms` on the world's instance only
    (an object grant, no role)."""

    def make(*perms, username="operator"):
        user = django_user_model.objects.create_user(username, f"{username}@example.com", "pw-operator-123")
        grant_instance(user, world.instance, list(perms), granted_by=world.admin)
        return user

    return make


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user("outsider", "o@example.com", "pw-outsider-123")


@pytest.fixture
def clock():
    """A fake clock at the current time, for dispatchers and pacing (no real waits)."""
    return FakeClock()


@pytest.fixture
def stops_announced():
    """The `account_stopped` signals sent during the test (what monitoring turns into alerts)."""
    calls = []

    def receiver(sender, **kwargs):
        calls.append(kwargs)

    account_stopped.connect(receiver, weak=False, dispatch_uid="messaging-tests-stops")
    yield calls
    account_stopped.disconnect(dispatch_uid="messaging-tests-stops")


@pytest.fixture(autouse=True)
def _english(settings):
    """Assertions read English messages (the default language is Chinese)."""
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


_inbound_clock = {"ms": 0}


def inbound_from(world, sim, wxid, n=1, *, account=None, is_self=False, is_history=False, room=False,
                 text="message", start=None):
    """`n` inbound messages in the conversation with `wxid` (simulator events redirected to it),
    handled as the webhook intake does; their stored ids, in order. Times are `start` plus a
    minute each (history), or strictly increasing around now: the simulator's own jitter."""
    account = account or world.account
    ids = []
    for i, e in enumerate(sim.chatter(n, account_id=world.sim_account.account_id, conversation_type="single")):
        e["account_id"] = account.wxid
        e["data"].update(conversation_id=wxid, sender={"id": wxid, "name": "Peer"}, is_self=is_self,
                         is_history=is_history, type="text", content={"text": f"{text} {e['event_id']}"},
                         conversation_type="room" if room else "single")
        if start is not None:
            e["data"]["sent_at_ms"] = int((start + timedelta(minutes=i)).timestamp() * 1000)
            e["data"]["is_history"] = True
        else:
            _inbound_clock["ms"] = max(_inbound_clock["ms"] + 5, int(time.time() * 1000) - 60_000)
            e["data"]["sent_at_ms"] = _inbound_clock["ms"]
        result = inbound.handle_instance_event(world.instance, e)
        assert result["stored"], result
        ids.append(result["id"])
    return ids
