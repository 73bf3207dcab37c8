"""The conversation workspace: history across month shards by id, unread markers, polling for
new messages, replies through the send path (permissions, idempotency), pages and API; inbound
messages come from the simulator's `message.received` events through the inbound handler."""
from datetime import datetime, timedelta, timezone as tz


import pytest
from django.urls import reverse

from accounts.services.permissions import grant_instance
from instances.models import WeworkInstance
from messaging import inbound
from messaging.errors import MessagingInvalid, SendPermissionDenied
from messaging.models import ConversationRead, Message, MessageTask
from messaging.services import conversations, templates
from messaging.services.requests import TaskRequest
from monitoring.models import AuditLog
from wework import shards
from wework.errors import ConflictError
from wework.testing.factories import make
from wework.testing.fixtures import api_client_for, login_verified

from .conftest import inbound_from

pytestmark = pytest.mark.django_db(transaction=True)


def receive(world, sim, n=1, conversation_type="single"):
    """`n` inbound messages emitted by the simulator, handled as the webhook intake does; the
    stored ids and the events."""
    events = [e for e in sim.chatter(n, account_id=world.sim_account.account_id,
                                     conversation_type=conversation_type)]
    for e in events:
        e["data"]["is_self"] = False
        assert inbound.handle_instance_event(world.instance, e)["stored"]
    return events


def to_contact(world, sim, wxid, n, start=None):
    """`n` inbound messages from `wxid`, in order (from `start` a minute apart, as history)."""
    return inbound_from(world, sim, wxid, n, start=start)


def test_history_is_newest_first_across_month_shards_paged_by_id(world, sim):
    wxid = world.contacts[0]
    old = to_contact(world, sim, wxid, 3, start=datetime.now(tz.utc) - timedelta(days=40))
    new = to_contact(world, sim, wxid, 4)
    to_contact(world, sim, world.contacts[1], 2)  # another conversation, never shown
    conv = conversations.open_conversation(world.admin, world.account.pk, wxid)
    assert conv.name and not conv.is_group
    assert len(shards.shard_models(Message)) >= 2
    first = conversations.history(conv, limit=5)
    assert [r["id"] for r in first.items] == sorted(new + old, reverse=True)[:5]
    second = conversations.history(conv, after=first.next_after, limit=5)
    assert [r["id"] for r in second.items] == sorted(old, reverse=True)[1:]
    assert second.next_after is None
    assert {r["chat_wxid"] for r in first.items + second.items} == {wxid}


def test_unread_counts_received_messages_above_the_marker_and_reading_moves_it(world, sim):
    wxid = world.contacts[0]
    ids = to_contact(world, sim, wxid, 3)
    conv = conversations.open_conversation(world.admin, world.account.pk, wxid)
    assert conversations.unread_count(world.account.pk, wxid) == 3
    assert conversations.mark_read(world.admin, conv, ids[1]) == ids[1]
    assert conversations.unread_count(world.account.pk, wxid) == 1
    # never backwards
    assert conversations.mark_read(world.admin, conv, ids[0]) == ids[1]
    assert ConversationRead.objects.get().last_read_message_id == ids[1]
    assert conversations.mark_read(world.admin, conv) == ids[2]
    assert conversations.unread_count(world.account.pk, wxid) == 0
    audits = AuditLog.objects.filter(operation="conversation.read")
    assert audits.count() == 2 and audits.first().resource_id == conv.key
    # a message of another conversation is refused
    other = to_contact(world, sim, world.contacts[1], 1)[0]
    with pytest.raises(MessagingInvalid):
        conversations.mark_read(world.admin, conv, other)


def test_unread_is_capped(world, sim, monkeypatch):
    wxid = world.contacts[0]
    to_contact(world, sim, wxid, 6)
    assert conversations.unread_count(world.account.pk, wxid, cap=4) == 5


def test_newer_returns_messages_after_an_id_oldest_first(world, sim):
    wxid = world.contacts[0]
    ids = to_contact(world, sim, wxid, 4)
    conv = conversations.open_conversation(world.admin, world.account.pk, wxid)
    assert [r["id"] for r in conversations.newer(conv, ids[1])] == ids[2:]
    assert conversations.newer(conv, ids[-1]) == []


