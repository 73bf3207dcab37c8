"""Fixtures for messaging tests: no pacing by default, an instance simulator, and a "world" with
an instance, an online account and its contacts and groups (in their per-instance shards)."""
import pytest
from django.utils import timezone

from instances.simulator.server import Simulator

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
    from django.contrib.auth import get_user_model

    from contacts.models import AccountStatus, Contact, Group, GroupMember, WeworkAccount
    from instances import services as instance_services
    from wework import shards

    w = World()
    User = get_user_model()
    w.admin = user or User.objects.create_superuser("root", "root@example.com", "pw-root-123")
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


@pytest.fixture(autouse=True)
def _english(settings):
    """Assertions read English messages (the default language is Chinese)."""
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield
