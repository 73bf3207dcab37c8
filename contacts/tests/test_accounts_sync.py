"""QR login, account states, max_accounts, logout, and sync of contacts, groups and members
against the instance simulator."""
from unittest import mock

import httpx
import pytest

from contacts import services
from contacts.models import AccountStatus, Contact, Group, GroupMember, WeworkAccount
from contacts.services import rows as rows_module
from contacts.services.rows import (
    CONTACT_COMPARED_FIELDS,
    GROUP_COMPARED_FIELDS,
    MEMBER_COMPARED_FIELDS,
)
from instances.exceptions import InstanceInternalError
from instances.models import EventState, InstanceEvent, InstanceStatus
from instances.services import ServiceError
from wework.testing.instances import heartbeat_data, make_event
from wework import shards

pytestmark = pytest.mark.django_db(transaction=True)


def scan_and_confirm(simulator, qrcode):
    """What the phone does: open the QR code's URL, then confirm."""
    login_id = qrcode.rsplit("/", 1)[1]
    assert httpx.get(qrcode).status_code == 200
    assert httpx.get(f"{simulator.url}/sim/confirm/{login_id}").status_code == 200
    return login_id


def login_account(instance, simulator):
    state = services.start_login(instance)
    assert state["status"] == "waiting"
    scan_and_confirm(simulator, state["qrcode"])
    state = services.poll_login(instance, state["login_id"])
    assert state["status"] == "confirmed"
    return WeworkAccount.objects.get(pk=state["account_pk"])


def test_qr_login_records_the_account(registered, simulator):
    account = login_account(registered, simulator)
    assert account.is_logged_in and account.status == AccountStatus.ONLINE
    assert account.login_method == "qrcode"
    assert account.nickname  # profile fetched from the instance
    registered.refresh_from_db()
    assert registered.current_accounts == 1


def test_login_status_progresses_and_expires(registered, simulator):
    state = services.start_login(registered)
    httpx.get(state["qrcode"])
    assert services.poll_login(registered, state["login_id"])["status"] == "scanned"
    services.cancel_login(registered, state["login_id"])
    assert services.poll_login(registered, state["login_id"])["status"] == "cancelled"
    with pytest.raises(ServiceError) as info:
        services.poll_login(registered, "lg_unknown")
    assert info.value.status == 404


def test_max_accounts_refuses_new_logins(registered, simulator):
    registered.max_accounts = 1
    registered.save()
    login_account(registered, simulator)
    with pytest.raises(ServiceError) as info:
        services.start_login(registered)
    assert info.value.code == "max_accounts"


def test_instance_reporting_more_accounts_than_max_is_recorded(registered, simulator):
    registered.max_accounts = 1
    registered.save()
    # accounts the instance really has (each is synced when first seen online)
    wx_a, wx_b = list(simulator.accounts)[:2]
    services.apply_account_states(registered, [
        {"account_id": wx_a, "status": "online"}, {"account_id": wx_b, "status": "online"},
    ])
    registered.refresh_from_db()
    assert WeworkAccount.objects.filter(instance=registered).count() == 2  # nothing lost
    assert registered.current_accounts == 2
    assert "2" in registered.error_message and "1" in registered.error_message
    from monitoring.models import AlertRecord, AlertStatus

    alert = AlertRecord.objects.get(rule_name="instance.max_accounts")
    assert alert.status == AlertStatus.ACTIVE
    # one account is no longer logged in: the instance is within its maximum and the alert closes
    services.apply_account_states(registered, [{"account_id": wx_a, "status": "online"}])
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_account_states_from_events(registered):
    from instances import services as instance_services

    services.ensure_account(registered, "wx_1")
    seq = iter(range(1, 100))

    def apply(type_, data):
        event = make_event(registered, type_, data, seq=next(seq), account_id=data.get(
            "account_id"))
        row, _dup = instance_services.store_event(registered.pk, event)
        instance_services.process_event(row.pk)
        return InstanceEvent.objects.get(pk=row.pk)

    apply("account.abnormal", {"account_id": "wx_1", "reason": "risk_control", "detail": "x"})
    assert WeworkAccount.objects.get(wxid="wx_1").status == AccountStatus.ABNORMAL
    apply("account.banned", {"account_id": "wx_1", "reason": "ban", "detail": "y"})
    account = WeworkAccount.objects.get(wxid="wx_1")
    assert account.status == AccountStatus.BANNED and not account.is_logged_in
    apply("account.online", {"account_id": "wx_1"})
    assert WeworkAccount.objects.get(wxid="wx_1").status == AccountStatus.ONLINE
    apply("account.offline", {"account_id": "wx_1", "reason": "logout"})
    account = WeworkAccount.objects.get(wxid="wx_1")
    assert account.status == AccountStatus.OFFLINE and not account.is_logged_in
    registered.refresh_from_db()
    assert registered.current_accounts == 0
    failed = apply("account.offline", {"account_id": "wx_nobody", "reason": "network"})
    assert failed.state == EventState.FAILED

    apply("instance.heartbeat", heartbeat_data(accounts=[
        {"account_id": "wx_1", "status": "online"}]))
    registered.refresh_from_db()
    assert registered.status == InstanceStatus.ONLINE
    assert registered.current_accounts == 1


