"""API and admin: every model listed, send/task endpoints with their actions, permission checks."""
import pytest
from django.urls import reverse

from messaging.models import MessageTask, MessageTemplate, TaskStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(world, client):
    from accounts.tests.helpers import login_verified

    login_verified(client, world.admin)
    return client


@pytest.fixture
def operator(world, django_user_model):
    """A user with messaging rights on the world's instance only (an object grant)."""
    from accounts.services.permissions import grant_instance

    user = django_user_model.objects.create_user("operator", "op@example.com", "pw-operator-123")
    grant_instance(user, world.instance, ["messaging.send_message", "messaging.view_messagetask",
                                          "messaging.view_message", "messaging.manage_task",
                                          "messaging.view_messagereceiver"], granted_by=world.admin)
    return user


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user("outsider", "o@example.com", "pw-outsider-123")


def test_send_endpoint_and_lists(api, world, sim):
    r = api.post("/api/v1/messaging/messages/send/", {
        "account": world.account.pk, "receiver_wxid": world.contacts[0], "message_type": "text",
        "content": "hello from the API"}, content_type="application/json")
    assert r.status_code == 201, r.content
    task_id = r.json()["id"]
    assert api.get(f"/api/v1/messaging/tasks/{task_id}/").json()["status"] == TaskStatus.COMPLETED
    msgs = api.get("/api/v1/messaging/messages/").json()
    assert len(msgs["results"]) == 1 and msgs["results"][0]["content"] == {"text": "hello from the API"}
    mid = msgs["results"][0]["id"]
    assert api.get(f"/api/v1/messaging/messages/{mid}/").status_code == 200
    assert api.get("/api/v1/messaging/receivers/", {"task": task_id}).json()["count"] == 1
    prog = api.get(f"/api/v1/messaging/tasks/{task_id}/progress/").json()
    assert prog["progress"] == 100.0 and prog["success_count"] == 1


@pytest.mark.parametrize("payload,field", [
    ({"receiver_wxid": "nobody", "message_type": "text", "content": "x"}, "receivers"),
    ({"receiver_wxid": "c", "message_type": "text", "content": "x" * 3000}, "content"),
    ({"receiver_wxid": "c", "message_type": "nope", "content": "x"}, "message_type"),
])
def test_send_bad_input_is_400(api, world, payload, field):
    payload = {"account": world.account.pk, **payload}
    if payload["receiver_wxid"] == "c":
        payload["receiver_wxid"] = world.contacts[0]
    r = api.post("/api/v1/messaging/messages/send/", payload, content_type="application/json")
    assert r.status_code == 400 and field in r.json(), r.content


def test_unknown_account_is_400(api):
    r = api.post("/api/v1/messaging/messages/send/", {"account": 987654, "receiver_wxid": "x",
                                                       "message_type": "text", "content": "x"},
                 content_type="application/json")
    assert r.status_code == 400 and "account" in r.json()


def test_task_create_actions_and_limits(api, world, sim, settings):
    r = api.post("/api/v1/messaging/tasks/", {
        "account": world.account.pk, "task_name": "b", "message_type": "text", "content": "hi {{ receiver_name }}",
        "filters": {"source": "groups"}}, content_type="application/json")
    assert r.status_code == 201, r.content
    tid = r.json()["id"]
    assert r.json()["target_count"] == len(world.rooms)
    assert api.post(f"/api/v1/messaging/tasks/{tid}/pause/").status_code == 400  # already completed
    assert api.post(f"/api/v1/messaging/tasks/{tid}/resend-failed/").status_code == 400
    r = api.post("/api/v1/messaging/tasks/", {"account": world.account.pk, "message_type": "text", "content": "x",
                                             "receivers": []}, content_type="application/json")
    assert r.status_code == 400 and "receivers" in r.json()
    big = [{"wxid": f"w{i}"} for i in range(100_001)]
    r = api.post("/api/v1/messaging/tasks/", {"account": world.account.pk, "message_type": "text", "content": "x",
                                             "receivers": big}, content_type="application/json")
    assert r.status_code == 400 and "limit" in str(r.json())
    assert MessageTask.objects.count() == 1


