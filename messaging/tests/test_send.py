"""Sending through tasks against the instance simulator: every type, @members, reply-to,
templates, lifecycle, failures."""
import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from messaging import dispatch, pacing, services
from messaging.models import (
    Message, MessageReceiver, MessageTask, MessageTemplate, ReceiverSendStatus as RS, SendStatus, TaskStatus,
)
from wework import shards

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = {
    "text": {"text": "hello"},
    "image": {"url": "https://cdn.example.com/a.png"},
    "video": {"url": "https://cdn.example.com/a.mp4", "duration_s": 3},
    "file": {"url": "https://cdn.example.com/a.pdf", "filename": "a.pdf"},
    "link": {"title": "Docs", "url": "https://example.com"},
    "card": None,  # a contact of the account, filled in the test
    "location": {"latitude": 39.9, "longitude": 116.4, "title": "Office"},
}


def _message_of(receiver):
    return shards.get(Message, receiver.message_id)


@pytest.mark.parametrize("mtype", sorted(CONTENT))
def test_send_each_type_to_a_contact(world, sim, mtype):
    content = CONTENT[mtype] or {"contact_id": world.contacts[1]}
    task = services.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                 message_type=mtype, content=content)
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED, task.error_message
    r = task.receivers.get()
    assert r.send_status == RS.SUCCESS
    m = _message_of(r)
    assert m.send_status == SendStatus.SUCCESS and m.message_type == mtype and m.task_id == task.pk
    record = sim.messages[sim.by_client_msg_id[m.message_uuid]]
    assert record["request"]["type"] == mtype and record["request"]["conversation_id"] == world.contacts[0]
    assert record["status"] == "sent"
    world.account.refresh_from_db()
    assert world.account.today_messages == 1 and world.account.total_messages == 1


def test_group_message_with_mentions_and_reply(world, sim):
    room = world.rooms[0]
    members = world.members[room][1:3]
    first = services.send_message(world.admin, account=world.account, receiver_wxid=room, receiver_type="group",
                                  message_type="text", content="first")
    parent = _message_of(first.receivers.get())
    task = services.send_message(world.admin, account=world.account, receiver_wxid=room, receiver_type="group",
                                 message_type="text", content={"text": "hi all"}, at_members=members,
                                 reply_to=parent.pk)
    m = _message_of(task.receivers.get())
    assert m.at_members == members and m.parent_message_id == parent.pk and m.chat_type == 2
    req = sim.messages[sim.by_client_msg_id[m.message_uuid]]["request"]
    assert req["mentions"] == members and req["conversation_type"] == "room"
    assert req["reply_to"]


def test_scheduled_message_waits_for_beat(world, sim):
    later = timezone.now() + timezone.timedelta(hours=1)
    task = services.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                 message_type="text", content="later", scheduled_time=later)
    assert task.status == TaskStatus.PENDING
    services.kick()
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING and not sim.messages
    services.kick(now=later + timezone.timedelta(seconds=1))
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    assert _message_of(task.receivers.get()).is_scheduled


def test_broadcast_with_template_filters_and_personal_variables(world, sim):
    tmpl = services.save_template(world.admin, {
        "name": "Promo", "category": "marketing", "message_type": "text", "tags": ["promo"],
        "content": "Hi {{ receiver_name }}, {{ offer }} in {{ city }}",
        "variables": [{"name": "offer"}, {"name": "city", "default": "Beijing"}],
    })
    assert tmpl.preview_content == "Hi «receiver_name», «offer» in Beijing" or "Beijing" in tmpl.preview_content
    task = services.create_task(world.admin, account=world.account, template=tmpl.pk,
                                template_variables={"offer": "20% off"}, filters={"tags": ["vip"]})
    task.refresh_from_db()
    n_vip = (len(world.contacts) + 1) // 2
    assert task.target_count == n_vip and task.status == TaskStatus.COMPLETED
    assert task.success_count == n_vip and float(task.progress) == 100.0
    texts = {m["request"]["content"]["text"] for m in sim.messages.values()}
    assert all(t.endswith("20% off in Beijing") for t in texts) and len(texts) == n_vip
    tmpl.refresh_from_db()
    assert tmpl.use_count == 1 and tmpl.last_used_at is not None