def test_logout(registered, simulator):
    account = login_account(registered, simulator)
    services.logout(account)
    account.refresh_from_db()
    assert not account.is_logged_in and account.status == AccountStatus.OFFLINE
    registered.refresh_from_db()
    assert registered.current_accounts == 0
    assert simulator.accounts[account.wxid].status == "offline"


def _counts(instance, account):
    contacts = shards.for_instance(Contact, instance.pk).filter(account=account)
    groups = shards.for_instance(Group, instance.pk).filter(account=account)
    members = shards.for_instance(GroupMember, instance.pk).filter(
        group_id__in=groups.values_list("id", flat=True), left_at__isnull=True)
    return contacts.count(), groups.count(), members.count()


def test_full_sync_then_removed_rows_are_soft_deleted(registered, simulator):
    account = login_account(registered, simulator)
    result = services.sync_account(account, page_limit=7)
    sim_acc = simulator.accounts[account.wxid]
    expected_members = sum(len(m) for m in sim_acc.members.values())
    assert _counts(registered, account) == (
        len(sim_acc.contacts), len(sim_acc.rooms), expected_members)
    account.refresh_from_db()
    assert account.contact_count == len(sim_acc.contacts) == result["contacts"]
    assert account.group_count == len(sim_acc.rooms)
    assert account.last_sync_time is not None
    group = shards.for_instance(Group, registered.pk).filter(account=account).first()
    assert group.member_count == len(sim_acc.members[group.group_wxid])

    # the instance loses a contact and a member: the next sync soft-deletes / marks them
    gone_contact = sim_acc.contacts.pop(0)
    gone_member = sim_acc.members[group.group_wxid].pop(0)
    services.sync_account(account, page_limit=7)
    contact_id = gone_contact["contact_id"]
    row = shards.for_instance(Contact, registered.pk)._default_manager if False else None
    model = shards.model_for(Contact, instance_id=registered.pk)
    deleted = model.all_objects.get(account=account, wxid=contact_id)
    assert deleted.deleted_at is not None
    member_model = shards.model_for(GroupMember, instance_id=registered.pk)
    left = member_model.objects.get(group_id=group.pk, member_wxid=gone_member["member_id"])
    assert left.left_at is not None and not left.is_active
    account.refresh_from_db()
    assert account.contact_count == len(sim_acc.contacts)
    assert row is None