def test_templates_crud_and_preview(api, world):
    r = api.post("/api/v1/messaging/templates/", {
        "name": "Greeting", "message_type": "text", "content": "Dear {{ name }}", "variables": ["name"],
        "tags": ["a"], "category": "greet"}, content_type="application/json")
    assert r.status_code == 201, r.content
    tid = r.json()["id"]
    assert r.json()["variables"][0]["name"] == "name"
    p = api.post(f"/api/v1/messaging/templates/{tid}/preview/", {"values": {"name": "Li"}},
                 content_type="application/json")
    assert p.json()["text"] == "Dear Li"
    bad = api.post("/api/v1/messaging/templates/", {"name": "B", "message_type": "text", "content": "{{ a.b }}"},
                   content_type="application/json")
    assert bad.status_code == 400 and "content" in bad.json()
    undeclared = api.patch(f"/api/v1/messaging/templates/{tid}/", {"content": "{{ other }}"},
                           content_type="application/json")
    assert undeclared.status_code == 400
    assert api.get("/api/v1/messaging/templates/", {"tag": "a"}).json()["count"] == 1
    assert api.delete(f"/api/v1/messaging/templates/{tid}/").status_code == 204
    assert MessageTemplate.all_objects.get(pk=tid).deleted_at is not None


def test_outsider_sees_nothing_and_cannot_send(client, outsider, world):
    client.force_login(outsider)
    for url in ("/api/v1/messaging/tasks/", "/api/v1/messaging/templates/", "/api/v1/messaging/receivers/",
                "/api/v1/messaging/messages/"):
        assert client.get(url).status_code == 403, url
    r = client.post("/api/v1/messaging/messages/send/", {"account": world.account.pk, "receiver_wxid": "x",
                                                          "message_type": "text", "content": "x"},
                    content_type="application/json")
    assert r.status_code == 403


def test_admin_pages_render(api, world, sim):
    from messaging import services

    task = services.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                 message_type="text", content="x")
    for name in ("message", "messagetask", "messagereceiver", "messagetemplate"):
        r = api.get(reverse(f"admin:messaging_{name}_changelist"))
        assert r.status_code == 200, name
    assert api.get(reverse("admin:messaging_messagetask_change", args=[task.pk])).status_code == 200
    mid = task.receivers.get().message_id
    assert api.get(reverse("admin:messaging_message_change", args=[mid])).status_code == 200
    assert api.get(reverse("admin:messaging_messagetemplate_add")).status_code == 200


def test_operator_scoped_to_granted_instance(client, operator, world, sim, django_user_model):
    from contacts.models import WeworkAccount
    from instances.models import WeworkInstance
    from messaging import services

    other_instance = WeworkInstance.objects.create(instance_uuid="x", name="other", created_by=world.admin)
    other_account = WeworkAccount.objects.create(instance=other_instance, wxid="wxid_other", status=1,
                                                 is_logged_in=True)
    mine = services.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                 message_type="text", content="x")
    client.force_login(operator)
    ids = [t["id"] for t in client.get("/api/v1/messaging/tasks/").json()["results"]]
    assert ids == [mine.pk]
    r = client.post("/api/v1/messaging/messages/send/", {"account": other_account.pk, "receiver_wxid": "x",
                                                          "message_type": "text", "content": "x"},
                    content_type="application/json")
    assert r.status_code == 403
    r = client.post("/api/v1/messaging/messages/send/", {"account": world.account.pk,
                                                          "receiver_wxid": world.contacts[1],
                                                          "message_type": "text", "content": "x"},
                    content_type="application/json")
    assert r.status_code == 201, r.content
    # broadcasts need send_broadcast, which the operator lacks
    r = client.post("/api/v1/messaging/tasks/", {"account": world.account.pk, "message_type": "text",
                                                "content": "x", "receivers": [{"wxid": world.contacts[2]},
                                                                              {"wxid": world.contacts[3]}]},
                    content_type="application/json")
    assert r.status_code == 403


def test_openapi_schema_documents_messaging(api):
    r = api.get("/api/schema/")
    assert r.status_code == 200
    body = r.content.decode()
    for path in ("/api/v1/messaging/messages/send/", "/api/v1/messaging/tasks/{id}/pause/",
                 "/api/v1/messaging/templates/{id}/preview/", "/api/v1/messaging/messages/"):
        assert path in body, path


def test_failed_receivers_carry_a_reason_in_the_request_language(api, world):
    from instances.exceptions import USER_MESSAGES
    from messaging import services
    from messaging.models import MessageReceiver, ReceiverSendStatus as RS

    task = services.create_task(world.admin, account=world.account, message_type="text", content="x",
                                receivers=world.contacts[:1], start=False)
    MessageReceiver.objects.filter(task=task).update(send_status=RS.FAILED, error_code="target_not_found",
                                                     error_message="conversation_id: no contact x.")
    body = api.get(f"/api/v1/messaging/tasks/{task.pk}/failed/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    (row,) = body["results"]
    from django.utils import translation

    with translation.override("zh-hans"):
        sentence = str(USER_MESSAGES["target_not_found"])
    assert row["error_message"] == "conversation_id: no contact x."
    assert row["failure_reason"].startswith(sentence) and "conversation_id: no contact x." in row["failure_reason"]
