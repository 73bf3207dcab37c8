"""Pages: compose (single and broadcast, the services' refusals on the form), task list and
detail with progress JSON, actions, template preview; who may see and do what."""
import uuid

import pytest
from django.template.defaultfilters import date as date_filter
from django.urls import reverse
from django.utils import timezone, translation

from wework.testing.fixtures import login_verified
from contacts.models import AccountStatus, WeworkAccount
from instances.exceptions import USER_MESSAGES
from instances.models import WeworkInstance
from messaging import permissions
from messaging.models import Message, MessageReceiver, MessageTask, ReceiverSendStatus as RS, TaskStatus
from messaging.services import templates
from wework import shards

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def test_compose_lists_account_contacts_and_sends_one(browser, world, sim):
    url = reverse("messaging:compose")
    page = browser.get(url, {"account": world.account.pk})
    assert page.status_code == 200
    body = page.content.decode()
    assert world.contacts[0] in body and world.rooms[0] in body
    # the account names its instance: one WeCom account may be logged in on two instances
    assert f"({world.account.wxid}, {world.instance.name}, " in body
    r = browser.post(url, {"account": world.account.pk, "contacts": [world.contacts[0]], "message_type": "text",
                           "text": "Hello {{ receiver_name }}", "priority": 2, "send_interval": 0})
    assert r.status_code == 302, r.content.decode()[:3000]
    task = MessageTask.objects.get()
    assert r["Location"] == reverse("messaging:task_detail", args=[task.pk])
    assert task.task_type == "single" and task.status == TaskStatus.COMPLETED
    # one receiver is one receiver (it read "Sent to 1 receivers")
    assert "Sent to 1 receiver: follow the progress below." in browser.get(r["Location"]).content.decode()


def test_compose_broadcast_to_picked_and_filtered(browser, world, sim):
    url = reverse("messaging:compose") + f"?account={world.account.pk}"
    r = browser.post(url, {"account": world.account.pk, "contacts": world.contacts[:2], "groups": [world.rooms[0]],
                           "message_type": "link", "title": "News", "url": "https://example.com/n",
                           "priority": 2, "confirmed": "1"})
    assert r.status_code == 302
    r = browser.post(url, {"account": world.account.pk, "use_filters": "on", "filter_source": "contacts",
                           "filter_tags": "lead", "message_type": "text", "text": "hi", "priority": 2,
                           "confirmed": "1"})
    assert r.status_code == 302
    t1, t2 = MessageTask.objects.order_by("id")
    assert t1.task_type == "broadcast" and t1.target_count == 3 and t1.success_count == 3
    assert t2.target_count == len(world.contacts) // 2


def test_a_broadcast_shows_its_audience_and_previews_and_waits_for_confirmation(browser, world, sim):
    url = reverse("messaging:compose") + f"?account={world.account.pk}"
    data = {"account": world.account.pk, "contacts": world.contacts[:3], "message_type": "text",
            "text": "Hi {{ receiver_name }}", "priority": 2}
    page = browser.post(url, data)
    assert page.status_code == 200 and not MessageTask.objects.exists()  # nothing sent yet
    body = page.content.decode()
    assert "<strong>3</strong>" in body and 'name="confirmed" value="1"' in body
    names = page.context["preview"].samples
    assert [s.content for s in names] == [f"Hi {s.name}" for s in names] and len(names) == 3
    # the confirmation posts the same message back, once
    posted = dict(page.context["posted"])
    assert posted["text"] == "Hi {{ receiver_name }}"
    r = browser.post(url, {**data, "confirmed": "1"})
    assert r.status_code == 302 and MessageTask.objects.get().target_count == 3


def test_a_broadcast_refused_by_the_service_shows_the_form_not_the_confirmation(browser, world):
    url = reverse("messaging:compose") + f"?account={world.account.pk}"
    r = browser.post(url, {"account": world.account.pk, "contacts": world.contacts[:2], "message_type": "text",
                           "text": "Hi {{ nope }}", "priority": 2})
    assert r.status_code == 200 and "form" in r.context and "preview" not in r.context
    assert "nope" in r.content.decode() and not MessageTask.objects.exists()


def test_reply_from_a_received_message_opens_compose_ready(browser, world, sim):
    received = shards.create(Message, account_id=world.account.pk, chat_type=1, chat_wxid=world.contacts[0],
                             message_type="text", message_content="有优惠吗？", send_status=2,
                             created_at=timezone.now())
    detail = browser.get(reverse("admin:messaging_message_change", args=[received.pk])).content.decode()
    link = f"{reverse('messaging:compose')}?account={world.account.pk}&amp;reply_to={received.pk}" \
           f"&amp;contacts={world.contacts[0]}"
    assert link in detail
    page = browser.get(link.replace("&amp;", "&"))
    form = page.context["form"]
    assert form.initial["reply_to"] == received.pk and form.initial["contacts"] == [world.contacts[0]]
    r = browser.post(reverse("messaging:compose"), {"account": world.account.pk, "contacts": [world.contacts[0]],
                                                    "message_type": "text", "text": "有的", "priority": 2,
                                                    "reply_to": received.pk})
    assert r.status_code == 302
    assert MessageTask.objects.get().task_type == "single"