def test_sync_page_failing_half_way_writes_nothing_half_and_resumes(registered, simulator):
    account = login_account(registered, simulator)
    services.sync_account(account, page_limit=10)  # baseline
    sim_acc = simulator.accounts[account.wxid]
    sim_acc.contacts.pop()  # would be soft-deleted by a complete sync

    from instances.client import InstanceClient

    real = InstanceClient.list_contacts
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise InstanceInternalError("boom on page 2")
        return real(self, *args, **kwargs)

    with mock.patch.object(InstanceClient, "list_contacts", flaky):
        with pytest.raises(ServiceError) as info:
            services.sync_account(account, page_limit=10)
    assert info.value.status == 502 and "boom" in info.value.message
    state = services.get_sync_state(account)
    assert state["phase"] == "contacts" and state["cursor"]
    model = shards.model_for(Contact, instance_id=registered.pk)
    # nothing deleted by the failed sync
    assert model.objects.filter(account=account).count() == len(sim_acc.contacts) + 1
    registered.refresh_from_db()
    assert "boom" in registered.error_message

    services.sync_account(account, page_limit=10)  # resumes from page 2
    assert services.get_sync_state(account) is None
    assert model.objects.filter(account=account).count() == len(sim_acc.contacts)
    account.refresh_from_db()
    assert account.contact_count == len(sim_acc.contacts)


def test_sync_requires_a_logged_in_account(registered):
    account = services.ensure_account(registered, "wx_off", logged_in=False,
                                      status=AccountStatus.OFFLINE)
    with pytest.raises(ServiceError) as info:
        services.sync_account(account)
    assert info.value.code == "not_logged_in"


def test_incremental_events_update_shards(registered, simulator):
    from instances import services as instance_services

    account = login_account(registered, simulator)
    account.refresh_from_db()
    groups_before = account.group_count  # synced automatically after the login
    seq = iter(range(1000, 2000))

    def apply(type_, data):
        event = make_event(registered, type_, data, seq=next(seq), account_id=account.wxid)
        row, _dup = instance_services.store_event(registered.pk, event)
        instance_services.process_event(row.pk)
        row.refresh_from_db()
        assert row.state == EventState.DONE, row.error

    apply("contact.added", {"contact": {"contact_id": "c_new", "name": "New", "kind": "friend"}})
    model = shards.model_for(Contact, instance_id=registered.pk)
    assert model.objects.get(wxid="c_new").nickname == "New"
    apply("contact.updated", {"contact": {"contact_id": "c_new", "name": "Renamed",
                                          "kind": "friend"}})
    assert model.objects.get(wxid="c_new").nickname == "Renamed"
    apply("contact.removed", {"contact": {"contact_id": "c_new"}})
    assert not model.objects.filter(wxid="c_new").exists()
    assert model.all_objects.get(wxid="c_new").deleted_at is not None

    apply("room.member_joined", {"room_id": "r_1", "members": [
        {"member_id": "m_1", "name": "M1", "role": "member"},
        {"member_id": "m_2", "name": "M2", "role": "admin"}]})
    group_model = shards.model_for(Group, instance_id=registered.pk)
    group = group_model.objects.get(group_wxid="r_1")
    assert group.member_count == 2
    apply("room.member_left", {"room_id": "r_1", "member_ids": ["m_1"]})
    group.refresh_from_db()
    assert group.member_count == 1
    apply("room.updated", {"room_id": "r_1", "topic": "Topic"})
    group.refresh_from_db()
    assert group.group_name == "Topic"
    account.refresh_from_db()
    assert account.group_count == groups_before + 1


def test_login_with_verification_code_and_admin_endpoints(registered, simulator, client,
                                                          admin_user):
    from django.urls import reverse

    from wework.testing.fixtures import login_verified

    login_verified(client, admin_user)
    state = services.start_login(registered)
    login_id = state["login_id"]
    httpx.get(state["qrcode"])
    code = httpx.get(f"{simulator.url}/sim/confirm/{login_id}?need_verify=1").json()
    code = code.get("verify_code") or code.get("data", {}).get("verify_code")
    assert services.poll_login(registered, login_id)["status"] == "need_verify"
    url = reverse("admin:instances_weworkinstance_qr_login_verify", args=[registered.pk, login_id])
    wrong = client.post(url, {"code": "000000" if code != "000000" else "111111"})
    assert wrong.status_code == 400 and wrong.json()["error"]
    right = client.post(url, {"code": code})
    assert right.status_code == 200 and right.json()["status"] == "confirmed"
    assert WeworkAccount.objects.filter(instance=registered, is_logged_in=True).count() == 1

    other = services.start_login(registered)
    cancel = reverse("admin:instances_weworkinstance_qr_login_cancel",
                     args=[registered.pk, other["login_id"]])
    assert client.get(cancel).status_code == 405
    assert client.post(cancel).json()["status"] == "cancelled"


