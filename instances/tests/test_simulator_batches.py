"""The simulator pushes its backlog in batches (protocol 1.2) when the platform announces
``webhook_batch_max``, and one event a request when it does not; against the real platform
(live server) and against a recording receiver."""
import pytest

from instances import protocol, services
from instances.models import InstanceEvent
from simulator.testing import WebhookReceiver, wait_until
from wework.testing.databases import needs_file_database
from wework.testing.instances import SECRET, TOKEN


def _register_with_backlog(make_sim, admin_user, backlog):
    sim = make_sim(heartbeat_interval_s=3600, chatter_per_min=0, history_on_login=0)
    sim.chatter(backlog)  # emitted before any webhook is configured: a backlog
    assert sim.last_seq > backlog // 2
    result = services.register_instance(name="sim", api_url=sim.url, token=TOKEN,
                                        webhook_secret=SECRET, max_accounts=5,
                                        created_by=admin_user)
    assert result.pushed, result.push_error
    return sim, result.instance


def _stored_seqs(instance):
    return sorted(InstanceEvent.objects.filter(instance=instance).values_list("seq", flat=True))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("batch_max", [20, 1], ids=["announced", "not announced"])
def test_the_simulator_pushes_its_backlog_to_the_platform(live_server, settings, make_sim,
                                                          admin_user, batch_max):
    needs_file_database()
    settings.PLATFORM_BASE_URL = live_server.url
    settings.INSTANCE_WEBHOOK_BATCH_MAX = batch_max
    sim, instance = _register_with_backlog(make_sim, admin_user, 45)
    assert sim.config["webhook_batch_max"] == (batch_max if batch_max > 1 else None)
    assert wait_until(lambda: len(_stored_seqs(instance)) >= sim.last_seq, timeout=20)
    assert _stored_seqs(instance) == list(range(1, sim.last_seq + 1))  # each once, no gap
    # the simulator counts a delivery once its answer is back: wait for it to count them all
    assert wait_until(lambda: sim.stats()["events"].get("delivered", 0) >= sim.last_seq)
    stats = sim.stats()["events"]
    assert stats.get("refused", 0) == 0 and stats.get("batches_split", 0) == 0
    if batch_max > 1:
        # 45+ events in batches of at most 20: a few requests, not one per event
        assert stats["batches"] >= 2
        assert stats["attempts"] < sim.last_seq / 2
    else:
        assert stats.get("batches", 0) == 0
        assert stats["attempts"] >= stats["delivered"]  # one request per event


def test_batches_are_signed_ordered_and_bounded(make_sim):
    with WebhookReceiver(only_instance="sim-batches") as receiver:
        sim = make_sim(instance_id="sim-batches", chatter_per_min=0, heartbeat_interval_s=3600)
        sim.chatter(30)
        sim.config["webhook_batch_max"] = 8
        sim.config["webhook_secret"] = SECRET
        with sim.event_cond:
            sim.config["webhook_url"] = receiver.url
            sim.event_cond.notify_all()
        assert receiver.wait_for(lambda r: len(r.accepted_events()) >= sim.last_seq, timeout=10)
    events = receiver.accepted_events()
    assert [e["seq"] for e in events] == list(range(1, sim.last_seq + 1))
    batches = [d for d in receiver.deliveries if len(d.events) > 1]
    assert batches and all(len(d.events) <= 8 for d in receiver.deliveries)
    for d in batches:
        assert d.signature_ok(SECRET)  # over the whole raw body
        assert d.headers[protocol.EVENT_ID_HEADER] == d.events[0]["event_id"]
        assert d.headers[protocol.SEQ_HEADER] == str(d.events[0]["seq"])
        assert d.headers[protocol.EVENT_COUNT_HEADER] == str(len(d.events))
        assert all(protocol.event_errors(e) == [] for e in d.events)


def test_a_refused_batch_is_pushed_again_one_event_at_a_time(make_sim):
    """A platform that answers a batch with 400 (too many, batches not accepted) still gets
    every event: the simulator splits the batch."""
    with WebhookReceiver(statuses=[400], only_instance="sim-split") as receiver:
        sim = make_sim(instance_id="sim-split", chatter_per_min=0, heartbeat_interval_s=3600)
        sim.chatter(5)
        sim.config["webhook_batch_max"] = 50
        sim.config["webhook_secret"] = SECRET
        with sim.event_cond:
            sim.config["webhook_url"] = receiver.url
            sim.event_cond.notify_all()
        assert receiver.wait_for(lambda r: len(r.accepted_events()) >= sim.last_seq, timeout=10)
    assert len(receiver.deliveries[0].events) == sim.last_seq  # the refused batch
    assert all(len(d.events) == 1 for d in receiver.deliveries[1:])
    assert [e["seq"] for e in receiver.accepted_events()] == list(range(1, sim.last_seq + 1))
    assert sim.stats()["events"]["batches_split"] == 1


@pytest.mark.django_db(transaction=True)
def test_a_runtime_older_than_revision_1_2_is_not_sent_the_batch_size(live_server, settings,
                                                                       make_sim, admin_user,
                                                                       monkeypatch):
    """Runtimes refuse unknown configuration keys (PUT /v1/config): the platform announces
    `webhook_batch_max` only to one whose capabilities list revision 1.2 or later, and a 1.1
    runtime is configured as before and sent single events."""
    settings.PLATFORM_BASE_URL = live_server.url
    settings.INSTANCE_WEBHOOK_BATCH_MAX = 20
    pushed = []
    real_push = services.commands._call

    def spy(instance, command, *args, **kwargs):
        if command == "capabilities":
            return dict(real_push(instance, command, *args, **kwargs), protocol_versions=["1.1"])
        if command == "push_config":
            pushed.append(kwargs)
        return real_push(instance, command, *args, **kwargs)

    monkeypatch.setattr(services.commands, "_call", spy)
    sim, instance = _register_with_backlog(make_sim, admin_user, 10)
    assert pushed and all(payload.get("webhook_batch_max") is None for payload in pushed)
    assert sim.config["webhook_batch_max"] is None
    assert wait_until(lambda: len(_stored_seqs(instance)) >= sim.last_seq, timeout=20)
    assert sim.stats()["events"].get("batches", 0) == 0


def test_revision_1_2_or_later_takes_webhook_batches():
    assert services.commands.takes_webhook_batches({"protocol_versions": ["1.2"]})
    assert services.commands.takes_webhook_batches({"protocol_versions": ["1.1", "1.10"]})
    assert services.commands.takes_webhook_batches({"protocol_versions": ["2.0"]})
    assert not services.commands.takes_webhook_batches({"protocol_versions": ["1.1"]})
    assert not services.commands.takes_webhook_batches({"protocol_versions": ["x", "1"]})
    assert not services.commands.takes_webhook_batches({})