def test_compose_errors_shown_on_the_form(browser, world):
    url = reverse("messaging:compose") + f"?account={world.account.pk}"
    r = browser.post(url, {"account": world.account.pk, "message_type": "text", "text": "hi", "priority": 2})
    assert r.status_code == 200 and "no receivers" in r.content.decode()
    r = browser.post(url, {"account": world.account.pk, "contacts": [world.contacts[0]], "message_type": "image",
                           "priority": 2})
    # the missing field is named on the field itself, in the user's words
    assert r.status_code == 200 and r.context["form"].errors["url"] == ["This field is required."]
    assert "url is required" not in r.content.decode()
    r = browser.post(url, {"account": world.account.pk, "contacts": [world.contacts[0]], "message_type": "text",
                           "text": "hi", "priority": 2, "scheduled_time": "2020-01-01T10:00"})
    assert r.status_code == 200 and "scheduled_time" in r.context["form"].errors
    assert not MessageTask.objects.exists()


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


def test_compose_shows_the_broadcast_permission_refusal(client, world, make_operator):
    operator = make_operator(permissions.SEND_MESSAGE, permissions.VIEW_TASK)
    login_verified(client, operator)
    url = reverse("messaging:compose") + f"?account={world.account.pk}"
    r = client.post(url, {"account": world.account.pk, "contacts": world.contacts[:2], "message_type": "text",
                          "text": "hi", "priority": 2})
    assert r.status_code == 200
    assert r.context["form"].non_field_errors() == [
        "You may send single messages only from this account; a broadcast needs the broadcast permission."]
    r = client.post(url, {"account": world.account.pk, "contacts": world.contacts[:1], "message_type": "text",
                          "text": "hi", "priority": 2})
    assert r.status_code == 302 and MessageTask.objects.get().created_by == operator


def test_compose_breadcrumbs_render_in_the_admin_bar(browser):
    body = browser.get(reverse("messaging:compose")).content.decode()
    assert '<ol class="breadcrumbs">' in body


def test_compose_says_to_sync_an_account_without_contacts(browser, world):
    instance = WeworkInstance.objects.create(instance_uuid=str(uuid.uuid4()), name="fresh", created_by=world.admin)
    account = WeworkAccount.objects.create(instance=instance, wxid="wxid_fresh", status=AccountStatus.ONLINE,
                                           is_logged_in=True)
    body = browser.get(reverse("messaging:compose"), {"account": account.pk}).content.decode()
    assert 'id="no-receivers"' in body
    assert reverse("admin:contacts_weworkaccount_changelist") in body


def test_task_pages_progress_and_actions(browser, world, sim):
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:3], start=False)
    assert browser.get(reverse("messaging:task_list")).status_code == 200
    detail = browser.get(reverse("messaging:task_detail", args=[task.pk]))
    assert detail.status_code == 200 and "progress" in detail.content.decode()
    p = browser.get(reverse("messaging:task_progress", args=[task.pk])).json()
    assert p["pending"] == 3 and p["progress"] == 0
    r = browser.post(reverse("messaging:task_action", args=[task.pk, "pause"]))
    assert r.status_code == 302
    task.refresh_from_db()
    assert task.status == TaskStatus.PAUSED
    browser.post(reverse("messaging:task_action", args=[task.pk, "resume"]))
    p = browser.get(reverse("messaging:task_progress", args=[task.pk])).json()
    assert p["success_count"] == 3 and p["progress"] == 100.0
    assert browser.post(reverse("messaging:task_action", args=[task.pk, "explode"])).status_code == 404
    # a finished task offers none of the actions its status refuses
    body = browser.get(reverse("messaging:task_detail", args=[task.pk])).content.decode()
    for action in ("pause", "resume", "resend", "cancel"):
        assert reverse("messaging:task_action", args=[task.pk, action]) not in body, action
    assert browser.get(reverse("messaging:task_action", args=[task.pk, "pause"])).status_code == 405


