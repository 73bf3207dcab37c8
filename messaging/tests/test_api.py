"""The messaging API: sends and tasks (the services' rules and permissions, their errors in the
API's shapes), task actions, messages by month, receivers, templates; scoping per instance."""
import pytest
from django.utils import translation

from contacts.models import WeworkAccount
from contacts.tests.factories import WeworkAccountFactory
from instances.exceptions import USER_MESSAGES
from instances.models import WeworkInstance
from messaging import permissions
from messaging.models import MessageReceiver, MessageTask, MessageTemplate, ReceiverSendStatus as RS, TaskStatus
from messaging.services import sending, templates
from messaging.tests.factories import MessageTaskFactory

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)

SEND = "/api/v1/messaging/messages/send/"
TASKS = "/api/v1/messaging/tasks/"


@pytest.fixture
def api(browser):
    return browser


def _post(client, url, data=None):
    return client.post(url, data or {}, content_type="application/json")


def test_send_endpoint_and_lists(api, world, sim):
    r = _post(api, SEND, {"account": world.account.pk, "receiver_wxid": world.contacts[0], "message_type": "text",
                          "content": "hello from the API"})
    assert r.status_code == 201, r.content
    task_id = r.json()["id"]
    assert api.get(f"{TASKS}{task_id}/").json()["status"] == TaskStatus.COMPLETED
    msgs = api.get("/api/v1/messaging/messages/").json()
    assert len(msgs["results"]) == 1 and msgs["results"][0]["content"] == {"text": "hello from the API"}
    mid = msgs["results"][0]["id"]
    assert api.get(f"/api/v1/messaging/messages/{mid}/").status_code == 200
    assert len(api.get("/api/v1/messaging/receivers/", {"task": task_id}).json()["results"]) == 1
    prog = api.get(f"{TASKS}{task_id}/progress/").json()
    assert prog["progress"] == 100.0 and prog["success_count"] == 1


@pytest.mark.parametrize("payload,field", [
    ({"receiver_wxid": "nobody", "message_type": "text", "content": "x"}, "receivers"),
    ({"receiver_wxid": "c", "message_type": "text", "content": "x" * 3000}, "content"),
    ({"receiver_wxid": "c", "message_type": "nope", "content": "x"}, "message_type"),
    ({"receiver_wxid": "c", "message_type": "text", "content": "hi", "at_members": "all"}, "at_members"),
    ({"account": 987654, "receiver_wxid": "x", "message_type": "text", "content": "x"}, "account"),
])
def test_send_bad_input_is_400_with_field_messages(api, world, payload, field):
    payload = {"account": world.account.pk, **payload}
    if payload["receiver_wxid"] == "c":
        payload["receiver_wxid"] = world.contacts[0]
    r = _post(api, SEND, payload)
    assert r.status_code == 400, r.content
    body = r.json()
    assert list(body) == [field] and all(isinstance(m, str) for m in body[field])
    assert not MessageTask.objects.exists()


def test_task_create_actions_and_limits(api, world, sim):
    r = _post(api, TASKS, {"account": world.account.pk, "task_name": "b", "message_type": "text",
                           "content": "hi {{ receiver_name }}", "filters": {"source": "groups"}})
    assert r.status_code == 201, r.content
    tid = r.json()["id"]
    assert r.json()["target_count"] == len(world.rooms)
    # refused by the task's state: 400, the sentence under "status"
    assert _post(api, f"{TASKS}{tid}/pause/").json() == {"status": ["Only pending or running tasks can be paused."]}
    assert _post(api, f"{TASKS}{tid}/resend-failed/").status_code == 400
    r = _post(api, TASKS, {"account": world.account.pk, "message_type": "text", "content": "x", "receivers": []})
    assert r.status_code == 400 and "receivers" in r.json()
    big = [{"wxid": f"w{i}"} for i in range(100_001)]
    r = _post(api, TASKS, {"account": world.account.pk, "message_type": "text", "content": "x", "receivers": big})
    assert r.status_code == 400 and "limit" in r.json()["receivers"][0]
    assert MessageTask.objects.count() == 1


