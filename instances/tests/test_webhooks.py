"""Webhook intake: signature, timestamps, replays, malformed input, processing, gaps."""
import json
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from instances import services
from instances.services import intake
from instances.models import EventState, InstanceEvent, InstanceMonitor, InstanceStatus
from wework import shards

from wework.testing.instances import SECRET, heartbeat_data, make_event, post_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def instance(signed_instance):
    return signed_instance


def test_signed_heartbeat_is_accepted_and_processed(client, instance):
    event = make_event(instance, "instance.heartbeat", heartbeat_data(), seq=1)
    response = post_event(client, instance, event)
    assert response.status_code == 202, response.content
    assert response.json() == {"ok": True, "event_id": event["event_id"]}
    stored = InstanceEvent.objects.get(event_id=event["event_id"])
    assert stored.state == EventState.DONE
    instance.refresh_from_db()
    assert instance.status == InstanceStatus.ONLINE
    assert instance.version == "4.1.22"
    assert instance.last_heartbeat is not None
    metrics = dict(
        shards.for_instance(InstanceMonitor, instance.pk, create=False)
        .values_list("metric_name", "metric_value")
        if False else
        shards.model_for(InstanceMonitor).objects.filter(instance_id=instance.pk)
        .values_list("metric_name", "metric_value")
    )
    assert float(metrics["cpu"]) == 12.5
    assert float(metrics["memory"]) == 256.0
    assert "uptime_s" in metrics


def test_duplicate_event_id_is_refused_as_replay(client, instance):
    event = make_event(instance, "instance.heartbeat", heartbeat_data(), seq=1)
    assert post_event(client, instance, event).status_code == 202
    again = post_event(client, instance, event)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert InstanceEvent.objects.filter(event_id=event["event_id"]).count() == 1


@pytest.mark.parametrize("case", ["unsigned", "bad_signature", "stale", "wrong_secret"])
def test_unsigned_or_badly_signed_deliveries_get_401(client, instance, case):
    event = make_event(instance, "instance.heartbeat", heartbeat_data(), seq=1)
    body = json.dumps(event).encode()
    url = f"/api/v1/instances/{instance.instance_uuid}/events"
    if case == "unsigned":
        response = client.post(url, data=body, content_type="application/json")
    elif case == "bad_signature":
        response = post_event(client, instance, event,
                              headers={"X-Signature": "sha256=" + "0" * 64})
    elif case == "stale":
        response = post_event(client, instance, event, timestamp=time.time() - 3600)
    else:
        response = post_event(client, instance, event, secret="not-the-secret")
    assert response.status_code == 401
    payload = response.json()
    assert payload["ok"] is False and payload["error"]["message"]
    assert not InstanceEvent.objects.exists()


def test_malformed_bodies_get_400_with_reasons(client, instance):
    bad_json = post_event(client, instance, None, raw=b"{not json")
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["code"] == "invalid_json"

    not_object = post_event(client, instance, None, raw=b"[1, 2]")
    assert not_object.status_code == 400

    event = make_event(instance, "instance.heartbeat", {"uptime_s": "soon"}, seq=1)
    invalid = post_event(client, instance, event)
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "invalid_event"
    assert invalid.json()["error"]["fields"]

    unknown_type = make_event(instance, "instance.exploded", {}, seq=1)
    assert post_event(client, instance, unknown_type).status_code == 400
    assert not InstanceEvent.objects.exists()


def test_an_unpaired_surrogate_in_an_event_is_invalid_json(client, instance):
    """`"\\ud800"` is valid JSON but no character: stored, the event's text could never be shown
    or encoded again (wework.api.parsers, the same check as the API's bodies)."""
    event = make_event(instance, "instance.heartbeat", heartbeat_data(client_version="1.0 \ud800"), seq=1)
    answer = post_event(client, instance, event)  # json.dumps escapes it: "\\ud800"
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["code"] == "invalid_json"
    assert "surrogate" in answer.json()["error"]["message"]
    assert not InstanceEvent.objects.exists()
    paired = make_event(instance, "instance.heartbeat", heartbeat_data(client_version="1.0 \U0001F600"), seq=1)
    assert post_event(client, instance, paired).status_code == 202


