"""The inbox: conversations with unread received messages across the accounts a user may
read, newest first, keyset paged, O(page); kept by the inbound handler and the read marker;
the page, its polling endpoint and the API, with their permission checks."""

import pytest
from django.urls import reverse

from contacts.models import AccountStatus, WeworkAccount
from messaging.models import ConversationRead
from messaging.services import conversations, inbox
from wework.testing.fixtures import api_client_for, login_verified

from .conftest import inbound_from

pytestmark = pytest.mark.django_db(transaction=True)

def say(world, sim, wxid, n=1, *, account=None, is_self=False, is_history=False, room=False, text="hello"):
    """`n` inbound messages in the conversation with `wxid`; their stored ids (in order)."""
    return inbound_from(world, sim, wxid, n, account=account, is_self=is_self, is_history=is_history,
                        room=room, text=text)


def keys(page):
    return [(r["account_id"], r["chat_wxid"]) for r in page.items]


def test_received_messages_make_a_conversation_unread_and_reading_clears_it(world, sim):
    a, b = world.contacts[:2]
    ida = say(world, sim, a, 2, text="first")
    idb = say(world, sim, b, 1)
    page = inbox.page(world.admin)
    assert keys(page) == [(world.account.pk, b), (world.account.pk, a)]
    row = page.items[1]
    assert row["last_inbound_message_id"] == ida[-1] and row["preview"].startswith("first")
    assert row["name"] != a  # the contact's name, not its wxid
    conv = conversations.open_conversation(world.admin, world.account.pk, a)
    conversations.mark_read(world.admin, conv, ida[0])  # one still unread
    assert keys(inbox.page(world.admin))[1] == (world.account.pk, a)
    conversations.mark_read(world.admin, conv)
    assert keys(inbox.page(world.admin)) == [(world.account.pk, b)]
    # a new message makes it unread again, at the top
    say(world, sim, a, 1)
    assert keys(inbox.page(world.admin)) == [(world.account.pk, a), (world.account.pk, b)]
    assert idb


def test_own_messages_history_and_late_deliveries_do_not_count(world, sim):
    a = world.contacts[0]
    say(world, sim, a, 1, is_self=True)
    say(world, sim, a, 1, is_history=True)
    assert inbox.page(world.admin).items == []
    ids = say(world, sim, a, 1)
    row = ConversationRead.objects.get(chat_wxid=a)
    inbox.record_inbound(world.account.pk, a, 1, ids[0] - 10, None, "late")
    row.refresh_from_db()
    assert row.last_inbound_message_id == ids[0] and row.has_unread == 1


def test_keyset_pages_newest_first_both_walks(world, sim, monkeypatch):
    ids = {}
    for wxid in world.contacts[:7]:
        ids[wxid] = say(world, sim, wxid, 1)[0]
    expected = [w for w, _ in sorted(ids.items(), key=lambda kv: kv[1], reverse=True)]
    for per_account_max in (20, 0):  # one range per account, or the global index
        monkeypatch.setattr(inbox, "PER_ACCOUNT_MAX", per_account_max)
        seen, before = [], None
        while True:
            page = inbox.page(world.admin, before=before, limit=3)
            seen += [r["chat_wxid"] for r in page.items]
            if page.next_before is None:
                break
            before = page.next_before
        assert seen == expected


def test_a_page_costs_the_same_whatever_the_number_of_conversations(world, sim, django_assert_max_num_queries):
    for wxid in world.contacts[:8]:
        say(world, sim, wxid, 1)
    for i in range(200):  # many more unread conversations with strangers
        inbox.record_inbound(world.account.pk, f"stranger-{i}", 1, 10 + i, None, "x")
    with django_assert_max_num_queries(8):
        page = inbox.page(world.admin, limit=5)
    assert len(page.items) == 5 and page.items[0]["chat_wxid"] in world.contacts


