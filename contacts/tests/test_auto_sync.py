"""F9: the platform syncs an account's contacts, groups and members by itself after a QR login
and when an account is first seen online; one sync at a time per account; audited; shown on the
account page; `last_sync_time` means the platform's own sync, not the instance's."""
import pytest
from django.core.cache import cache
from django.urls import reverse

from wework.testing.fixtures import login_verified
from contacts import services
from contacts.models import AccountStatus, Contact, Group, GroupMember, WeworkAccount
from instances import services as instance_services
from instances.models import EventState
from wework.testing.instances import make_event
from monitoring.models import AuditLog
from wework import shards

from .test_accounts_sync import login_account, scan_and_confirm

pytestmark = pytest.mark.django_db(transaction=True)


def _apply(instance, event):
    row, duplicate = instance_services.store_event(instance.pk, event)
    if duplicate:  # already replayed (a gap in seq makes the platform fetch the rest)
        return None
    instance_services.process_event(row.pk)
    row.refresh_from_db()
    assert row.state == EventState.DONE, row.error
    return row


def _sim_events(simulator, type_):
    return [e for e in simulator.events if e["type"] == type_]


def _assert_address_book(instance, account, sim_account):
    contacts = shards.for_instance(Contact, instance.pk).filter(account=account)
    groups = shards.for_instance(Group, instance.pk).filter(account=account)
    members = shards.for_instance(GroupMember, instance.pk).filter(
        group_id__in=list(groups.values_list("id", flat=True)))
    assert contacts.count() == len(sim_account.contacts) > 0
    assert groups.count() == len(sim_account.rooms)
    assert members.count() == sum(len(m) for m in sim_account.members.values())
    account.refresh_from_db()
    assert account.contact_count == len(sim_account.contacts)
    assert account.last_sync_time is not None


def _sync_audits(account):
    return list(AuditLog.objects.filter(operation="account.sync", resource_id=str(account.pk))
                .values_list("new_values", flat=True))


def test_qr_login_syncs_the_address_book_without_any_manual_action(registered, simulator):
    account = login_account(registered, simulator)  # polling sees "confirmed"
    _assert_address_book(registered, account, simulator.accounts[account.wxid])
    run = services.sync_run(account)
    assert run["status"] == "done" and run["trigger"] == services.SyncTrigger.QR_LOGIN
    assert run["counts"]["contacts"] == len(simulator.accounts[account.wxid].contacts)
    assert [v["trigger"] for v in _sync_audits(account)] == ["qr_login"]
    assert not services.sync_in_progress(account)  # the lock is released


def test_login_events_sync_once_and_sync_completed_does_not_stamp(registered, simulator):
    """The events of a QR login (login.status confirmed, account.online, sync.completed), as
    the simulator sent them: one sync; the instance's sync.completed stamps nothing."""
    state = services.start_login(registered)
    scan_and_confirm(simulator, state["qrcode"])
    for type_ in ("login.status", "account.online", "sync.completed"):
        for event in _sim_events(simulator, type_):
            _apply(registered, event)
    account = WeworkAccount.objects.get(pk=services.get_login_state(state["login_id"])
                                        ["account_pk"])
    _assert_address_book(registered, account, simulator.accounts[account.wxid])
    assert len(_sync_audits(account)) == 1
    stamped = account.last_sync_time
    # the instance's own sync finishing again changes nothing on the platform
    again = dict(_sim_events(simulator, "sync.completed")[-1], event_id="evt_again", seq=9000)
    _apply(registered, again)
    account.refresh_from_db()
    assert account.last_sync_time == stamped and len(_sync_audits(account)) == 1


def test_sync_completed_of_an_unsynced_account_leaves_last_sync_time_empty(registered):
    account = services.ensure_account(registered, "wx_off", logged_in=False,
                                      status=AccountStatus.OFFLINE)
    _apply(registered, make_event(registered, "sync.completed",
                                  {"sync_id": "s1", "scope": "all", "counts": {}},
                                  seq=1, account_id="wx_off"))
    account.refresh_from_db()
    assert account.last_sync_time is None and account.contact_count == 0
    assert _sync_audits(account) == []


def test_account_online_for_the_first_time_is_synced_once(registered, simulator):
    wxid = next(iter(simulator.accounts))  # logged in on the instance, unknown to the platform
    profile = simulator.accounts[wxid].as_dict()
    _apply(registered, make_event(registered, "account.online",
                                  {"account_id": wxid, "profile": profile}, seq=1,
                                  account_id=wxid))
    account = WeworkAccount.objects.get(instance=registered, wxid=wxid)
    _assert_address_book(registered, account, simulator.accounts[wxid])
    assert services.sync_run(account)["trigger"] == services.SyncTrigger.FIRST_ONLINE
    # offline and back (not a new login): no second sync
    _apply(registered, make_event(registered, "account.offline",
                                  {"account_id": wxid, "reason": "network"}, seq=2,
                                  account_id=wxid))
    _apply(registered, make_event(registered, "account.online",
                                  {"account_id": wxid, "profile": profile}, seq=3,
                                  account_id=wxid))
    assert len(_sync_audits(account)) == 1