def test_reply_goes_through_the_send_path_once_per_idempotency_key_and_marks_read(world, sim):
    wxid = world.contacts[0]
    ids = to_contact(world, sim, wxid, 2)
    conv = conversations.open_conversation(world.admin, world.account.pk, wxid)
    request = TaskRequest(message_type="text", content={"text": "Thanks!"}, reply_to=ids[-1])
    task = conversations.reply(world.admin, conv, request, idempotency_key="k1")
    again = conversations.reply(world.admin, conv, TaskRequest(message_type="text", content={"text": "Thanks!"},
                                                               reply_to=ids[-1]), idempotency_key="k1")
    assert again.pk == task.pk and MessageTask.objects.count() == 1
    with pytest.raises(ConflictError):  # the same key with another message
        conversations.reply(world.admin, conv, TaskRequest(message_type="text", content={"text": "Other"},
                                                           reply_to=ids[-1]), idempotency_key="k1")
    assert MessageTask.objects.count() == 1
    task.refresh_from_db()
    assert task.task_type == "single" and task.success_count == 1
    out = conversations.history(conv, limit=1).items[0]
    assert out["task_id"] == task.pk and out["parent_message_id"] == ids[-1]
    assert conversations.unread_count(world.account.pk, wxid) == 0


def test_reading_and_replying_follow_the_instance_scope(world, sim, make_operator, outsider):
    wxid = world.contacts[0]
    to_contact(world, sim, wxid, 1)
    reader = make_operator("messaging.view_message", username="reader")
    conv = conversations.open_conversation(reader, world.account.pk, wxid)
    with pytest.raises(SendPermissionDenied):
        conversations.reply(reader, conv, TaskRequest(message_type="text", content={"text": "x"}))
    assert not MessageTask.objects.exists()
    with pytest.raises(conversations.ConversationNotFound):
        conversations.open_conversation(outsider, world.account.pk, wxid)
    with pytest.raises(conversations.ConversationNotFound):
        conversations.open_conversation(world.admin, world.account.pk, "nobody-at-all")


def test_conversation_page_shows_history_unread_quick_replies_and_sends_a_reply(world, sim, browser):
    templates.save_template(world.admin, {"name": "Thanks template", "message_type": "text",
                                          "content": "Thank you {{ receiver_name }}"})
    wxid = world.contacts[0]
    ids = to_contact(world, sim, wxid, 2)
    url = reverse("messaging:conversation", args=[world.account.pk, wxid])
    page = browser.get(url)
    body = page.content.decode()
    assert page.status_code == 200
    assert f'data-id="{ids[1]}"' in body and body.index(f'data-id="{ids[1]}"') < body.index(f'data-id="{ids[0]}"')
    assert 'id="unread-count">2<' in body and "Thanks template" in body
    # the reply: a text, then a link (every type of the compose form)
    r = browser.post(url, {"message_type": "text", "text": "Hello back", "idempotency_key": "p1",
                           "reply_to": ids[1]})
    assert r.status_code == 302, r.content.decode()[:2000]
    r = browser.post(url, {"message_type": "link", "title": "Offer", "url": "https://example.com/o",
                           "idempotency_key": "p2"})
    assert r.status_code == 302
    assert list(MessageTask.objects.order_by("id").values_list("message_type", flat=True)) == ["text", "link"]
    # a repeated submission (same key) sends nothing more
    browser.post(url, {"message_type": "text", "text": "Hello back", "idempotency_key": "p1", "reply_to": ids[1]})
    assert MessageTask.objects.count() == 2
    # the same key with another message: the form says so, nothing sent
    other = browser.post(url, {"message_type": "text", "text": "Something else", "idempotency_key": "p1",
                               "reply_to": ids[1]})
    assert other.status_code == 200 and "different request" in other.content.decode()
    assert MessageTask.objects.count() == 2
    # a bad reply: the form's message, nothing sent
    bad = browser.post(url, {"message_type": "link", "title": "No URL", "idempotency_key": "p3"})
    assert bad.status_code == 200 and "This field is required" in bad.content.decode()
    assert MessageTask.objects.count() == 2


def test_page_polls_new_messages_and_marks_read(world, sim, browser):
    wxid = world.contacts[0]
    ids = to_contact(world, sim, wxid, 1)
    poll = reverse("messaging:conversation_poll", args=[world.account.pk, wxid])
    assert browser.get(poll).status_code == 400
    assert browser.get(poll, {"after_id": ids[0]}).json()["messages"] == []
    new = to_contact(world, sim, wxid, 2)
    data = browser.get(poll, {"after_id": ids[0]}).json()
    assert [m["id"] for m in data["messages"]] == [str(i) for i in new] and data["unread"] == 3
    assert data["newest_id"] == str(new[-1])  # strings: JavaScript numbers round ids above 2**53
    assert f'data-id="{new[0]}"' in data["messages"][0]["html"]
    read = browser.post(reverse("messaging:conversation_read", args=[world.account.pk, wxid]),
                        {"message_id": new[-1]})
    assert read.json() == {"last_read_message_id": str(new[-1]), "unread": 0}


