"""Inbound capture: stored in the monthly shard once, history marked and not counted, counters."""
import time
from datetime import datetime, timedelta, timezone as tz

import pytest
from django.core.cache import cache

from instances.exceptions import EventNotReady
from messaging import inbound
from messaging.models import Message
from messaging.services import counters
from wework import shards

pytestmark = pytest.mark.django_db(transaction=True)


def event(world, *, event_id, message_id="m1", text="hello", sent_ms=None, is_history=False, sender="wxid_s",
          conv="wxid_s", ctype="single", mtype="text", content=None):
    return {
        "event_id": event_id, "type": "message.received", "instance_id": world.instance.instance_uuid,
        "account_id": world.account.wxid, "seq": 1, "ts_ms": int(time.time() * 1000),
        "data": {
            "message_id": message_id, "conversation_id": conv, "conversation_type": ctype,
            "sender": {"id": sender, "name": "S"}, "type": mtype, "content": content or {"text": text},
            "mentions": None, "mentions_self": False, "sent_at_ms": sent_ms or int(time.time() * 1000),
            "is_self": False, "is_history": is_history,
        },
    }


def stored(world):
    return [m for model in shards.shard_models(Message) for m in model._default_manager.filter(account=world.account)]


def test_stored_once_per_event_id_message_id_and_fallback_key(world):
    now = int(time.time() * 1000)
    # through the hook the webhook intake calls (instances.services.handle_message_event)
    r1 = inbound.handle_instance_event(world.instance, event(world, event_id="e1", sent_ms=now))
    assert r1["stored"]
    # same event delivered again
    again = inbound.handle_instance_event(world.instance, event(world, event_id="e1", sent_ms=now))
    assert again["duplicate"] == "event_id"
    # same message id under another event id, after the Redis marks expired (uuid + unique key)
    cache.clear()
    redelivered = inbound.handle_message_received(world.instance, event(world, event_id="e2", sent_ms=now))
    assert redelivered["duplicate"] == "message_id"
    # another id, same sender/content within the window: fallback key
    r = inbound.handle_message_received(world.instance, event(world, event_id="e3", message_id="m2",
                                                              sent_ms=now + 2000))
    assert r["duplicate"] == "fallback"
    # same text much later: a new message
    assert inbound.handle_message_received(world.instance, event(world, event_id="e4", message_id="m3",
                                                                  sent_ms=now + 60_000))["stored"]
    rows = stored(world)
    assert len(rows) == 2
    m = rows[0]
    assert m.message_metadata["direction"] == "in" and m.send_status == 2 and m.chat_wxid == "wxid_s"
    world.account.refresh_from_db()
    world.instance.refresh_from_db()
    assert world.account.today_messages == 2 and world.account.total_messages == 2
    assert world.instance.today_messages == 2


def test_history_marked_and_not_counted(world):
    r = inbound.handle_message_received(world.instance, event(world, event_id="h1", is_history=True))
    assert r["stored"] and r["is_history"]
    m = stored(world)[0]
    assert m.message_metadata["is_history"] is True
    world.account.refresh_from_db()
    assert world.account.today_messages == 0 and world.account.total_messages == 0


def test_old_message_goes_to_its_month(world):
    old = datetime.now(tz.utc) - timedelta(days=40)
    r = inbound.handle_message_received(world.instance, event(world, event_id="o1", sent_ms=int(old.timestamp() * 1000),
                                                               is_history=True))
    assert r["stored"]
    m = shards.get(Message, r["id"])
    assert type(m)._meta.db_table == f"messages_{old.astimezone(tz(timedelta(hours=8))):%Y%m}"


def test_room_message_with_media(world):
    r = inbound.handle_message_received(world.instance, event(
        world, event_id="r1", conv=world.rooms[0], ctype="room", mtype="image",
        content={"url": "https://cdn.example.com/p.png"}))
    m = shards.get(Message, r["id"])
    assert m.chat_type == 2 and m.media_url == "https://cdn.example.com/p.png"


def test_unknown_account_is_not_ready_yet(world):
    e = event(world, event_id="u1")
    e["account_id"] = "wxid_unknown"
    with pytest.raises(EventNotReady, match="wxid_unknown"):
        inbound.handle_message_received(world.instance, e)


def test_daily_reset(world):
    inbound.handle_message_received(world.instance, event(world, event_id="d1"))
    assert counters.reset_daily_counters() == (1, 1)
    world.account.refresh_from_db()
    assert world.account.today_messages == 0 and world.account.total_messages == 1


def test_other_events_are_not_messagings(world):
    assert inbound.handle_instance_event(world.instance, {"type": "contact.added", "data": {}}) is None