def test_missing_template_variable_is_an_error_at_creation(world, sim):
    tmpl = services.save_template(world.admin, {"name": "T", "message_type": "text", "content": "{{ code }}",
                                                "variables": ["code"]})
    receivers = [{"wxid": world.contacts[0], "variables": {"code": "A1"}}, {"wxid": world.contacts[1]}]
    with pytest.raises(ValidationError) as exc:
        services.create_task(world.admin, account=world.account, template=tmpl.pk, receivers=receivers)
    assert "code" in str(exc.value) and world.contacts[1] in str(exc.value)
    assert not MessageTask.objects.exists() and not MessageReceiver.objects.exists()
    task = services.create_task(world.admin, account=world.account, template=tmpl.pk,
                                receivers=[receivers[0]])
    assert sim.messages[next(iter(sim.messages))]["request"]["content"]["text"] == "A1"
    assert task.pk


@pytest.mark.parametrize("case", ["unknown_account", "unknown_receiver", "offline", "banned", "zero", "too_many",
                                  "text_too_long", "bad_type"])
def test_bad_input_creates_nothing(world, settings, case):
    from contacts.models import AccountStatus

    kwargs = dict(account=world.account, message_type="text", content="x", receivers=[world.contacts[0]])
    if case == "unknown_account":
        kwargs["account"] = 999999
    elif case == "unknown_receiver":
        kwargs["receivers"] = [world.contacts[0], "wxid_nobody"]
    elif case == "offline":
        world.account.status = AccountStatus.OFFLINE
        world.account.save()
    elif case == "banned":
        world.account.status = AccountStatus.BANNED
        world.account.save()
    elif case == "zero":
        kwargs["receivers"] = []
    elif case == "too_many":
        kwargs["receivers"] = [f"wxid_{i}" for i in range(1_000_000)]
    elif case == "text_too_long":
        kwargs["content"] = "x" * 5000
    elif case == "bad_type":
        kwargs["message_type"] = "sticker"
    with pytest.raises(ValidationError) as exc:
        services.create_task(world.admin, **kwargs)
    assert exc.value.message_dict  # field messages
    assert not MessageTask.objects.exists() and not MessageReceiver.objects.exists()


def test_unreachable_media_url_refused(world, settings):
    settings.MESSAGING = {**settings.MESSAGING, "CHECK_MEDIA_URLS": True, "MEDIA_CHECK_TIMEOUT_S": 1,
                          "MEDIA_CHECK_PRIVATE_HOSTS": True}  # the unreachable URL is a local one
    with pytest.raises(ValidationError, match="cannot be reached"):
        services.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                              message_type="image", content={"url": "http://127.0.0.1:9/x.png"})
    assert not MessageTask.objects.exists()


def test_media_fetch_failure_fails_receiver_with_reason(world, sim):
    task = services.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                 message_type="image", content={"url": "https://cdn.example.com/fail.png"})
    r = task.receivers.get()
    assert r.send_status == RS.FAILED and r.error_code == "media_fetch_failed"
    task.refresh_from_db()
    assert task.fail_count == 1 and task.status == TaskStatus.COMPLETED
    assert list(services.failed_receivers(task)) == [r]


def test_transient_errors_retry_with_new_uuid_then_succeed(world, sim, settings):
    sim.inject(rate_limit_per_min=2)
    task = services.create_task(world.admin, account=world.account, message_type="text", content="x",
                                receivers=world.contacts[:3], max_retry=2, start=False)
    services.start_task(task.pk)
    # the third send to arrive is refused (without pacing, sends of a claim go several at a time,
    # so which receiver's send arrives third is not fixed)
    assert task.receivers.filter(send_status=RS.SUCCESS).count() == 2
    r3 = task.receivers.get(error_code="rate_limited")
    assert r3.send_status == RS.PENDING and r3.retry_count == 1
    assert r3.message_id is None  # a refused send gets a new uuid next time
    sim.inject(rate_limit_per_min=0)
    MessageReceiver.objects.filter(pk=r3.pk).update(send_time=None)
    pacing.pacer().reset(world.account.pk)
    services.kick()
    r3.refresh_from_db()
    assert r3.send_status == RS.SUCCESS
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 3