def test_pages_are_404_out_of_scope_and_403_for_replies_without_send(world, sim, client, make_operator, outsider):
    wxid = world.contacts[0]
    to_contact(world, sim, wxid, 1)
    url = reverse("messaging:conversation", args=[world.account.pk, wxid])
    login_verified(client, outsider)
    assert client.get(url).status_code == 404
    assert client.get(reverse("messaging:conversation_poll", args=[world.account.pk, wxid]),
                      {"after_id": 1}).status_code == 404
    reader = make_operator("messaging.view_message", username="reader")
    login_verified(client, reader)
    page = client.get(url)
    assert page.status_code == 200 and 'id="reply-form"' not in page.content.decode()
    assert client.post(url, {"message_type": "text", "text": "x"}).status_code == 403
    assert not MessageTask.objects.exists()


def test_api_lists_replies_and_reads(world, sim, outsider):
    wxid = world.contacts[0]
    ids = to_contact(world, sim, wxid, 3)
    api = api_client_for(world.admin)
    url = reverse("api:conversation-list")
    page = api.get(url, {"account": world.account.pk, "chat_wxid": wxid, "limit": 2}).json()
    assert [m["id"] for m in page["results"]] == [ids[2], ids[1]] and page["unread"] == 3
    assert page["results"][0]["direction"] == "in" and page["results"][0]["sender"]["id"] == wxid
    rest = api.get(url, {"account": world.account.pk, "chat_wxid": wxid, "after": page["next_after"]}).json()
    assert [m["id"] for m in rest["results"]] == [ids[0]] and rest["next_after"] is None
    newer = api.get(url, {"account": world.account.pk, "chat_wxid": wxid, "newer_than": ids[0]}).json()
    assert [m["id"] for m in newer["results"]] == ids[1:]
    assert api.get(url, {"account": world.account.pk}).status_code == 400
    assert api.get(url, {"account": world.account.pk, "chat_wxid": wxid, "bogus": 1}).json() == {
        "bogus": ["Unknown parameter."]}
    reply = reverse("api:conversation-reply")
    r = api.post(reply, {"account": world.account.pk, "chat_wxid": wxid, "message_type": "text",
                         "content": "Got it"}, format="json", HTTP_IDEMPOTENCY_KEY="a1")
    assert r.status_code == 201, r.content
    again = api.post(reply, {"account": world.account.pk, "chat_wxid": wxid, "message_type": "text",
                             "content": "Got it"}, format="json", HTTP_IDEMPOTENCY_KEY="a1")
    assert again.json()["id"] == r.json()["id"] and MessageTask.objects.count() == 1
    other = api.post(reply, {"account": world.account.pk, "chat_wxid": wxid, "message_type": "text",
                             "content": "Something else"}, format="json", HTTP_IDEMPOTENCY_KEY="a1")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    assert "different request" in other.json()["detail"] and MessageTask.objects.count() == 1
    bad = api.post(reply, {"account": world.account.pk, "chat_wxid": wxid, "message_type": "image",
                           "content": {"url": "not a url"}}, format="json")
    assert bad.status_code == 400 and "content" in bad.json()
    read = api.post(reverse("api:conversation-read"), {"account": world.account.pk, "chat_wxid": wxid},
                    format="json").json()
    assert read["unread"] == 0
    stranger = api_client_for(outsider)
    assert stranger.get(url, {"account": world.account.pk, "chat_wxid": wxid}).status_code in (403, 404)


def test_api_scope_for_an_operator_of_another_instance(world, sim, django_user_model):
    wxid = world.contacts[0]
    to_contact(world, sim, wxid, 1)
    other = make(WeworkInstance)
    user = django_user_model.objects.create_user("elsewhere", "e@example.com", "pw-elsewhere-123")
    grant_instance(user, other, ["messaging.view_message", "messaging.send_message"], granted_by=world.admin)
    api = api_client_for(user)
    assert api.get(reverse("api:conversation-list"),
                   {"account": world.account.pk, "chat_wxid": wxid}).status_code == 404
    r = api.post(reverse("api:conversation-reply"), {"account": world.account.pk, "chat_wxid": wxid,
                                                      "message_type": "text", "content": "x"}, format="json")
    assert r.status_code == 404 and not MessageTask.objects.exists()


def test_group_conversation_and_links_from_the_admin(world, sim, browser):
    events = receive(world, sim, 1, conversation_type="room")
    room = events[0]["data"]["conversation_id"]
    conv = conversations.open_conversation(world.admin, world.account.pk, room)
    assert conv.is_group
    url = reverse("messaging:conversation", args=[world.account.pk, room])
    page = browser.get(url)
    assert page.status_code == 200 and "@ members" in page.content.decode()
    contacts = browser.get(reverse("admin:contacts_contact_changelist"), {"instance": world.instance.pk})
    assert reverse("messaging:conversation", args=[world.account.pk, world.contacts[-1]]) in contacts.content.decode()