def test_account_abnormal_alert_resolves_when_the_account_is_online_again(registered):
    """Q2-10: the alert stayed active after the account was online again."""
    from instances import services as instance_services
    from monitoring.models import AlertRecord, AlertStatus

    services.ensure_account(registered, "wx_1")
    services.ensure_account(registered, "wx_2")
    seq = iter(range(1, 100))

    def apply(type_, data):
        event = make_event(registered, type_, data, seq=next(seq), account_id=data.get("account_id"))
        row, _dup = instance_services.store_event(registered.pk, event)
        instance_services.process_event(row.pk)

    def alert_status():
        return AlertRecord.objects.get(rule_name="instance.account_abnormal").status

    # online again through the account.online event
    apply("account.abnormal", {"account_id": "wx_1", "reason": "risk_control", "detail": "x"})
    assert alert_status() == AlertStatus.ACTIVE
    apply("account.online", {"account_id": "wx_1"})
    assert alert_status() == AlertStatus.RESOLVED
    # online again through a heartbeat; while another account is still abnormal, the instance's
    # alert stays active
    apply("account.abnormal", {"account_id": "wx_1", "reason": "risk_control", "detail": "x"})
    apply("account.abnormal", {"account_id": "wx_2", "reason": "risk_control", "detail": "y"})
    open_alert = AlertRecord.objects.get(rule_name="instance.account_abnormal", status=AlertStatus.ACTIVE)
    apply("instance.heartbeat", heartbeat_data(accounts=[
        {"account_id": "wx_1", "status": "online"}, {"account_id": "wx_2", "status": "abnormal"}]))
    open_alert.refresh_from_db()
    assert open_alert.status == AlertStatus.ACTIVE
    apply("instance.heartbeat", heartbeat_data(accounts=[
        {"account_id": "wx_1", "status": "online"}, {"account_id": "wx_2", "status": "online"}]))
    open_alert.refresh_from_db()
    assert open_alert.status == AlertStatus.RESOLVED


def test_account_update_from_a_report_keeps_counters_written_meanwhile(registered):
    """A heartbeat's ensure_account() and a sync's recount run at the same time: the report
    writes only the columns it owns, so the recount written after its read is kept."""
    account = services.ensure_account(registered, "wx_1")

    class RecountMeanwhile(dict):
        """A profile whose first read lets 'another transaction' recount the account."""

        def get(self, key, default=None):
            if key == "nickname":
                WeworkAccount.all_objects.filter(pk=account.pk).update(contact_count=7, group_count=2)
            return super().get(key, default)

    services.ensure_account(registered, "wx_1", profile=RecountMeanwhile(nickname="新名字"))
    account.refresh_from_db()
    assert (account.nickname, account.contact_count, account.group_count) == ("新名字", 7, 2)