def test_heartbeat_reporting_a_new_online_account_starts_its_sync(registered, simulator):
    wxid = next(iter(simulator.accounts))
    services.apply_account_states(registered, [{"account_id": wxid, "status": "online"}])
    account = WeworkAccount.objects.get(instance=registered, wxid=wxid)
    _assert_address_book(registered, account, simulator.accounts[wxid])
    # logged in before the platform knew the instance: its profile arrives with the first sync
    account.refresh_from_db()
    assert account.nickname and account.nickname == simulator.accounts[wxid].nickname


def test_one_sync_at_a_time_per_account(registered, simulator, client, admin_user):
    account = login_account(registered, simulator)
    assert len(_sync_audits(account)) == 1
    # another sync holds the account's lock (queued or running in a worker)
    cache.set(services._sync_lock_key(account.pk), "someone-else", 60)
    assert services.request_sync(account).queued is False
    assert services.run_sync(account.pk, token="stale")["code"] == "sync_running"
    assert services.run_sync(account.pk)["code"] == "sync_running"
    services.auto_sync(account.pk, services.SyncTrigger.QR_LOGIN)
    login_verified(client, admin_user)
    url = reverse("admin:contacts_weworkaccount_changelist")
    page = client.post(url, {"action": "sync_selected", "_selected_action": [account.pk]},
                       follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert "already queued or running" in page.content.decode()
    api = client.post(f"/api/v1/wework-accounts/{account.pk}/sync/", {}, format="json")
    assert api.status_code == 409 and api.json()["error"]["code"] == "sync_running"
    assert len(_sync_audits(account)) == 1  # none of those ran
    # the lock released: the manual action runs, audited like every sync, lock released again
    cache.delete(services._sync_lock_key(account.pk))
    page = client.post(url, {"action": "sync_selected", "_selected_action": [account.pk]},
                       follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert "Sync started for 1 account" in page.content.decode()
    assert [v["trigger"] for v in _sync_audits(account)] == ["qr_login", "manual"]
    assert not services.sync_in_progress(account)
    assert client.post(f"/api/v1/wework-accounts/{account.pk}/sync/").status_code == 202


def test_account_page_shows_the_sync(registered, simulator, client, admin_user):
    account = login_account(registered, simulator)
    login_verified(client, admin_user)
    page = client.get(reverse("admin:contacts_weworkaccount_change", args=[account.pk]),
                      HTTP_ACCEPT_LANGUAGE="en")
    body = page.content.decode()
    assert "after a QR login" in body
    assert f"{len(simulator.accounts[account.wxid].contacts)} contacts" in body


def test_a_failed_automatic_sync_is_shown_and_releases_its_lock(registered, simulator):
    # online on the platform but unknown to the instance: its sync fails
    account = services.ensure_account(registered, "wx_ghost")
    run = services.sync_run(account)
    assert run["status"] == "failed" and run["trigger"] == services.SyncTrigger.FIRST_ONLINE
    assert "Failed at" in str(services.sync_run_label(run))
    assert not services.sync_in_progress(account)
    account.refresh_from_db()
    assert account.last_sync_time is None


def test_qr_login_from_the_admin_page_syncs_without_manual_action(registered, simulator,
                                                                   client, admin_user):
    """The operator's path: start the login (POST), the phone scans and confirms, the page
    polls its status: the contacts are there, nobody ran the sync action."""
    login_verified(client, admin_user)
    start = reverse("admin:instances_weworkinstance_qr_login", args=[registered.pk])
    assert client.post(start).status_code == 302
    login = client.get(start).context["login"]
    scan_and_confirm(simulator, login["qrcode"])
    status = client.get(reverse("admin:instances_weworkinstance_qr_login_status",
                                args=[registered.pk, login["login_id"]])).json()
    assert status["status"] == "confirmed" and status["sync"]
    account = WeworkAccount.objects.get(instance=registered, wxid=status["account"])
    _assert_address_book(registered, account, simulator.accounts[account.wxid])


def test_sync_labels_are_translated():
    from django.utils import translation

    run = {"status": "done", "trigger": services.SyncTrigger.QR_LOGIN,
           "finished_at": "2026-11-28T10:00:00+00:00", "counts": {"contacts": 3, "groups": 1}}
    with translation.override("zh-hans"):
        label = str(services.sync_run_label(run))
        refused = str(services.SYNC_TRIGGER_LABELS[services.SyncTrigger.FIRST_ONLINE])
    assert "扫码登录后" in label and "3" in label
    assert refused == "账号首次上线"
