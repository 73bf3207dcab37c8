"""The messaging FilterSets, as the API runs them: filters apply, a value a filter cannot use or
a parameter that is no filter of the list is a 400 naming it (also the month-sharded message
list, which runs its FilterSet by hand)."""
import pytest

from messaging.filtersets import MessageTaskFilterSet, MessageTemplateFilterSet
from messaging.models import MessageTask, MessageTemplate, TaskStatus
from messaging.services import sending, templates

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def test_task_filters(world):
    a = make_task(world, message_type="text", content="x", receivers=world.contacts[:1], start=False)
    b = make_task(world, message_type="text", content="x", receivers=world.contacts[:2], start=False)
    MessageTask.objects.filter(pk=b.pk).update(status=TaskStatus.PAUSED)
    qs = MessageTask.objects.all()
    assert list(MessageTaskFilterSet({"status": TaskStatus.PAUSED}, queryset=qs).qs) == [b]
    assert list(MessageTaskFilterSet({"task_type": "single"}, queryset=qs).qs) == [a]
    assert not MessageTaskFilterSet({"status": "paused"}, queryset=qs).is_valid()


def test_template_tag_filter_matches_whole_tags(world):
    tagged = templates.save_template(world.admin, {"name": "A", "message_type": "text", "content": "x",
                                                   "tags": ["vip", "新客"]})
    templates.save_template(world.admin, {"name": "B", "message_type": "text", "content": "x", "tags": ["vipx"]})
    qs = MessageTemplate.objects.all()
    assert list(MessageTemplateFilterSet({"tag": "vip"}, queryset=qs).qs) == [tagged]
    assert list(MessageTemplateFilterSet({"tag": "新客"}, queryset=qs).qs) == [tagged]


@pytest.mark.parametrize("url,params,key", [
    ("/api/v1/messaging/tasks/", {"stauts": "1"}, "stauts"),
    ("/api/v1/messaging/tasks/", {"status": "paused"}, "status"),
    ("/api/v1/messaging/receivers/", {"send_status": "9"}, "send_status"),
    ("/api/v1/messaging/templates/", {"nmae": "x"}, "nmae"),
    ("/api/v1/messaging/messages/", {"chat_typ": "1"}, "chat_typ"),
    ("/api/v1/messaging/messages/", {"created_after": "yesterday"}, "created_after"),
    ("/api/v1/messaging/messages/", {"month": "2026-1"}, "month"),
    ("/api/v1/messaging/messages/", {"after": "x"}, "after"),
    ("/api/v1/messaging/messages/", {"limit": "many"}, "limit"),
])
def test_bad_parameters_are_400_naming_them(browser, url, params, key):
    r = browser.get(url, params)
    assert r.status_code == 400 and key in r.json(), r.content


def test_message_list_filters_within_the_month(browser, world, sim):
    task = sending.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                message_type="text", content="x")
    sending.send_message(world.admin, account=world.account, receiver_wxid=world.rooms[0], receiver_type="group",
                         message_type="text", content="y")
    rows = browser.get("/api/v1/messaging/messages/", {"task_id": task.pk}).json()["results"]
    assert [r["task_id"] for r in rows] == [task.pk]
    rows = browser.get("/api/v1/messaging/messages/", {"chat_type": 2}).json()["results"]
    assert [r["chat_wxid"] for r in rows] == [world.rooms[0]]
    page = browser.get("/api/v1/messaging/messages/", {"limit": 1}).json()
    assert len(page["results"]) == 1 and page["next_after"]
    rest = browser.get("/api/v1/messaging/messages/", {"limit": 1, "after": page["next_after"]}).json()
    assert len(rest["results"]) == 1 and rest["next_after"] is None
    assert browser.get("/api/v1/messaging/messages/", {"month": "200001"}).json() == {"results": [],
                                                                                      "next_after": None}