def test_resync_updates_rows_keeps_platform_columns_and_revives_returning_contacts(registered,
                                                                                   simulator):
    """The multi-row upsert (values written into the statement, the rest escaped by the driver):
    changed names are updated, awkward text round-trips, tags and ids set on the platform are
    kept, a contact deleted by one sync and back in the next is live again; pages are fetched
    ahead while the previous one is written."""
    account = login_account(registered, simulator)
    sim_acc = simulator.accounts[account.wxid]
    services.sync_account(account, page_limit=3)
    model = shards.model_for(Contact, instance_id=registered.pk)
    first, second = sim_acc.contacts[0], sim_acc.contacts[1]
    row = model.objects.get(account=account, wxid=first["contact_id"])
    model.objects.filter(pk=row.pk).update(tags=["vip", "北京"])

    awkward = "O'Brien \\ 100% \"quoted\" 张三 ; DROP TABLE x"
    first["name"] = awkward
    first["remark"] = "2026-12-04 10:00:00"  # looks like a timestamp: still text
    gone = sim_acc.contacts.pop(1)
    services.sync_account(account, page_limit=3)
    assert model.all_objects.get(account=account, wxid=second["contact_id"]).deleted_at is not None

    sim_acc.contacts.append(gone)
    services.sync_account(account, page_limit=3)
    updated = model.objects.get(pk=row.pk)
    assert updated.nickname == awkward
    assert updated.remark == "2026-12-04 10:00:00"
    assert updated.tags == ["vip", "北京"]
    assert updated.created_at == row.created_at
    assert updated.last_sync_time > row.last_sync_time
    revived = model.objects.get(account=account, wxid=second["contact_id"])
    assert revived.deleted_at is None
    assert model.objects.filter(account=account).count() == len(sim_acc.contacts)
    assert model.all_objects.filter(account=account).count() == len(sim_acc.contacts)


def test_resync_stamps_unchanged_contacts_and_writes_only_changed_ones(registered, simulator,
                                                                      monkeypatch):
    """A re-sync compares each page with the stored rows: unchanged contacts are only stamped
    (kept by the sweep), changed ones are upserted, one changed by the platform meanwhile is
    written back, a new one is inserted."""
    account = login_account(registered, simulator)
    sim_acc = simulator.accounts[account.wxid]
    services.sync_account(account, page_limit=4)
    model = shards.model_for(Contact, instance_id=registered.pk)
    renamed, added_late, platform_changed = sim_acc.contacts[0], sim_acc.contacts[1], sim_acc.contacts[2]
    model.objects.filter(account=account, wxid=platform_changed["contact_id"]).update(friend_status=2)
    before = {c.wxid: c for c in model.objects.filter(account=account)}
    renamed["name"] = "Renamed 改名"
    added_late["added_at_ms"] = added_late["added_at_ms"] + 86_400_123
    newcomer = dict(sim_acc.contacts[3], contact_id="wx-newcomer-1", name="Newcomer")
    sim_acc.contacts.append(newcomer)
    upserted = []
    real_upsert = rows_module.upsert_contacts

    def spy(instance_id, rows):
        upserted.extend(row["wxid"] for row in rows)
        return real_upsert(instance_id, rows)

    monkeypatch.setattr(rows_module, "upsert_contacts", spy)
    services.sync_account(account, page_limit=4)
    after = {c.wxid: c for c in model.objects.filter(account=account)}
    assert set(after) == set(before) | {"wx-newcomer-1"}
    # written exactly when a synced column differs (the simulator's background changes, if any,
    # count as changes too)
    changed = {wxid for wxid, row in before.items() if any(
        getattr(row, f) != getattr(after[wxid], f) for f in CONTACT_COMPARED_FIELDS)}
    assert {renamed["contact_id"], added_late["contact_id"], platform_changed["contact_id"]} <= changed
    assert sorted(upserted) == sorted(changed | {"wx-newcomer-1"}) and len(changed) < len(before)
    stamp = after["wx-newcomer-1"].last_sync_time
    assert stamp > max(c.last_sync_time for c in before.values())
    assert {(c.last_sync_time, c.updated_at) for c in after.values()} == {(stamp, stamp)}
    assert after[renamed["contact_id"]].nickname == "Renamed 改名"
    assert after[added_late["contact_id"]].add_time > before[added_late["contact_id"]].add_time
    assert after[platform_changed["contact_id"]].friend_status == 1
    assert after["wx-newcomer-1"].nickname == "Newcomer"
    account.refresh_from_db()
    assert account.contact_count == len(sim_acc.contacts)


