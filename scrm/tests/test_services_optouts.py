"""Opt-outs through the services, driven by the simulator's inbound messages."""
import pytest
from django.db import transaction

from instances.models import EventState, InstanceEvent
from messaging.errors import MessagingInvalid
from messaging.models import MessageReceiver, MessageTask, TaskType
from messaging.services import sending
from messaging.services.requests import TaskRequest
from scrm.errors import ScrmInvalid
from scrm.models import OptOut
from scrm.services import optouts

pytestmark = pytest.mark.django_db(transaction=True)


def _tasks_to(wxid):
    return MessageTask.objects.filter(pk__in=MessageReceiver.objects.filter(receiver_wxid=wxid).values("task_id"))


def test_td_reply_opts_out_and_confirms_once(world):
    wxid = world.contacts[0]
    world.deliver(world.sim.say(world.account.wxid, "TD"))
    row = OptOut.objects.get(account=world.account, contact_wxid=wxid)
    assert row.is_opted_out and row.keyword == "TD" and row.confirmation_task_id
    world.deliver(world.sim.say(world.account.wxid, " 退订！"))
    assert OptOut.objects.filter(contact_wxid=wxid).count() == 1
    assert _tasks_to(wxid).count() == 1  # confirmed once
    confirmation = _tasks_to(wxid).get()
    assert confirmation.task_type == TaskType.SINGLE


def test_ordinary_text_and_group_chats_do_not_opt_out(world):
    world.deliver(world.sim.say(world.account.wxid, "TD is a great idea"))
    world.deliver(world.sim.say(world.account.wxid, "TD", room_id=world.rooms[0]))
    assert not OptOut.objects.exists()


def test_opt_out_is_kept_when_the_message_handler_fails(world, monkeypatch):
    """Recorded before anything else: a failure of messaging's handler loses nothing."""
    from messaging import inbound

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(inbound, "_store", broken)
    event = world.sim.say(world.account.wxid, "退订")
    row = world.deliver(event)
    assert InstanceEvent.objects.get(pk=row.pk).state != EventState.DONE
    assert optouts.is_opted_out(world.account.pk, world.contacts[0])


def test_broadcast_leaves_out_opted_out_contacts(world):
    optouts.opt_out(world.account, world.contacts[1])
    task = sending.create_task(world.admin, TaskRequest(
        account=world.account, message_type="text", content={"text": "Sale"},
        receivers=world.contacts[:3], task_type=TaskType.BROADCAST), start=False)
    receivers = set(MessageReceiver.objects.filter(task=task).values_list("receiver_wxid", flat=True))
    assert receivers == {world.contacts[0], world.contacts[2]}
    with pytest.raises(MessagingInvalid) as exc:
        sending.create_task(world.admin, TaskRequest(
            account=world.account, message_type="text", content={"text": "Sale"},
            receivers=[world.contacts[1], world.contacts[1]], task_type=TaskType.BATCH), start=False)
    assert "opted out" in str(exc.value.fields["receivers"])


def test_opted_out_wxids_reads_few_opt_outs_at_once_and_many_by_chunks(world):
    """The same answer whether the account has fewer opt-outs than the wxids asked about (one
    read of them all) or more (IN queries by chunk): only this account's, only opted out."""
    account = world.account
    OptOut.objects.bulk_create([OptOut(account=account, contact_wxid=f"w{i}") for i in range(6)]
                               + [OptOut(account=account, contact_wxid="back", is_opted_out=False)])
    other = type(account).objects.create(instance=account.instance, wxid="other-account")
    OptOut.objects.create(account=other, contact_wxid="w-other")
    asked = ["w1", "w4", "back", "w-other", "nobody"]
    assert len(asked) < 6  # more opt-outs than wxids asked: chunked IN queries
    assert optouts.opted_out_wxids(account.pk, asked) == {"w1", "w4"}
    asked = [*asked, "x1", "x2", "x3"]
    assert len(asked) > 6  # fewer: one read of the account's opt-outs
    assert optouts.opted_out_wxids(account.pk, asked) == {"w1", "w4"}
    assert optouts.opted_out_wxids(account.pk, []) == set()
    assert optouts.opted_out_wxids(other.pk, asked) == {"w-other"}


def test_opt_in_again(world):
    row, changed = optouts.opt_out(world.account, world.contacts[2])
    assert changed
    assert optouts.opt_in(world.admin, [row]) == 1
    row.refresh_from_db()
    assert not row.is_opted_out and row.opted_in_at
    assert not optouts.is_opted_out(world.account.pk, world.contacts[2])
    # opting out again confirms again
    with transaction.atomic():
        _row, changed = optouts.opt_out(world.account, world.contacts[2], keyword="TD")
    assert changed


def test_opt_out_skips_a_running_broadcast(world):
    from messaging.models import ReceiverSendStatus

    task = sending.create_task(world.admin, TaskRequest(
        account=world.account, message_type="text", content={"text": "Sale"},
        receivers=world.contacts[:3], task_type=TaskType.BROADCAST), start=False)
    world.deliver(world.sim.say(world.account.wxid, "TD", world.contacts[1]))
    row = MessageReceiver.objects.get(task=task, receiver_wxid=world.contacts[1])
    assert row.send_status == ReceiverSendStatus.SKIPPED and row.error_code == "opted_out"
    assert MessageReceiver.objects.filter(task=task, send_status=ReceiverSendStatus.PENDING).count() == 2


@pytest.mark.parametrize("wxids,fragment", [
    (["nobody-xyz-2"], "1 are not contacts of this account: nobody-xyz-2"),
    ([1, 2], "WeCom ids (text)"),
    ([], "at least one contact"),
])
def test_an_operator_opts_out_only_the_accounts_contacts(world, wxids, fragment):
    with pytest.raises(ScrmInvalid) as exc:
        optouts.opt_out_by_operator(world.admin, world.account, [world.contacts[0], *wxids] if wxids else [])
    assert list(exc.value.fields) == ["contacts"] and fragment in exc.value.fields["contacts"][0]
    assert not OptOut.objects.exists()
    assert optouts.opt_out_by_operator(world.admin, world.account, [world.contacts[0], world.contacts[0]]) == 1