def test_unknown_members_are_named(api, world):
    r = _post(api, TASKS, {"account": world.account.pk, "message_type": "text", "content": {"text": "hi"},
                           "receivers": [{"wxid": world.rooms[0], "type": "group"}], "at_members": ["wxid_nobody"]})
    assert r.status_code == 400 and "wxid_nobody" in r.json()["at_members"][0]


def test_templates_crud_and_preview(api, world):
    r = _post(api, "/api/v1/messaging/templates/", {"name": "Greeting", "message_type": "text",
                                                    "content": "Dear {{ name }}", "variables": ["name"],
                                                    "tags": ["a"], "category": "greet"})
    assert r.status_code == 201, r.content
    tid = r.json()["id"]
    assert r.json()["variables"][0]["name"] == "name"
    p = _post(api, f"/api/v1/messaging/templates/{tid}/preview/", {"values": {"name": "Li"}})
    assert p.json()["text"] == "Dear Li"
    bad = _post(api, "/api/v1/messaging/templates/", {"name": "B", "message_type": "text", "content": "{{ a.b }}"})
    assert bad.status_code == 400 and list(bad.json()) == ["content"]
    undeclared = api.patch(f"/api/v1/messaging/templates/{tid}/", {"content": "{{ other }}"},
                           content_type="application/json")
    assert undeclared.status_code == 400 and "Undeclared" in undeclared.json()["content"][0]
    assert len(api.get("/api/v1/messaging/templates/", {"tag": "a"}).json()["results"]) == 1
    assert api.delete(f"/api/v1/messaging/templates/{tid}/").status_code == 204
    assert MessageTemplate.all_objects.get(pk=tid).deleted_at is not None


def test_outsider_sees_nothing_and_cannot_send(client, outsider, world):
    client.force_login(outsider)
    for url in (TASKS, "/api/v1/messaging/templates/", "/api/v1/messaging/receivers/",
                "/api/v1/messaging/messages/"):
        assert client.get(url).status_code == 403, url
    r = _post(client, SEND, {"account": world.account.pk, "receiver_wxid": "x", "message_type": "text",
                             "content": "x"})
    assert r.status_code == 403


def test_operator_scoped_to_granted_instance(client, make_operator, world, sim):
    operator = make_operator(permissions.SEND_MESSAGE, permissions.VIEW_TASK, "messaging.view_message",
                             permissions.MANAGE_TASK, "messaging.view_messagereceiver")
    other_instance = WeworkInstance.objects.create(instance_uuid="x", name="other", created_by=world.admin)
    other_account = WeworkAccount.objects.create(instance=other_instance, wxid="wxid_other", status=1,
                                                 is_logged_in=True)
    mine = sending.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                message_type="text", content="x")
    client.force_login(operator)
    assert [t["id"] for t in client.get(TASKS).json()["results"]] == [mine.pk]
    r = _post(client, SEND, {"account": other_account.pk, "receiver_wxid": "x", "message_type": "text",
                             "content": "x"})
    assert r.status_code == 403 and r.json() == {"detail": "You may not send from this account.",
                                                 "code": "permission_denied"}
    r = _post(client, SEND, {"account": world.account.pk, "receiver_wxid": world.contacts[1], "message_type": "text",
                             "content": "x"})
    assert r.status_code == 201, r.content
    # broadcasts need send_broadcast, which the operator lacks: the service's sentence
    r = _post(client, TASKS, {"account": world.account.pk, "message_type": "text", "content": "x",
                              "receivers": [{"wxid": world.contacts[2]}, {"wxid": world.contacts[3]}]})
    assert r.status_code == 403 and "broadcast permission" in r.json()["detail"]


def test_managing_needs_the_manage_permission(client, make_operator, world):
    viewer = make_operator(permissions.VIEW_TASK, permissions.SEND_MESSAGE, username="viewer")
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:1], start=False)
    client.force_login(viewer)
    assert _post(client, f"{TASKS}{task.pk}/pause/").status_code == 403
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING


