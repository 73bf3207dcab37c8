"""Fixtures of scrm's tests: an instance simulator and a "world" (the simulator's instance
registered, its first account online, its contacts and rooms in the instance's shards), and
`deliver(event)` that takes a simulator event through the platform's intake as a webhook would."""
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from contacts.models import AccountStatus, Contact, Group, GroupMember, WeworkAccount
from importlib import import_module

from instances import services as instance_services
from scrm.models import OptOutKeyword
from scrm.tests.factories import TagFactory
from simulator.server import Simulator
from wework import shards

DEFAULT_OPT_OUT_KEYWORDS = import_module("scrm.migrations.0001_private_domain_operations").DEFAULT_OPT_OUT_KEYWORDS
TOKEN = "sim-token"
FAST = {"MIN_INTERVAL_S": 0, "JITTER_S": 0, "PER_MINUTE": 0, "DAILY": 0, "CONVERSATION_INTERVAL_S": 0,
        "CHECK_MEDIA_URLS": False, "ACK_POLL_AFTER_S": 0.0, "ACK_WAIT_S": 10, "RETRY_BASE_S": 0,
        "FLUSH_INTERVAL_S": 0.2}


@pytest.fixture
def sim(settings):
    settings.MESSAGING = dict(FAST)
    s = Simulator(port=0, token=TOKEN, accounts=1, contacts=8, rooms=1, members=3, seed=5,
                  duplicate_rate=0.0, chatter_per_min=0, history_on_login=0, heartbeat_interval_s=3600,
                  send_delay_ms=0, webhook_timeout_s=1.0, max_delivery_attempts=1)
    s.start()
    yield s
    s.stop()


class World:
    def deliver(self, event):
        """Store and process a simulator event, as the webhook intake does."""
        row, _duplicate = instance_services.store_event(self.instance.pk, event)
        instance_services.process_event(row.pk)
        return row

    def column_tags(self, wxid):
        """The design's `tags` column of a contact of the account."""
        return shards.for_instance(Contact, self.instance.pk).get(account_id=self.account.pk, wxid=wxid).tags


@pytest.fixture
def world(transactional_db, sim):
    w = World()
    # a transactional test's flush empties the table the migration filled
    for word in DEFAULT_OPT_OUT_KEYWORDS:
        OptOutKeyword.objects.get_or_create(keyword=word)
    w.admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    w.instance = instance_services.register_instance(
        name="sim", api_url=sim.url, token=TOKEN, webhook_secret="s3cret", created_by=w.admin, push=False
    ).instance
    w.sim = sim
    w.sim_account = next(iter(sim.accounts.values()))
    w.account = WeworkAccount.objects.create(
        instance=w.instance, wxid=w.sim_account.account_id, nickname=w.sim_account.nickname,
        status=AccountStatus.ONLINE, is_logged_in=True, last_login_time=timezone.now())
    shards.bulk_create(Contact, [
        {"account_id": w.account.pk, "wxid": c["contact_id"], "nickname": c["name"], "contact_type": 1,
         "tags": ["synced"] if i == 0 else [], "add_time": timezone.now()}
        for i, c in enumerate(w.sim_account.contacts)], instance_id=w.instance.pk)
    w.contacts = [c["contact_id"] for c in w.sim_account.contacts]
    shards.bulk_create(Group, [{"account_id": w.account.pk, "group_wxid": r["room_id"], "group_name": r["topic"]}
                               for r in w.sim_account.rooms], instance_id=w.instance.pk)
    w.rooms = [r["room_id"] for r in w.sim_account.rooms]
    group_ids = dict(shards.for_instance(Group, w.instance.pk).values_list("group_wxid", "pk"))
    shards.bulk_create(GroupMember, [{"group_id": group_ids[r["room_id"]], "member_wxid": m["member_id"]}
                                     for r in w.sim_account.rooms for m in w.sim_account.members[r["room_id"]]],
                       instance_id=w.instance.pk)
    return w


@pytest.fixture
def vip(world):
    return TagFactory(name="vip")


@pytest.fixture
def lead(world):
    return TagFactory(name="lead")