def test_resync_stamps_unchanged_groups_and_members_and_writes_only_changed_ones(registered,
                                                                                simulator,
                                                                                monkeypatch):
    """Groups and members are re-synced as contacts are: unchanged rows only stamped (kept by
    the sweeps, which go by those stamps), a renamed group, a member with a new alias and a
    newcomer upserted, a member gone from the room marked as left."""
    account = login_account(registered, simulator)
    sim_acc = simulator.accounts[account.wxid]
    services.sync_account(account, page_limit=3)
    groups = shards.model_for(Group, instance_id=registered.pk)
    members = shards.model_for(GroupMember, instance_id=registered.pk)
    room = next(r for r in sim_acc.rooms if len(sim_acc.members[r["room_id"]]) >= 3)
    group_id = groups.objects.get(account=account, group_wxid=room["room_id"]).pk
    before_groups = {g.group_wxid: g for g in groups.objects.filter(account=account)}
    before_members = {(m.group_id, m.member_wxid): m for m in members.objects.all()}
    room["topic"] = "改名后的群 Renamed"
    aliased, leaving = sim_acc.members[room["room_id"]][1], sim_acc.members[room["room_id"]][2]
    aliased["room_alias"] = "新群昵称"
    sim_acc.members[room["room_id"]].remove(leaving)
    sim_acc.members[room["room_id"]].append(dict(leaving, member_id="wx-member-newcomer"))
    upserted = {"groups": [], "members": []}
    real_groups, real_members = rows_module.upsert_groups, rows_module.upsert_members

    def spy_groups(instance_id, rows):
        upserted["groups"].extend(row["group_wxid"] for row in rows)
        return real_groups(instance_id, rows)

    def spy_members(instance_id, rows):
        upserted["members"].extend((row["group_id"], row["member_wxid"]) for row in rows)
        return real_members(instance_id, rows)

    monkeypatch.setattr(rows_module, "upsert_groups", spy_groups)
    monkeypatch.setattr(rows_module, "upsert_members", spy_members)
    services.sync_account(account, page_limit=3)

    after_groups = {g.group_wxid: g for g in groups.objects.filter(account=account)}
    after_members = {(m.group_id, m.member_wxid): m for m in members.objects.all()}
    changed_groups = {wxid for wxid, g in before_groups.items() if any(
        getattr(g, f) != getattr(after_groups[wxid], f) for f in GROUP_COMPARED_FIELDS)}
    assert room["room_id"] in changed_groups
    assert sorted(upserted["groups"]) == sorted(changed_groups)
    assert len(changed_groups) < len(before_groups)
    assert after_groups[room["room_id"]].group_name == "改名后的群 Renamed"
    stamp = after_groups[room["room_id"]].last_sync_time
    assert {(g.last_sync_time, g.updated_at) for g in after_groups.values()} == {(stamp, stamp)}

    live_before = {key for key, m in before_members.items() if m.left_at is None}
    changed_members = {key for key in live_before if key in after_members and any(
        getattr(before_members[key], f) != getattr(after_members[key], f)
        for f in MEMBER_COMPARED_FIELDS if f not in ("is_active", "left_at"))}
    newcomer = (group_id, "wx-member-newcomer")
    assert (group_id, aliased["member_id"]) in changed_members
    assert sorted(upserted["members"]) == sorted(changed_members | {newcomer})
    assert after_members[(group_id, aliased["member_id"])].group_nickname == "新群昵称"
    assert after_members[newcomer].is_active and after_members[newcomer].left_at is None
    gone = after_members[(group_id, leaving["member_id"])]
    assert gone.left_at is not None and not gone.is_active
    assert {m.updated_at for key, m in after_members.items() if key != (group_id, leaving["member_id"])
            and m.left_at is None} == {stamp}
    assert groups.objects.get(pk=group_id).member_count == len(sim_acc.members[room["room_id"]])
