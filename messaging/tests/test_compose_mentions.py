"""Q2-10 (compose): @mentions checked at task creation against the platform's group members;
mentions (also "all") refused on a task without group receivers (F12); the account select's
blank choice reads like every other select."""
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from messaging import services
from messaging.models import MessageTask

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser(world, client):
    from accounts.tests.helpers import login_verified

    login_verified(client, world.admin)
    return client


def _create(world, receivers, at_members):
    return services.create_task(world.admin, account=world.account, message_type="text", content={"text": "hi"},
                                receivers=receivers, at_members=at_members, start=False)


def test_unknown_members_are_named_at_creation(world):
    room = world.rooms[0]
    member = world.members[room][0]
    with pytest.raises(ValidationError) as err:
        _create(world, [{"wxid": room, "type": "group"}], [member, "wxid_not_member"])
    assert "wxid_not_member" in err.value.message_dict["at_members"][0]
    assert member not in err.value.message_dict["at_members"][0]
    # a member of one room but not of the other is named too
    other = next(m for m in world.members[world.rooms[1]] if m not in world.members[room])
    with pytest.raises(ValidationError) as err:
        _create(world, [{"wxid": room, "type": "group"}, {"wxid": world.rooms[1], "type": "group"}], [other])
    assert other in err.value.message_dict["at_members"][0]
    assert not MessageTask.objects.exists()
    # valid mentions keep working
    task = _create(world, [{"wxid": room, "type": "group"}], [member])
    assert task.template_variables[services.MENTIONS_KEY] == [member]


@pytest.mark.parametrize("mentions", ["all", ["wxid_x"]])
def test_mentions_without_group_receivers_are_refused(world, mentions):
    with pytest.raises(ValidationError) as err:
        _create(world, [{"wxid": world.contacts[0], "type": "contact"}], mentions)
    assert "group chat" in err.value.message_dict["at_members"][0]
    assert _create(world, [{"wxid": world.rooms[0], "type": "group"}], "all").pk


def test_api_answers_400_naming_the_unknown_members(browser, world):
    r = browser.post("/api/v1/messaging/tasks/", {
        "account": world.account.pk, "message_type": "text", "content": {"text": "hi"},
        "receivers": [{"wxid": world.rooms[0], "type": "group"}], "at_members": ["wxid_nobody"]},
        content_type="application/json")
    assert r.status_code == 400 and "wxid_nobody" in str(r.json()["at_members"])
    r = browser.post("/api/v1/messaging/messages/send/", {
        "account": world.account.pk, "receiver_wxid": world.contacts[0], "message_type": "text",
        "content": "hi", "at_members": "all"}, content_type="application/json")
    assert r.status_code == 400 and "at_members" in r.json()


def test_compose_form_error_and_blank_choice(browser, world):
    url = reverse("messaging:compose")
    page = browser.get(url)
    assert page.context["form"].fields["account"].choices[0] == ("", "- Select an option -")
    zh = browser.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "- 请选择 -" in zh.content.decode() and "---------" not in zh.content.decode()
    r = browser.post(url + f"?account={world.account.pk}", {
        "account": world.account.pk, "groups": [world.rooms[0]], "message_type": "text", "text": "hi",
        "priority": 2, "at_members": "wxid_nobody"})
    assert r.status_code == 200 and "wxid_nobody" in r.context["form"].errors["at_members"][0]
    r = browser.post(url + f"?account={world.account.pk}", {
        "account": world.account.pk, "contacts": [world.contacts[0]], "message_type": "text", "text": "hi",
        "priority": 2, "at_members": "all"})
    assert r.status_code == 200 and "at_members" in r.context["form"].errors
    assert not MessageTask.objects.exists()