def test_scope_an_operator_sees_only_the_accounts_of_their_instances(world, sim, make_operator, outsider):
    other = WeworkAccount.objects.create(instance=world.instance, wxid="wxid_second_account",
                                         status=AccountStatus.ONLINE)
    say(world, sim, world.contacts[0], 1)
    inbox.record_inbound(other.pk, "someone", 1, 5, None, "hi")
    reader = make_operator("messaging.view_message", username="reader")
    assert {r["account_id"] for r in inbox.page(reader).items} == {world.account.pk, other.pk}
    assert [r["account_id"] for r in inbox.page(reader, account=other.pk).items] == [other.pk]
    assert inbox.page(outsider).items == []
    assert inbox.page(outsider, account=world.account.pk).items == []
    assert inbox.page(reader, account="x").items == []


def test_newer_gives_the_conversations_that_changed_since_a_cursor(world, sim):
    a, b = world.contacts[:2]
    first = say(world, sim, a, 1)[0]
    assert inbox.newer(world.admin, first).items == []
    newb = say(world, sim, b, 1)[0]
    newa = say(world, sim, a, 1)[0]
    result = inbox.newer(world.admin, first)
    assert keys(result) == [(world.account.pk, a), (world.account.pk, b)] and result.newest == newa > newb


def test_page_lists_links_and_polls(world, sim, browser):
    a = world.contacts[0]
    ids = say(world, sim, a, 1, text="need help")
    page = browser.get(reverse("messaging:inbox"))
    body = page.content.decode()
    assert page.status_code == 200 and "need help" in body
    assert reverse("messaging:conversation", args=[world.account.pk, a]) in body
    assert f'data-newest="{ids[0]}"' in body
    poll = reverse("messaging:inbox_poll")
    assert browser.get(poll).status_code == 400
    assert browser.get(poll, {"after": ids[0]}).json()["conversations"] == []
    new = say(world, sim, world.contacts[1], 1, text="another")[0]
    data = browser.get(poll, {"after": ids[0]}).json()
    assert data["newest"] == str(new) and len(data["conversations"]) == 1
    assert "another" in data["conversations"][0]["html"]
    assert data["conversations"][0]["key"] == f"{world.account.pk}:{world.contacts[1]}"
    # opening a conversation marks it read: it leaves the inbox
    browser.post(reverse("messaging:conversation_read", args=[world.account.pk, a]))
    assert "need help" not in browser.get(reverse("messaging:inbox")).content.decode()
    # the task list links to it
    assert reverse("messaging:inbox") in browser.get(reverse("messaging:task_list")).content.decode()


def test_page_and_polling_need_the_permission(world, sim, client, outsider, make_operator):
    say(world, sim, world.contacts[0], 1)
    login_verified(client, outsider)
    assert client.get(reverse("messaging:inbox")).status_code == 403
    assert client.get(reverse("messaging:inbox_poll"), {"after": 0}).status_code == 403
    client.logout()
    assert client.get(reverse("messaging:inbox")).status_code == 302  # to the login page
    login_verified(client, make_operator("messaging.view_message", username="reader"))
    assert client.get(reverse("messaging:inbox_poll"), {"after": 0}).json()["conversations"]


def test_api_inbox(world, sim, outsider, make_operator):
    a, b = world.contacts[:2]
    say(world, sim, a, 1)
    newest = say(world, sim, b, 1)[0]
    api = api_client_for(world.admin)
    url = reverse("api:conversation-inbox")
    data = api.get(url, {"limit": 1}).json()
    assert [r["chat_wxid"] for r in data["results"]] == [b] and data["next_before"] == newest
    data = api.get(url, {"before": data["next_before"]}).json()
    assert [r["chat_wxid"] for r in data["results"]] == [a] and data["next_before"] is None
    assert api.get(url, {"after": newest}).json()["results"] == []
    bad = api.get(url, {"before": "x", "nope": 1})
    assert bad.status_code == 400 and set(bad.json()) >= {"before", "nope"}
    assert api_client_for(outsider).get(url).status_code == 403
    reader = api_client_for(make_operator("messaging.view_message", username="reader"))
    assert len(reader.get(url).json()["results"]) == 2
