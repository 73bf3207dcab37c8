"""The messaging admin: every model's pages, messages by month shard scoped per instance, the
task list's links to the pages, template validation, task actions through the services."""
import json
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.services.permissions import grant_instance, grant_role
from wework.testing.fixtures import login_verified, role_with
from contacts.models import AccountStatus, WeworkAccount
from instances.models import WeworkInstance
from messaging import permissions
from messaging.models import Message, MessageTask, MessageTemplate, TaskStatus
from messaging.services import sending
from wework import shards

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_pages_render(browser, world, sim):
    task = sending.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                message_type="text", content="x")
    for name in ("message", "messagetask", "messagereceiver", "messagetemplate"):
        assert browser.get(reverse(f"admin:messaging_{name}_changelist")).status_code == 200, name
    assert browser.get(reverse("admin:messaging_messagetask_change", args=[task.pk])).status_code == 200
    mid = task.receivers.get().message_id
    assert browser.get(reverse("admin:messaging_message_change", args=[mid])).status_code == 200
    assert browser.get(reverse("admin:messaging_messagetemplate_add")).status_code == 200


def test_messages_show_their_content_not_json(browser, world):
    now = timezone.now()
    base = {"account_id": world.account.pk, "chat_type": 1, "chat_wxid": world.contacts[0], "created_at": now}
    link = shards.create(Message, **base, message_type="link", message_content=json.dumps(
        {"title": "双十一活动", "desc": "全场五折", "url": "https://example.com/sale"}, ensure_ascii=False))
    place = shards.create(Message, **base, message_type="location", message_content=json.dumps(
        {"latitude": 39.9, "longitude": 116.4, "title": "北京办公室"}, ensure_ascii=False))
    image = shards.create(Message, **base, message_type="image",
                          message_content=json.dumps({"url": "https://cdn.example.com/p/cat.png"}))
    listing = browser.get(reverse("admin:messaging_message_changelist")).content.decode()
    assert "[Link] 双十一活动" in listing and "[Location] 北京办公室" in listing and "[Image] cat.png" in listing
    assert '{"title"' not in listing
    detail = browser.get(reverse("admin:messaging_message_change", args=[link.pk])).content.decode()
    assert '<strong>双十一活动</strong><div>全场五折</div>' in detail
    detail = browser.get(reverse("admin:messaging_message_change", args=[image.pk])).content.decode()
    assert '<img src="https://cdn.example.com/p/cat.png"' in detail and 'referrerpolicy="no-referrer"' in detail
    assert browser.get(reverse("admin:messaging_message_change", args=[place.pk])).status_code == 200


def test_task_changelist_links_to_compose_and_task_pages(browser):
    body = browser.get(reverse("admin:messaging_messagetask_changelist")).content.decode()
    assert f'href="{reverse("messaging:compose")}"' in body
    assert f'href="{reverse("messaging:task_list")}"' in body


def test_view_site_link_leads_to_a_page(browser):
    site_url = browser.get(reverse("admin:index")).context["site_url"]
    assert site_url == reverse("messaging:task_list")
    assert browser.get(site_url).status_code == 200