def test_unknown_instance_and_wrong_method(client, instance):
    event = make_event(instance, "instance.heartbeat", heartbeat_data(), seq=1)
    body = json.dumps(event).encode()
    from instances import protocol

    headers = protocol.signature_headers(body, SECRET, event_id=event["event_id"])
    headers.pop("Content-Type")
    response = client.post("/api/v1/instances/00000000-0000-7000-8000-000000000000/events",
                           data=body, content_type="application/json", headers=headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_instance"
    assert client.get(f"/api/v1/instances/{instance.instance_uuid}/events").status_code == 405


def test_event_for_unknown_account_is_kept_as_failed(client, instance):
    event = make_event(instance, "account.offline",
                       {"account_id": "nobody", "reason": "network"}, seq=1,
                       account_id="nobody")
    assert post_event(client, instance, event).status_code == 202
    stored = InstanceEvent.objects.get(event_id=event["event_id"])
    assert stored.state == EventState.FAILED
    assert "nobody" in stored.error  # the message names the unknown account


def test_gap_in_sequence_triggers_replay(client, instance):
    first = make_event(instance, "instance.heartbeat", heartbeat_data(), seq=1)
    assert post_event(client, instance, first).status_code == 202
    missing = make_event(instance, "instance.heartbeat", heartbeat_data(uptime_s=20), seq=2)
    third = make_event(instance, "instance.heartbeat", heartbeat_data(uptime_s=30), seq=3)
    with mock.patch.object(intake, "_call", return_value={
        "events": [missing, third], "last_seq": 3, "has_more": False,
    }) as call:
        assert post_event(client, instance, third).status_code == 202
    call.assert_called_once_with(mock.ANY, "events_after", 1)
    seqs = sorted(InstanceEvent.objects.values_list("seq", flat=True))
    assert seqs == [1, 2, 3]
    assert InstanceEvent.objects.get(seq=2).replayed is True
    assert set(InstanceEvent.objects.values_list("state", flat=True)) == {EventState.DONE}


def test_intake_never_answers_500(client, instance):
    event = make_event(instance, "instance.heartbeat", heartbeat_data(), seq=1)
    with mock.patch.object(intake, "store_event", side_effect=RuntimeError("db down")):
        response = post_event(client, instance, event)
    assert response.status_code == 503
    assert response.json()["ok"] is False


def test_silent_instance_goes_offline_with_alert(instance):
    instance.status = InstanceStatus.ONLINE
    instance.heartbeat_interval = 10
    # 20 s of the 30 s allowed (3 intervals): margin for a loaded machine
    instance.last_heartbeat = timezone.now() - timedelta(seconds=20)
    instance.save()
    assert services.mark_silent_instances_offline() == []
    instance.last_heartbeat = timezone.now() - timedelta(seconds=31)
    instance.save()
    assert services.mark_silent_instances_offline() == [instance.pk]
    instance.refresh_from_db()
    assert instance.status == InstanceStatus.OFFLINE
    assert instance.error_message  # says how long the instance has been silent
    from monitoring.models import AlertRecord

    assert AlertRecord.objects.filter(rule_name="instance.offline").exists()


def test_restarted_instance_resolves_its_offline_alert(instance):
    """instance.started comes before the first heartbeat of a restarted instance."""
    from monitoring.models import AlertRecord, AlertStatus

    instance.status = InstanceStatus.ONLINE
    instance.heartbeat_interval = 10
    instance.last_heartbeat = timezone.now() - timedelta(seconds=60)
    instance.save()
    assert services.mark_silent_instances_offline() == [instance.pk]
    alert = AlertRecord.objects.get(rule_name="instance.offline")
    assert alert.status == AlertStatus.ACTIVE
    instance.refresh_from_db()
    services.handle_started(instance, make_event(instance, "instance.started",
                                                 {"client_version": "4.1.22"}, seq=1))
    instance.refresh_from_db()  # each event is processed with the instance as stored
    services.handle_heartbeat(instance, make_event(instance, "instance.heartbeat",
                                                   heartbeat_data(), seq=2))
    instance.refresh_from_db()
    alert.refresh_from_db()
    assert instance.status == InstanceStatus.ONLINE
    assert alert.status == AlertStatus.RESOLVED


def test_a_client_crash_alerts_and_the_alert_closes_when_the_client_is_back(instance):
    from monitoring.models import AlertRecord, AlertStatus

    type(instance).all_objects.filter(pk=instance.pk).update(status=InstanceStatus.ONLINE,
                                                             last_heartbeat=timezone.now())
    instance.refresh_from_db()
    services.handle_client_exited(instance, make_event(instance, "instance.client_exited",
                                                       {"reason": "crash", "exit_code": 1}, seq=1))
    instance.refresh_from_db()
    alert = AlertRecord.objects.get(rule_name="instance.client_exited")
    assert instance.status == InstanceStatus.ERROR and alert.status == AlertStatus.ACTIVE
    services.handle_started(instance, make_event(instance, "instance.started",
                                                 {"client_version": "4.1.22"}, seq=2))
    alert.refresh_from_db()
    instance.refresh_from_db()
    assert instance.status == InstanceStatus.ONLINE
    assert alert.status == AlertStatus.RESOLVED


def test_an_operators_own_restart_is_no_error_and_no_alert(instance):
    from monitoring.models import AlertRecord

    now = timezone.now()
    type(instance).all_objects.filter(pk=instance.pk).update(
        status=InstanceStatus.ONLINE, last_heartbeat=now, last_restart_time=now)
    instance.refresh_from_db()
    services.handle_client_exited(instance, make_event(instance, "instance.client_exited",
                                                       {"reason": "restart", "exit_code": 0}, seq=1))
    instance.refresh_from_db()
    assert instance.status == InstanceStatus.ONLINE and not instance.error_message
    assert not AlertRecord.objects.filter(rule_name="instance.client_exited").exists()
    # a "restart" nobody asked for (none in the last minutes) is an error again
    type(instance).all_objects.filter(pk=instance.pk).update(last_restart_time=now - timedelta(hours=1))
    instance.refresh_from_db()
    services.handle_client_exited(instance, make_event(instance, "instance.client_exited",
                                                       {"reason": "restart", "exit_code": 0}, seq=2))
    assert AlertRecord.objects.filter(rule_name="instance.client_exited").count() == 1


def test_oversized_body_gets_413(client, instance, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    event = make_event(instance, "instance.heartbeat", heartbeat_data(client_version="x" * 2000),
                       seq=1)
    response = post_event(client, instance, event)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