def test_task_actions_refused_show_why_or_403(client, browser, world, make_operator):
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:1], start=False)
    browser.post(reverse("messaging:task_action", args=[task.pk, "cancel"]))
    r = browser.post(reverse("messaging:task_action", args=[task.pk, "cancel"]), follow=True)
    assert "The task is already finished." in r.content.decode()
    viewer = make_operator(permissions.VIEW_TASK, username="viewer")
    other = make_task(world, message_type="text", content="x", receivers=world.contacts[1:2], start=False)
    login_verified(client, viewer)
    assert client.post(reverse("messaging:task_action", args=[other.pk, "pause"])).status_code == 403
    other.refresh_from_db()
    assert other.status == TaskStatus.PENDING


def test_template_preview_page(browser, world):
    tmpl = templates.save_template(world.admin, {"name": "P", "message_type": "text", "content": "Hi {{ who }}",
                                                 "variables": ["who"]})
    r = browser.get(reverse("messaging:template_preview", args=[tmpl.pk]), {"values": "who=Wang"})
    assert r.status_code == 200 and "Hi Wang" in r.content.decode()
    r = browser.get(reverse("messaging:template_preview", args=[tmpl.pk]))
    assert "«who»" in r.content.decode()


def test_scoped_operator_previews_what_compose_offers(client, world, make_operator, outsider):
    operator = make_operator(permissions.SEND_MESSAGE, permissions.VIEW_TASK)
    offered = templates.save_template(world.admin, {"name": "Hi", "message_type": "text",
                                                    "content": "Hi {{ who }}", "variables": ["who"]})
    disabled = templates.save_template(world.admin, {"name": "Old", "message_type": "text", "content": "x",
                                                     "status": 0})
    client.force_login(operator)
    compose = client.get(reverse("messaging:compose"))
    assert compose.status_code == 200
    assert offered in compose.context["form"].fields["template"].queryset
    r = client.get(reverse("messaging:template_preview", args=[offered.pk]), {"values": "who=Wang"})
    assert r.status_code == 200 and "Hi Wang" in r.content.decode()
    # not offered by compose: not found for this user
    assert client.get(reverse("messaging:template_preview", args=[disabled.pk])).status_code == 404
    # nothing else widened: the template admin stays closed
    assert client.get(reverse("admin:messaging_messagetemplate_changelist")).status_code in (302, 403)
    # a user who may not compose gets no preview
    client.force_login(outsider)
    assert client.get(reverse("messaging:template_preview", args=[offered.pk])).status_code == 403


def test_pages_refuse_outsiders_and_anonymous(client, world, django_user_model):
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:1], start=False)
    r = client.get(reverse("messaging:compose"))
    assert r.status_code == 302 and "login" in r["Location"]
    outsider = django_user_model.objects.create_user("out", "o@example.com", "pw-outsider-123")
    client.force_login(outsider)
    assert client.get(reverse("messaging:compose")).status_code == 403
    assert client.get(reverse("messaging:task_list")).status_code == 403
    assert client.get(reverse("messaging:task_detail", args=[task.pk])).status_code == 404
    assert client.post(reverse("messaging:task_action", args=[task.pk, "cancel"])).status_code == 404
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING and task.receivers.filter(send_status=RS.PENDING).count() == 1


def test_failed_receivers_read_in_the_users_language(browser, world, sim):
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:2], start=False)
    first, second = task.receivers.order_by("id")
    MessageReceiver.objects.filter(pk=first.pk).update(
        send_status=RS.FAILED, error_code="media_fetch_failed", error_message="HTTP 404 for https://cdn/x.png")
    MessageReceiver.objects.filter(pk=second.pk).update(
        send_status=RS.FAILED, error_code="template_error", error_message="缺少变量：code")
    with translation.override("zh-hans"):
        body = browser.get(reverse("messaging:task_detail", args=[task.pk]), HTTP_ACCEPT_LANGUAGE="zh-hans")
        expected = str(USER_MESSAGES["media_fetch_failed"])
    html = body.content.decode()
    assert expected in html and "HTTP 404 for https://cdn/x.png" in html  # sentence + the instance's detail
    assert "缺少变量：code" in html  # the platform's own message as it is


def test_progress_gives_the_completion_time_as_the_page_shows_dates(browser, world, sim):
    """The progress JSON refreshes the page: its time reads like the server-rendered ones (the
    language and the platform's time zone), not in the browser's locale and UTC."""
    task = make_task(world, message_type="text", content="x", receivers=world.contacts[:1])
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    with translation.override("zh-hans"):
        p = browser.get(reverse("messaging:task_progress", args=[task.pk]), HTTP_ACCEPT_LANGUAGE="zh-hans").json()
        page = browser.get(reverse("messaging:task_detail", args=[task.pk]), HTTP_ACCEPT_LANGUAGE="zh-hans")
        shown = date_filter(timezone.localtime(task.completed_at), "DATETIME_FORMAT")
    assert p["completed_at_display"] == shown and shown in page.content.decode()