def test_risk_control_stops_account_pauses_tasks_and_never_retries(world, sim, monkeypatch, fast):
    fast["SEND_CONCURRENCY"] = 1  # one send at a time: the refusal is seen before the next send
    alerts = []
    import monitoring.services as ms

    monkeypatch.setattr(ms, "fire_alert", lambda *a, **k: alerts.append((a, k)), raising=False)
    other = services.create_task(world.admin, account=world.account, message_type="text", content="y",
                                 receivers=world.contacts[10:12], start=False,
                                 scheduled_time=timezone.now() + timezone.timedelta(hours=1))
    sim.inject(risk_control_after=2)
    task = services.create_task(world.admin, account=world.account, message_type="text", content="x",
                                receivers=world.contacts[:5])
    task.refresh_from_db()
    other.refresh_from_db()
    assert task.status == TaskStatus.PAUSED and other.status == TaskStatus.PAUSED
    counts = {s: task.receivers.filter(send_status=s).count() for s in RS.values}
    # two accepted before the stop (sent, or refused when the account turned abnormal), the third
    # refused with risk_control, the last two never attempted
    assert counts[RS.PENDING] == 2 and counts[RS.SUCCESS] + counts[RS.FAILED] + counts[RS.SENDING] == 3
    assert task.receivers.filter(error_code="risk_control").exists()
    assert len(alerts) == 1
    assert pacing.blocked_reason(world.account.pk) == "risk_control"
    assert alerts
    world.account.refresh_from_db()
    assert world.account.status == 2  # abnormal
    services.kick()  # nothing restarts it
    task.refresh_from_db()
    assert task.status == TaskStatus.PAUSED
    with pytest.raises(ValidationError):
        services.resume_task(task)


def test_risk_control_with_concurrent_sends_stops_after_those_in_flight(world, sim, monkeypatch, fast):
    fast["SEND_CONCURRENCY"] = 4
    alerts = []
    import monitoring.services as ms

    monkeypatch.setattr(ms, "fire_alert", lambda *a, **k: alerts.append((a, k)), raising=False)
    sim.inject(risk_control_after=2)
    task = services.create_task(world.admin, account=world.account, message_type="text", content="x",
                                receivers=world.contacts[:20])
    task.refresh_from_db()
    assert task.status == TaskStatus.PAUSED
    counts = {s: task.receivers.filter(send_status=s).count() for s in RS.values}
    # two accepted, then the refusal; besides it only the sends already in flight (at most 3)
    # were attempted, each once; everything else is pending again
    receipts = sim.stats()["receipts"]
    attempted = len(receipts)
    assert set(receipts.values()) == {1}
    assert 3 <= attempted <= 6
    assert counts[RS.SUCCESS] + counts[RS.FAILED] + counts[RS.SENDING] == attempted
    assert counts[RS.PENDING] == 20 - attempted
    assert task.receivers.filter(error_code="risk_control").exists()
    assert len(alerts) == 1 and pacing.blocked_reason(world.account.pk) == "risk_control"


def test_pause_resume_cancel_resend(world, sim):
    task = services.create_task(world.admin, account=world.account, message_type="text", content="x",
                                receivers=world.contacts[:4], start=False)
    services.pause_task(task)
    with pytest.raises(ValidationError):
        services.pause_task(task)
    services.resume_task(task)
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 4
    # resend failed
    MessageReceiver.objects.filter(task=task, receiver_wxid=world.contacts[0]).update(send_status=RS.FAILED,
                                                                                      error_code="x")
    services.rebuild_counters(task.pk)
    assert services.resend_failed(task) == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 4 and task.fail_count == 0
    # cancel
    t2 = services.create_task(world.admin, account=world.account, message_type="text", content="x",
                              receivers=world.contacts[4:8], start=False)
    services.cancel_task(t2)
    t2.refresh_from_db()
    assert t2.status == TaskStatus.CANCELLED and t2.receivers.filter(send_status=RS.SKIPPED).count() == 4
    with pytest.raises(ValidationError):
        services.cancel_task(t2)


def test_counters_rebuild_from_rows(world, sim):
    task = services.create_task(world.admin, account=world.account, message_type="text", content="x",
                                receivers=world.contacts[:5])
    MessageTask.objects.filter(pk=task.pk).update(success_count=0, fail_count=99, progress=3)
    services.rebuild_counters(task.pk)
    task.refresh_from_db()
    assert (task.success_count, task.fail_count, float(task.progress)) == (5, 0, 100.0)


def test_status_webhook_confirms_queued_send(world, sim, fast):
    fast["ACK_WAIT_S"] = 0  # leave the acknowledgement to the webhook
    fast["ACK_POLL_AFTER_S"] = 3600
    fast["ACK_FROM_EVENTS"] = False
    task = services.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                 message_type="text", content="x")
    r = task.receivers.get()
    assert r.send_status == RS.SENDING
    m = _message_of(r)
    assert m.send_status == SendStatus.SENDING
    event = {"event_id": "e1", "type": "message.status", "account_id": world.account.wxid, "seq": 1,
             "data": {"message_id": "msg_1", "client_msg_id": m.message_uuid, "status": "sent"}}
    done = services.handle_message_status(world.instance, event)
    assert done["success"] == 1
    assert services.handle_message_status(world.instance, event)["success"] == 0  # repeat: no change
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 1
    assert _message_of(task.receivers.get()).message_metadata["instance_message_id"] == "msg_1"


