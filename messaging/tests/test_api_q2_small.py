"""Q2-10 (API): translated 404s naming the model, the resume body in the schema, templates
readable through the API by whoever may compose (the compose page's rule)."""
import pytest
from django.urls import reverse

from messaging import services
from messaging.models import TaskStatus, TemplateStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(world, django_user_model):
    """Access through an instance grant only (no role)."""
    from accounts.services.permissions import grant_instance

    user = django_user_model.objects.create_user("operator", "op@example.com", "pw-operator-123")
    grant_instance(user, world.instance, ["messaging.send_message", "messaging.view_messagetask",
                                          "messaging.manage_task"], granted_by=world.admin)
    return user


def _other_task(world, sim, django_user_model):
    """A task on a second instance the operator has no grant on."""
    from contacts.tests.factories import WeworkAccountFactory
    from messaging.tests.factories import MessageTaskFactory

    return MessageTaskFactory(account=WeworkAccountFactory())


def test_404_names_the_model_in_the_users_language(client, world, sim, operator, django_user_model):
    hidden = _other_task(world, sim, django_user_model)
    client.force_login(operator)
    missing = client.get("/api/v1/messaging/tasks/999999/")
    outside = client.get(f"/api/v1/messaging/tasks/{hidden.pk}/")
    assert missing.status_code == outside.status_code == 404
    # an object outside the user's scope reads exactly like a missing one
    assert missing.json() == outside.json() == {"detail": "No such message task."}
    assert client.post(f"/api/v1/messaging/tasks/{hidden.pk}/pause/").json() == {"detail": "No such message task."}
    zh = client.get("/api/v1/messaging/tasks/999999/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert zh.json() == {"detail": "未找到该群发任务。"}
    from accounts.tests.helpers import login_verified

    login_verified(client, world.admin)
    assert client.get("/api/v1/instances/999999/", HTTP_ACCEPT_LANGUAGE="zh-hans").json() == {
        "detail": "未找到该企业微信实例。"}
    assert client.get("/api/v1/wework-accounts/999999/").json() == {"detail": "No such WeCom account."}


def test_resume_body_is_validated_and_documented(client, world):
    from accounts.tests.helpers import login_verified

    task = services.create_task(world.admin, account=world.account, message_type="text",
                                content={"text": "x"}, receivers=[world.contacts[0]], start=False)
    task.status = TaskStatus.PAUSED
    task.save(update_fields=["status"])
    login_verified(client, world.admin)
    bad = client.post(f"/api/v1/messaging/tasks/{task.pk}/resume/", {"clear_stop": "maybe"},
                      content_type="application/json")
    assert bad.status_code == 400 and "clear_stop" in bad.json()
    schema = client.get("/api/schema/", {"format": "json"}).json()
    body = schema["paths"]["/api/v1/messaging/tasks/{id}/resume/"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert schema["components"]["schemas"][ref]["properties"]["clear_stop"]["type"] == "boolean"


def test_operator_reads_the_templates_compose_offers(client, world, operator, django_user_model):
    offered = services.save_template(world.admin, {"name": "Hi", "message_type": "text",
                                                   "content": "Hi {{ who }}", "variables": ["who"]})
    disabled = services.save_template(world.admin, {"name": "Old", "message_type": "text", "content": "x",
                                                    "status": TemplateStatus.DISABLED})
    client.force_login(operator)
    listed = client.get("/api/v1/messaging/templates/")
    assert listed.status_code == 200, listed.content
    assert [t["id"] for t in listed.json()["results"]] == [offered.pk]
    assert client.get(f"/api/v1/messaging/templates/{offered.pk}/").status_code == 200
    assert client.get(f"/api/v1/messaging/templates/{disabled.pk}/").status_code == 404
    preview = client.post(f"/api/v1/messaging/templates/{offered.pk}/preview/", {"values": {"who": "Wang"}},
                          content_type="application/json")
    assert preview.status_code == 200 and "Hi Wang" in str(preview.json())
    # writes are not widened
    assert client.post("/api/v1/messaging/templates/", {"name": "New", "message_type": "text", "content": "y"},
                       content_type="application/json").status_code == 403
    assert client.patch(f"/api/v1/messaging/templates/{offered.pk}/", {"name": "Renamed"},
                        content_type="application/json").status_code in (403, 404)
    assert client.delete(f"/api/v1/messaging/templates/{offered.pk}/").status_code in (403, 404)
    # a user who may not compose reads none
    outsider = django_user_model.objects.create_user("outsider", "o@example.com", "pw-outsider-123")
    client.force_login(outsider)
    assert client.get("/api/v1/messaging/templates/").status_code == 403
    assert client.get(f"/api/v1/messaging/templates/{offered.pk}/").status_code == 403
