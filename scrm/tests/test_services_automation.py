"""Welcome messages, keyword auto-replies and sensitive words through the services, driven by the
simulator's `contact.added`, `room.member_joined` and inbound messages."""
import pytest

from messaging.errors import MessagingInvalid
from messaging.models import MessageReceiver, MessageTask, MessageTemplate
from messaging.services import sending, templates
from messaging.services.requests import TaskRequest
from scrm.models import AutoReply, SensitiveWord, WelcomeMessage, WelcomeSent
from scrm.services import optouts

pytestmark = pytest.mark.django_db(transaction=True)


def _sent_to(wxid):
    return list(MessageTask.objects.filter(
        pk__in=MessageReceiver.objects.filter(receiver_wxid=wxid).values("task_id")).order_by("id"))


def test_welcome_once_per_new_contact(world):
    WelcomeMessage.objects.create(account=world.account, content="Welcome, {{receiver_name}}!",
                                  created_by=world.admin)
    world.sim.add_contact(world.account.wxid, name="新客户")
    event = world.sim.events[-1]
    wxid = event["data"]["contact"]["contact_id"]
    world.deliver(event)
    tasks = _sent_to(wxid)
    assert len(tasks) == 1 and tasks[0].message_content == "Welcome, {{receiver_name}}!"
    assert MessageReceiver.objects.get(task=tasks[0]).receiver_wxid == wxid
    # the same contact added again (or the event redelivered under a new id) is not welcomed twice
    world.deliver(dict(event, event_id=event["event_id"] + "x", seq=event["seq"] + 100))
    assert len(_sent_to(wxid)) == 1
    assert WelcomeSent.objects.get(target=wxid).task_id == tasks[0].pk


def test_no_welcome_without_a_rule_or_when_disabled(world):
    WelcomeMessage.objects.create(account=world.account, content="Hi", created_by=world.admin, is_enabled=False)
    world.sim.add_contact(world.account.wxid)
    event = world.sim.events[-1]
    world.deliver(event)
    assert not _sent_to(event["data"]["contact"]["contact_id"])


def test_group_welcome_on_join_mentions_the_new_member(world):
    WelcomeMessage.objects.create(account=world.account, kind="group", content="Welcome to the group",
                                  created_by=world.admin)
    event = world.sim.member_join(world.account.wxid, world.rooms[0], name="王五")
    member = event["data"]["members"][0]["member_id"]
    world.deliver(event)
    task = _sent_to(world.rooms[0])[0]
    assert task.template_variables["@mentions"] == [member]
    world.deliver(dict(event, event_id=event["event_id"] + "x", seq=event["seq"] + 100))
    assert len(_sent_to(world.rooms[0])) == 1


def test_auto_reply_exact_and_contains_rate_limited(world):
    AutoReply.objects.create(account=world.account, keyword="hours", match_type="exact", reply="9 to 6",
                             created_by=world.admin)
    AutoReply.objects.create(account=world.account, keyword="address", match_type="contains",
                             reply="1 Bund Road", created_by=world.admin)
    first, second = world.contacts[:2]
    world.deliver(world.sim.say(world.account.wxid, "Hours?"))
    assert [t.message_content for t in _sent_to(first)] == ["9 to 6"]
    world.deliver(world.sim.say(world.account.wxid, "what are your hours today"))  # not exact
    world.deliver(world.sim.say(world.account.wxid, "your address please"))  # within the interval
    assert len(_sent_to(first)) == 1
    world.deliver(world.sim.say(world.account.wxid, "address?", second))
    assert [t.message_content for t in _sent_to(second)] == ["1 Bund Road"]


def test_auto_reply_never_loops_nor_answers_opted_out(world, settings):
    settings.SCRM = {"AUTO_REPLY_INTERVAL_S": 0, "AUTO_REPLY_MAX_PER_HOUR": 2}
    AutoReply.objects.create(account=world.account, keyword="hi", match_type="contains", reply="hi there",
                             created_by=world.admin)
    first, second = world.contacts[:2]
    world.deliver(world.sim.say(world.account.wxid, "hi there"))  # our own reply echoed by a bot
    assert not _sent_to(first)
    for n in range(4):
        world.deliver(world.sim.say(world.account.wxid, f"hi {n}"))
    assert len(_sent_to(first)) == 2  # the hourly cap stops two bots talking
    optouts.opt_out(world.account, second)
    world.deliver(world.sim.say(world.account.wxid, "hi", second))
    assert len(_sent_to(second)) == 1  # the opt-out's confirmation only


def test_sensitive_words_refuse_tasks_and_templates(world):
    SensitiveWord.objects.create(word="加微信")
    SensitiveWord.objects.create(word="guaranteed")
    with pytest.raises(MessagingInvalid) as exc:
        sending.create_task(world.admin, TaskRequest(
            account=world.account, message_type="text", content={"text": "GUARANTEED returns, 加微信 now"},
            receivers=world.contacts[:1]))
    message = exc.value.fields["content"][0]
    assert "加微信" in message and "guaranteed" in message
    with pytest.raises(MessagingInvalid) as exc:
        templates.save_template(world.admin, {"name": "t", "message_type": "text",
                                              "content": '{"text": "加微信 for a gift"}'})
    assert "加微信" in exc.value.fields["content"][0]
    assert not MessageTask.objects.exists() and not MessageTemplate.objects.exists()