def test_banned_account_event_stops_running_dispatch(world, sim, monkeypatch):
    """The contacts app marks the account banned (account.banned): the next dispatcher check
    stops the account's sending, pauses its tasks and raises one alert."""
    from contacts.models import AccountStatus

    alerts = []
    import monitoring.services as ms

    monkeypatch.setattr(ms, "fire_alert", lambda *a, **k: alerts.append(k), raising=False)
    task = services.create_task(world.admin, account=world.account, message_type="text", content="x",
                                receivers=world.contacts[:3], start=False)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    type(world.account).all_objects.filter(pk=world.account.pk).update(status=AccountStatus.BANNED)
    assert dispatch.run(task.pk) == "stopped-account"
    task.refresh_from_db()
    assert task.status == TaskStatus.PAUSED and not sim.messages and len(alerts) == 1
    assert pacing.blocked_reason(world.account.pk) == "account_banned"


def test_account_stop_raises_a_real_alert(world):
    from monitoring.models import AlertRecord

    services.stop_account(world.account.pk, "risk_control", "test")
    services.stop_account(world.account.pk, "risk_control", "again")
    alerts = AlertRecord.objects.filter(rule_name="messaging.account_risk_control")
    assert alerts.count() == 1 and world.account.wxid in alerts.get().alert_title


def test_busy_conversation_waits_while_others_go(world, sim, fast):
    fast["CONVERSATION_INTERVAL_S"] = 1.0
    pacing.pacer().reset(world.account.pk)
    first = services.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                  message_type="text", content={"text": "one"})
    first.refresh_from_db()
    assert first.status == TaskStatus.COMPLETED
    task = services.create_task(world.admin, account=world.account, message_type="text", content="two",
                                receivers=world.contacts[:3])
    a, b, c = task.receivers.order_by("id")
    assert b.send_status == c.send_status == RS.SUCCESS  # other conversations are not held up
    assert a.send_status == RS.PENDING and a.retry_count == 0 and a.error_code is None
    assert a.send_time > timezone.now()  # due when its conversation is free again
    import time

    time.sleep(max(0.0, (a.send_time - timezone.now()).total_seconds()) + 0.1)
    services.kick()
    a.refresh_from_db()
    task.refresh_from_db()
    assert a.send_status == RS.SUCCESS and task.status == TaskStatus.COMPLETED and task.success_count == 3
    to_a = sorted(m["due"] for m in sim.messages.values() if m["request"]["conversation_id"] == world.contacts[0])
    assert len(to_a) == 2 and to_a[1] - to_a[0] >= 0.95


def test_messages_to_one_conversation_go_in_the_order_they_were_made(world, sim, fast):
    """The newer task's dispatcher runs first (two workers, or the order Celery picked them):
    its message to the contact waits for the older task's."""
    import time

    fast["CONVERSATION_INTERVAL_S"] = 0.2
    pacing.pacer().reset(world.account.pk)
    older = services.create_task(world.admin, account=world.account, message_type="text", content="first",
                                 receivers=world.contacts[:1], start=False)
    newer = services.create_task(world.admin, account=world.account, message_type="text", content="second",
                                 receivers=world.contacts[:2], start=False)
    MessageTask.objects.filter(pk__in=[older.pk, newer.pk]).update(status=TaskStatus.RUNNING)
    dispatch.run(newer.pk)
    to_first = newer.receivers.get(receiver_wxid=world.contacts[0])
    assert to_first.send_status == RS.PENDING and to_first.retry_count == 0  # waits, no retry used
    assert newer.receivers.get(receiver_wxid=world.contacts[1]).send_status == RS.SUCCESS  # others go
    dispatch.run(older.pk)
    time.sleep(max(0.0, (to_first.send_time - timezone.now()).total_seconds()) + 0.1)
    dispatch.run(newer.pk)
    newer.refresh_from_db()
    assert newer.status == TaskStatus.COMPLETED and newer.success_count == 2
    to_contact = sorted((m["due"], m["request"]["content"]["text"]) for m in sim.messages.values()
                        if m["request"]["conversation_id"] == world.contacts[0])
    assert [text for _due, text in to_contact] == ["first", "second"]