def test_no_compose_link_without_send_permission(client, world, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", "v@example.com", "pw-viewer-123")
    grant_role(viewer, role_with("task_viewer", [permissions.VIEW_TASK]), granted_by=world.admin)
    login_verified(client, viewer)
    response = client.get(reverse("admin:messaging_messagetask_changelist"))
    assert response.status_code == 200
    assert f'href="{reverse("messaging:compose")}"' not in response.content.decode()


def test_template_admin_validates_like_the_service(browser, world):
    url = reverse("admin:messaging_messagetemplate_add")
    r = browser.post(url, {"name": "Bad", "message_type": "text", "content": "{{ a.b }}", "status": 1,
                           "sort_order": 0, "variables": "", "tags": ""})
    assert r.status_code == 200 and "content" in r.context["adminform"].form.errors
    r = browser.post(url, {"name": "Bad", "message_type": "text", "content": "Hi", "status": 1, "sort_order": 0,
                           "variables": "", "tags": "", "thumbnail_url": "javascript:alert(1)"})
    assert r.status_code == 200 and "thumbnail_url" in r.context["adminform"].form.errors
    r = browser.post(url, {"name": "Good", "message_type": "text", "content": "Hi {{ who }}", "status": 1,
                           "sort_order": 0, "variables": "who", "tags": ""})
    assert r.status_code == 302, r.context and r.context["adminform"].form.errors
    tmpl = MessageTemplate.objects.get(name="Good")
    assert tmpl.preview_content == "Hi «who»" and tmpl.created_by == world.admin and tmpl.template_uuid


def test_templates_are_edited_as_fields_not_json(browser, world):
    """A link template from its parts, variables one per line and tags as words; opening it
    again shows the same fields filled, never the stored JSON."""
    url = reverse("admin:messaging_messagetemplate_add")
    r = browser.post(url, {"name": "News", "message_type": "link", "content": "", "part_title": "Hi {{ who }}",
                           "part_url": "https://example.com/n", "part_desc": "{{ offer }}", "status": 1,
                           "sort_order": 0, "variables": "who | Customer\noffer | Offer | 10% off",
                           "tags": "vip， 北京, vip"})
    assert r.status_code == 302, r.context and r.context["adminform"].form.errors
    tmpl = MessageTemplate.objects.get(name="News")
    assert json.loads(tmpl.content) == {"title": "Hi {{ who }}", "url": "https://example.com/n", "desc": "{{ offer }}"}
    assert tmpl.variables == [{"name": "who", "label": "Customer", "default": None, "required": True},
                              {"name": "offer", "label": "Offer", "default": "10% off", "required": False}]
    assert tmpl.tags == ["vip", "北京"]
    page = browser.get(reverse("admin:messaging_messagetemplate_change", args=[tmpl.pk]))
    form = page.context["adminform"].form
    assert form.initial["part_title"] == "Hi {{ who }}" and form.initial["content"] == ""
    body = page.content.decode()
    assert "who | Customer\noffer | Offer | 10% off" in body and 'value="vip, 北京"' in body
    # a missing required part is named on the form
    r = browser.post(url, {"name": "Bad link", "message_type": "link", "part_title": "x", "status": 1,
                           "sort_order": 0, "variables": "", "tags": ""})
    assert r.status_code == 200 and r.context["adminform"].form.errors


def test_admin_actions_skip_tasks_the_user_may_not_manage(client, world, make_operator):
    mine = make_task(world, message_type="text", content="x", receivers=world.contacts[:1], start=False)
    other_account = WeworkAccount.objects.create(
        instance=WeworkInstance.objects.create(instance_uuid=str(uuid.uuid4()), name="other", created_by=world.admin),
        wxid="wxid_other", status=AccountStatus.ONLINE, is_logged_in=True)
    theirs = MessageTask.objects.create(task_uuid=str(uuid.uuid4()), task_type="single", account=other_account,
                                        message_type="text", message_content="x", created_by=world.admin)
    manager = make_operator(permissions.MANAGE_TASK, permissions.VIEW_TASK, username="manager")
    login_verified(client, manager)
    r = client.post(reverse("admin:messaging_messagetask_changelist"),
                    {"action": "pause_tasks", "_selected_action": [mine.pk, theirs.pk]})
    assert r.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.status == TaskStatus.PAUSED and theirs.status == TaskStatus.PENDING


@pytest.fixture
def two_instances(django_user_model):
    """Messages on two instances, an operator allowed to view the first one's."""
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    mine = WeworkInstance.objects.create(instance_uuid=str(uuid.uuid4()), name="mine", created_by=admin)
    other = WeworkInstance.objects.create(instance_uuid=str(uuid.uuid4()), name="other", created_by=admin)
    rows = {}
    for inst in (mine, other):
        account = WeworkAccount.objects.create(instance=inst, wxid=f"wxid_{inst.name}",
                                               status=AccountStatus.ONLINE, is_logged_in=True)
        rows[inst.name] = shards.create(
            Message, message_uuid=str(uuid.uuid4()), account_id=account.pk, chat_type=1,
            chat_wxid=f"c_{inst.name}", message_type="text", message_content=inst.name,
        )
    user = django_user_model.objects.create_user("op", "op@example.com", "pw-operator-123")
    grant_instance(user, mine, ["messaging.view_message"], granted_by=admin)
    return user, rows


def test_admin_message_list_of_an_instance_scoped_user(client, two_instances):
    user, rows = two_instances
    client.force_login(user)
    r = client.get("/admin/messaging/message/")
    assert r.status_code == 200
    assert rows["mine"].chat_wxid.encode() in r.content
    assert rows["other"].chat_wxid.encode() not in r.content
    assert client.get(f"/admin/messaging/message/{rows['other'].pk}/change/").status_code == 404


def test_admin_message_list_reads_the_shard_by_id_and_searches_on_indexes(client, two_instances):
    """A month holds millions of rows: no join to the accounts, no sort but by id, and a search
    that is one indexed equality (issue 13)."""
    from wework.testing.queries import capture_queries

    user, rows = two_instances
    client.force_login(user)
    table = type(rows["mine"])._meta.db_table
    with capture_queries() as queries:
        r = client.get("/admin/messaging/message/", {"o": "2"})  # the created_at column
    assert r.status_code == 200 and rows["mine"].chat_wxid.encode() in r.content
    on_shard = [q["sql"] for q in queries if table in q["sql"]]
    assert on_shard and all("JOIN" not in sql.upper() for sql in on_shard), on_shard
    counts = [sql for sql in on_shard if "COUNT(" in sql.upper()]
    # the paginator's capped count alone: the server counts at most 10,001 ids
    assert all(sql.upper().startswith("SELECT COUNT(*) FROM (SELECT") and sql.endswith("LIMIT 10001) subquery")
               for sql in counts), counts
    page = [sql for sql in on_shard if "ORDER BY" in sql.upper()]
    assert all("created_at" not in sql.upper().split("ORDER BY")[1].lower() for sql in page), page
    found = lambda q: [m.pk for m in client.get("/admin/messaging/message/", {"q": q}).context["cl"].result_list]  # noqa: E731
    assert found(rows["mine"].message_uuid) == [rows["mine"].pk]
    assert found("wxid_mine") == [rows["mine"].pk]
    assert found("c_mine") == [rows["mine"].pk]
    assert found("c_other") == [] and found(rows["other"].message_uuid) == []
    refused = client.get("/admin/messaging/message/", {"q": "two words"}, follow=True)
    assert not list(refused.context["cl"].result_list)
    assert "exactly" in refused.content.decode()


def test_admin_message_list_of_a_month_without_shard(browser, world):
    month = (timezone.localdate().replace(day=1) - timezone.timedelta(days=400)).strftime("%Y%m")
    r = browser.get("/admin/messaging/message/", {"month": month})
    assert r.status_code == 200 and not list(r.context["cl"].result_list)


def test_admin_message_list_links_are_those_of_reverse(browser, world):
    """The page builds its change and conversation links from one reverse() each (issue 13):
    the same paths as reverse() a row, quoting included."""
    from django.utils.html import escape

    now = timezone.now()
    chats = ["wm_plain", "群聊 #1?a=b&c%", "wo_~:@!$'()*+,;="]
    rows = [shards.create(Message, account_id=world.account.pk, chat_type=1, chat_wxid=chat, created_at=now,
                          message_type="text", message_content="x") for chat in chats]
    body = browser.get(reverse("admin:messaging_message_changelist")).content.decode()
    for row in rows:
        conversation = reverse("messaging:conversation", args=[row.account_id, row.chat_wxid])
        assert f'<a href="{escape(conversation)}">{escape(row.chat_wxid)}</a>' in body, row.chat_wxid
        change = reverse("admin:messaging_message_change", args=[row.pk])
        assert f'href="{change}"' in body
    assert body.count('class="field-error_code">-</td>') >= len(rows)  # the empty value, translated
