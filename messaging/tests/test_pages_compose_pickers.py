"""The compose page's pickers (issue 18): a picked template shows its text and asks for its
declared variables, one input each; the @ box is fed by the members of the one group chat
ticked (a JSON list of that group's members, for accounts the user may send from only)."""
import json

import pytest
from django.urls import reverse

from messaging import permissions
from messaging.models import MessageTask
from messaging.services import templates

pytestmark = pytest.mark.django_db(transaction=True)


def _embedded(page, element_id):
    body = page.content.decode()
    start = body.index(f'<script id="{element_id}" type="application/json">') + len(
        f'<script id="{element_id}" type="application/json">')
    return json.loads(body[start:body.index("</script>", start)])


def test_compose_carries_each_templates_text_and_variables(browser, world):
    tmpl = templates.save_template(world.admin, {
        "name": "Offer", "message_type": "text", "content": "Hi {{ receiver_name }}, {{ offer }} until {{ day }}",
        "variables": [{"name": "offer", "label": "The offer"}, {"name": "day", "label": "Last day", "default": "Sunday"}],
    })
    page = browser.get(reverse("messaging:compose"), {"account": world.account.pk})
    data = _embedded(page, "template-data")[str(tmpl.pk)]
    assert data["text"] == "Hi {{ receiver_name }}, {{ offer }} until {{ day }}"
    assert data["variables"] == [
        {"name": "offer", "label": "The offer", "required": True, "default": ""},
        {"name": "day", "label": "Last day", "required": False, "default": "Sunday"},
    ]
    assert 'id="template-box"' in page.content.decode()
    # the values typed in the inputs reach the task as its variables
    r = browser.post(reverse("messaging:compose"), {
        "account": world.account.pk, "contacts": [world.contacts[0]], "template": tmpl.pk,
        "variables": "offer=20% off\nday=Friday", "message_type": "text", "priority": 2, "send_interval": 0})
    assert r.status_code == 302, r.content.decode()[:2000]
    task = MessageTask.objects.get()
    assert task.template_id == tmpl.pk and task.template_variables == {"offer": "20% off", "day": "Friday"}


def test_group_members_feed_the_at_picker(browser, world):
    room = world.rooms[0]
    r = browser.get(reverse("messaging:compose_members"), {"account": world.account.pk, "group": room})
    assert r.status_code == 200
    data = r.json()
    assert sorted(m["wxid"] for m in data["members"]) == sorted(
        m for m in world.members[room] if m != world.account.wxid)
    assert data["truncated"] is False and data["group"]
    # a group of another account, or none: not found
    assert browser.get(reverse("messaging:compose_members"),
                       {"account": world.account.pk, "group": "no-such-room"}).status_code == 404
    assert browser.get(reverse("messaging:compose_members"), {"account": world.account.pk}).status_code == 404


def test_group_members_only_for_accounts_the_user_may_send_from(client, world, make_operator, outsider):
    room = world.rooms[0]
    url = reverse("messaging:compose_members")
    client.force_login(make_operator(permissions.SEND_MESSAGE))
    assert client.get(url, {"account": world.account.pk, "group": room}).status_code == 200
    client.force_login(outsider)
    assert client.get(url, {"account": world.account.pk, "group": room}).status_code in (403, 404)
    client.logout()
    assert client.get(url, {"account": world.account.pk, "group": room}).status_code == 302
