"""Inbound capture when processing fails: nothing is lost and nothing retries for ever.

Each test reproduces a loss seen in fault drills (issue 12): a deadlock after the insert that
rolled the message back while its Redis dedupe marks stayed; an event before `account.online`;
a text too long for its column."""
import time
from unittest import mock

import pytest
from django.db import OperationalError

from instances import services as instance_services
from instances.models import EventState, InstanceEvent
from messaging import inbound
from messaging.models import Message
from wework import shards

pytestmark = pytest.mark.django_db(transaction=True)


def received(world, *, event_id, message_id="m1", text="hello", account_id=None, seq=1):
    now = int(time.time() * 1000)
    return {
        "event_id": event_id, "type": "message.received", "instance_id": world.instance.instance_uuid,
        "account_id": account_id or world.account.wxid, "seq": seq, "ts_ms": now,
        "data": {
            "message_id": message_id, "conversation_id": "wxid_s", "conversation_type": "single",
            "sender": {"id": "wxid_s", "name": "S"}, "type": "text", "content": {"text": text},
            "mentions": None, "mentions_self": False, "sent_at_ms": now, "is_self": False,
            "is_history": False,
        },
    }


def inbox(world, event):
    row, duplicate = instance_services.store_event(world.instance.pk, event)
    assert not duplicate
    return row


def stored(world):
    return [m for model in shards.shard_models(Message) for m in model._default_manager.filter(account=world.account)]


def deadlock_once(real):
    """count_messages that deadlocks on its first call (the counter-row deadlock of the drills)."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
        return real(*args, **kwargs)

    fake.calls = calls
    return fake


def test_deadlock_after_the_insert_is_retried_at_once_and_the_message_stored(world):
    row = inbox(world, received(world, event_id="dl1"))
    fake = deadlock_once(inbound.count_messages)
    with mock.patch.object(inbound, "count_messages", fake):
        instance_services.process_event(row.pk)
    row.refresh_from_db()
    assert row.state == EventState.DONE, row.error
    assert len(stored(world)) == 1
    assert len(fake.calls) == 2
    world.account.refresh_from_db()
    assert world.account.total_messages == 1  # counted once, not once per attempt


def test_a_rolled_back_message_is_stored_by_the_next_attempt_not_called_a_duplicate(world):
    row = inbox(world, received(world, event_id="dl2"))
    always = OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
    with mock.patch.object(inbound, "count_messages", side_effect=always), \
            mock.patch("wework.db.retry.time.sleep"):
        instance_services.process_event(row.pk)
    row.refresh_from_db()
    assert row.state != EventState.DONE
    assert stored(world) == []
    # the redelivery (the retry task) finds no dedupe mark left by the rolled-back attempt
    InstanceEvent.objects.filter(pk=row.pk).update(state=EventState.PENDING)
    instance_services.process_event(row.pk)
    row.refresh_from_db()
    assert row.state == EventState.DONE, row.error
    assert len(stored(world)) == 1


def test_message_for_an_account_not_known_yet_is_retried_not_done(world):
    event = received(world, event_id="early1", account_id="wxid_not_online_yet")
    row = inbox(world, event)
    instance_services.process_event(row.pk)
    row.refresh_from_db()
    assert row.state in (EventState.PENDING, EventState.FAILED)
    assert "wxid_not_online_yet" in row.error
    # account.online applied meanwhile: the next attempt stores the message
    world.account.wxid = "wxid_not_online_yet"
    world.account.save(update_fields=["wxid"])
    InstanceEvent.objects.filter(pk=row.pk).update(state=EventState.PENDING)
    instance_services.process_event(row.pk)
    row.refresh_from_db()
    assert row.state == EventState.DONE, row.error
    assert len(stored(world)) == 1


def test_text_over_64_kb_is_stored_truncated_and_flagged(world):
    text = "长" * 400_000  # 1.2 MB of UTF-8
    row = inbox(world, received(world, event_id="big1", text=text))
    instance_services.process_event(row.pk)
    row.refresh_from_db()
    assert row.state == EventState.DONE, row.error
    [message] = stored(world)
    assert len(message.message_content.encode("utf-8")) <= inbound.MAX_CONTENT_BYTES
    assert text.startswith(message.message_content)
    assert message.message_metadata["truncated"] is True
    assert message.message_metadata["content_bytes"] == len(text.encode("utf-8"))