def test_404_names_the_model_in_the_users_language(client, world, sim, make_operator, browser):
    operator = make_operator(permissions.SEND_MESSAGE, permissions.VIEW_TASK, permissions.MANAGE_TASK)
    hidden = MessageTaskFactory(account=WeworkAccountFactory())  # on an instance the operator has no grant on
    client.force_login(operator)
    missing = client.get(f"{TASKS}999999/")
    outside = client.get(f"{TASKS}{hidden.pk}/")
    assert missing.status_code == outside.status_code == 404
    # an object outside the user's scope reads exactly like a missing one
    assert missing.json() == outside.json() == {"detail": "No such message task."}
    assert _post(client, f"{TASKS}{hidden.pk}/pause/").json() == {"detail": "No such message task."}
    assert client.get(f"{TASKS}999999/", HTTP_ACCEPT_LANGUAGE="zh-hans").json() == {"detail": "未找到该群发任务。"}


def test_resume_body_is_validated_and_documented(api, world):
    task = make_task(world, message_type="text", content={"text": "x"}, receivers=[world.contacts[0]], start=False)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.PAUSED)
    bad = _post(api, f"{TASKS}{task.pk}/resume/", {"clear_stop": "maybe"})
    assert bad.status_code == 400 and "clear_stop" in bad.json()
    schema = api.get("/api/schema/", {"format": "json"}).json()
    body = schema["paths"]["/api/v1/messaging/tasks/{id}/resume/"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert schema["components"]["schemas"][ref]["properties"]["clear_stop"]["type"] == "boolean"


def test_openapi_schema_documents_messaging_and_its_bounds(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()
    for path in ("/api/v1/messaging/messages/send/", "/api/v1/messaging/tasks/{id}/pause/",
                 "/api/v1/messaging/templates/{id}/preview/", "/api/v1/messaging/messages/"):
        assert path in schema["paths"], path
    create = schema["components"]["schemas"]["TaskCreateRequest"]["properties"]
    assert (create["send_interval"]["minimum"], create["send_interval"]["maximum"]) == (0, 3600)


def test_operator_reads_the_templates_compose_offers(client, world, make_operator, outsider):
    operator = make_operator(permissions.SEND_MESSAGE, permissions.VIEW_TASK, permissions.MANAGE_TASK)
    offered = templates.save_template(world.admin, {"name": "Hi", "message_type": "text",
                                                    "content": "Hi {{ who }}", "variables": ["who"]})
    disabled = templates.save_template(world.admin, {"name": "Old", "message_type": "text", "content": "x",
                                                     "status": 0})
    client.force_login(operator)
    listed = client.get("/api/v1/messaging/templates/")
    assert listed.status_code == 200, listed.content
    assert [t["id"] for t in listed.json()["results"]] == [offered.pk]
    assert client.get(f"/api/v1/messaging/templates/{offered.pk}/").status_code == 200
    assert client.get(f"/api/v1/messaging/templates/{disabled.pk}/").status_code == 404
    preview = _post(client, f"/api/v1/messaging/templates/{offered.pk}/preview/", {"values": {"who": "Wang"}})
    assert preview.status_code == 200 and "Hi Wang" in str(preview.json())
    # writes are not widened
    assert _post(client, "/api/v1/messaging/templates/", {"name": "New", "message_type": "text",
                                                          "content": "y"}).status_code == 403
    assert client.patch(f"/api/v1/messaging/templates/{offered.pk}/", {"name": "Renamed"},
                        content_type="application/json").status_code in (403, 404)
    assert client.delete(f"/api/v1/messaging/templates/{offered.pk}/").status_code in (403, 404)
    # a user who may not compose reads none
    client.force_login(outsider)
    assert client.get("/api/v1/messaging/templates/").status_code == 403
    assert client.get(f"/api/v1/messaging/templates/{offered.pk}/").status_code == 403


def test_failed_receivers_carry_a_reason_in_the_request_language(api, world):
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:1], start=False)
    MessageReceiver.objects.filter(task=task).update(send_status=RS.FAILED, error_code="target_not_found",
                                                     error_message="conversation_id: no contact x.")
    body = api.get(f"{TASKS}{task.pk}/failed/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    (row,) = body["results"]
    with translation.override("zh-hans"):
        sentence = str(USER_MESSAGES["target_not_found"])
    assert row["error_message"] == "conversation_id: no contact x."
    assert row["failure_reason"].startswith(sentence) and "conversation_id: no contact x." in row["failure_reason"]


@pytest.mark.parametrize("message_type,content,named", [
    ("link", {"url": "http://x", "title": ["a"]}, "content.title"),
    ("link", {"url": "http://x", "title": "t", "desc": {"a": 1}}, "content.desc"),
    ("location", {"latitude": 1, "longitude": 2, "title": [1]}, "content.title"),
    ("location", {"latitude": 1, "longitude": 2, "address": {"a": 1}}, "content.address"),
    ("card", {"contact_id": {"a": 1}}, "content.contact_id"),
    ("card", {"contact_id": "nobody-xyz"}, "nobody-xyz"),
    ("file", {"url": "http://x/f", "filename": 7}, "content.filename"),
    ("text", {"text": "a\u0000b"}, "content.text"),
])
def test_task_content_of_the_wrong_type_is_400_naming_the_field(api, world, message_type, content, named):
    r = _post(api, TASKS, {"account": world.account.pk, "task_type": "batch", "message_type": message_type,
                           "content": content, "receivers": [{"wxid": world.contacts[0]}]})
    assert r.status_code == 400, r.content
    assert list(r.json()) == ["content"] and named in r.json()["content"][0]
    assert not MessageTask.objects.exists()


def test_send_content_of_the_wrong_type_is_400_and_only_checked_content_is_stored(api, world, sim):
    r = _post(api, SEND, {"account": world.account.pk, "receiver_wxid": world.contacts[0], "message_type": "link",
                          "content": {"url": "http://x", "title": {"a": 1}}})
    assert r.status_code == 400 and "content.title" in r.json()["content"][0]
    assert not MessageTask.objects.exists()
    r = _post(api, SEND, {"account": world.account.pk, "receiver_wxid": world.contacts[0], "message_type": "card",
                          "content": {"contact_id": world.contacts[1]}})
    assert r.status_code == 201, r.content
    r = _post(api, SEND, {"account": world.account.pk, "receiver_wxid": world.contacts[0], "message_type": "location",
                          "content": {"latitude": "31.2", "longitude": "121.5", "title": "HQ", "address": ""}})
    assert r.status_code == 201, r.content
    assert MessageTask.objects.get(pk=r.json()["id"]).message_content == (
        '{"latitude": 31.2, "longitude": 121.5, "title": "HQ"}')


@pytest.mark.parametrize("data,field", [
    ({"message_type": "link", "content": {"url": "http://x", "title": [1, 2]}}, "content"),
    ({"message_type": "text", "content": "a\u0000b"}, "content"),
    ({"message_type": "text", "content": "hi", "thumbnail_url": "javascript:alert(1)"}, "thumbnail_url"),
    ({"message_type": "text", "content": "hi {{ a }}", "variables": {"a": {"b": [1]}}}, "variables"),
    ({"message_type": "text", "content": "hi", "variables": [{"name": "a", "label": ["x"]}]}, "variables"),
    ({"message_type": "text", "content": "x" * 2_000_000}, "content"),
])
def test_template_bad_input_is_400_under_its_field(api, world, data, field):
    r = _post(api, "/api/v1/messaging/templates/", {"name": "T", **data})
    assert r.status_code == 400, r.content[:500]
    assert list(r.json()) == [field]
    assert not MessageTemplate.objects.exists()


def test_template_thumbnail_may_be_an_http_url(api, world):
    r = _post(api, "/api/v1/messaging/templates/", {"name": "T", "message_type": "text", "content": "hi",
                                                    "thumbnail_url": "https://example.com/t.png"})
    assert r.status_code == 201, r.content


@pytest.mark.parametrize("when,status", [
    ("2000-01-01T00:00:00Z", 400),
    ("2999-01-01T00:00:00Z", 400),
    ("past-minute", 201),
    ("in-30-days", 201),
])
def test_scheduled_time_is_within_the_grace_and_the_horizon(api, world, when, status):
    from datetime import timedelta

    from django.utils import timezone

    offsets = {"past-minute": timedelta(minutes=-1), "in-30-days": timedelta(days=30)}
    if when in offsets:
        when = (timezone.now() + offsets[when]).isoformat()
    r = _post(api, SEND, {"account": world.account.pk, "receiver_wxid": world.contacts[0], "message_type": "text",
                          "content": "hi", "scheduled_time": when})
    assert r.status_code == status, r.content
    if status == 400:
        assert list(r.json()) == ["scheduled_time"]
