"""Batched webhook deliveries (protocol 1.2): one signed request for several events, all stored
(or none) before the 2xx, duplicates reported per event, one publish per batch."""
import json
from unittest import mock

import pytest
from django.db import OperationalError

from instances import protocol, services
from instances.models import EventState, InstanceEvent, InstanceMonitor, InstanceStatus
from instances.services import inbox
from wework import shards
from wework.db.layout import connection_for
from wework.testing.instances import SECRET, heartbeat_data, make_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def instance(signed_instance):
    return signed_instance


def heartbeats(instance, seqs):
    return [make_event(instance, "instance.heartbeat", heartbeat_data(uptime_s=seq), seq=seq)
            for seq in seqs]


def post_batch(client, instance, events, *, secret=SECRET, body=None, tamper=None):
    body = body if body is not None else json.dumps({"events": events}).encode()
    headers = protocol.signature_headers(
        body, secret, event_id=events[0]["event_id"] if events else "x",
        seq=events[0]["seq"] if events else None, count=len(events))
    headers.pop("Content-Type")
    if tamper:
        body = tamper(body)
    return client.post(f"/api/v1/instances/{instance.instance_uuid}/events", data=body,
                       content_type="application/json", headers=headers)


def test_a_batch_is_stored_whole_processed_and_published_once(client, instance):
    events = heartbeats(instance, range(1, 11))
    with mock.patch.object(inbox.publisher, "add", wraps=inbox.publisher.add) as add:
        response = post_batch(client, instance, events)
    assert response.status_code == 202, response.content
    assert response.json() == {"ok": True, "count": 10, "accepted": 10, "duplicates": []}
    stored = dict(InstanceEvent.objects.values_list("event_id", "state"))
    assert stored == {event["event_id"]: EventState.DONE for event in events}
    add.assert_called_once()  # one publish for the batch
    assert len(add.call_args.args[0]) == 10
    # processed as the single path processes each event: status, version, metrics
    instance.refresh_from_db()
    assert instance.status == InstanceStatus.ONLINE and instance.version == "4.1.22"
    metrics = shards.model_for(InstanceMonitor).objects.filter(instance_id=instance.pk)
    assert metrics.filter(metric_name="cpu").count() == 10


def test_the_signature_covers_the_whole_body(client, instance):
    events = heartbeats(instance, [1, 2])
    tampered = post_batch(client, instance, events,
                          tamper=lambda body: body.replace(b'"uptime_s": 2', b'"uptime_s": 9'))
    assert tampered.status_code == 401
    wrong_secret = post_batch(client, instance, events, secret="not-the-secret")
    assert wrong_secret.status_code == 401
    assert not InstanceEvent.objects.exists()


def test_duplicates_in_a_batch_are_reported_and_the_others_stored(client, instance):
    first, second, third = heartbeats(instance, [1, 2, 3])
    assert post_batch(client, instance, [first, second]).status_code == 202
    mixed = post_batch(client, instance, [second, third])
    assert mixed.status_code == 202
    assert mixed.json() == {"ok": True, "count": 2, "accepted": 1,
                            "duplicates": [second["event_id"]]}
    again = post_batch(client, instance, [first, second, third])  # a lost 2xx, resent
    assert again.status_code == 200
    assert again.json()["accepted"] == 0 and len(again.json()["duplicates"]) == 3
    assert sorted(InstanceEvent.objects.values_list("seq", flat=True)) == [1, 2, 3]


def test_an_invalid_item_refuses_the_batch_and_stores_nothing(client, instance):
    events = heartbeats(instance, [1, 2, 3])
    events[1]["data"]["uptime_s"] = "soon"
    response = post_batch(client, instance, events)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_event"
    assert error["item"] == 1 and error["event_id"] == events[1]["event_id"]
    assert "Item 1" in error["message"] and error["fields"]
    assert not InstanceEvent.objects.exists()


@pytest.mark.parametrize("case", ["not_an_object", "out_of_order", "repeated_id", "empty"])
def test_malformed_batches_get_400_naming_the_item(client, instance, case):
    events = heartbeats(instance, [1, 2, 3])
    expected_item = 2
    if case == "not_an_object":
        events[2] = "evt"
        code = "invalid_event"
    elif case == "out_of_order":
        events[2]["seq"] = 1
        code = "batch_out_of_order"
    elif case == "repeated_id":
        events[2]["event_id"] = events[0]["event_id"]
        code = "duplicate_in_batch"
    else:
        events, code, expected_item = [], "invalid_batch", None
    response = post_batch(client, instance, events)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert response.json()["error"].get("item") == expected_item
    assert not InstanceEvent.objects.exists()


def test_too_many_events_get_400_with_the_limit(client, instance, settings):
    settings.INSTANCE_WEBHOOK_BATCH_MAX = 5
    response = post_batch(client, instance, heartbeats(instance, range(1, 7)))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "too_many_events" and error["max_events"] == 5
    assert "6 events" in error["message"] and "at most 5" in error["message"]
    assert not InstanceEvent.objects.exists()


def test_a_platform_without_batches_refuses_them_and_does_not_announce_them(client, instance,
                                                                             settings):
    settings.INSTANCE_WEBHOOK_BATCH_MAX = 1
    response = post_batch(client, instance, heartbeats(instance, [1, 2]))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "batches_not_accepted"
    assert "webhook_batch_max" not in services.config_payload(instance)
    settings.INSTANCE_WEBHOOK_BATCH_MAX = 50
    assert services.config_payload(instance)["webhook_batch_max"] == 50


def test_a_failed_insert_answers_503_and_stores_nothing(client, instance):
    """Durability: the batch's rows go in one statement; when it fails nothing is stored and
    nothing acknowledged, so the runtime resends the whole batch."""
    stored_first = heartbeats(instance, [1])
    assert post_batch(client, instance, stored_first).status_code == 202
    table = InstanceEvent._meta.db_table

    def fail_inserts(execute, sql, params, many, context):
        if sql.startswith("INSERT INTO") and table in sql.split("(", 1)[0]:
            raise OperationalError("the database went away")
        return execute(sql, params, many, context)

    events = heartbeats(instance, range(2, 12))
    with connection_for("instances").execute_wrapper(fail_inserts):
        response = post_batch(client, instance, events)
    assert response.status_code == 503
    assert response.json()["ok"] is False
    assert list(InstanceEvent.objects.values_list("seq", flat=True)) == [1]
    # resent once the database is back: all stored
    assert post_batch(client, instance, events).status_code == 202
    assert InstanceEvent.objects.count() == 11
