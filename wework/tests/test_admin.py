"""The admin's bases: NULL JSON columns show an empty box (not the word "null") and an empty box
is saved as NULL; tags are edited as words; a refused page keeps the admin's frame."""
import pytest
from django.urls import reverse
from django.utils import translation

from accounts.tests.factories import UserFactory
from messaging.models import MessageTemplate
from wework.admin import TagListFormField

pytestmark = pytest.mark.django_db


def test_null_json_fields_render_empty_and_save_as_null(verified_admin_client):
    client = verified_admin_client
    page = client.get(reverse("admin:messaging_messagetemplate_add")).content.decode()
    assert "null</textarea>" not in page
    assert 'name="tags"' in page
    response = client.post(reverse("admin:messaging_messagetemplate_add"), {
        "name": "Welcome", "message_type": "text", "content": "Hello", "variables": "", "tags": "",
        "status": 1, "sort_order": 0, "use_count": 0,
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    template = MessageTemplate.objects.get(name="Welcome")
    assert template.tags is None
    change = client.get(reverse("admin:messaging_messagetemplate_change", args=[template.pk])).content.decode()
    assert "null</textarea>" not in change


def test_tags_are_edited_as_words_and_saved_as_a_list():
    field = TagListFormField(required=False)
    assert field.prepare_value(["vip", "北京"]) == "vip, 北京"
    assert field.clean("vip，北京、lead\nvip, ") == ["vip", "北京", "lead"]
    assert field.clean("") is None
    assert not field.has_changed(["vip", "北京"], "vip, 北京")
    assert field.has_changed(["vip"], "vip, new")


def test_a_refused_page_keeps_the_admin_frame_and_a_way_back(client):
    client.force_login(UserFactory())
    response = client.get(reverse("messaging:compose"), HTTP_REFERER="http://testserver/admin/")
    assert response.status_code == 403
    body = response.content.decode()
    assert 'id="site-name"' in body and 'id="denied-message"' in body  # the admin's header
    assert 'href="http://testserver/admin/"' in body  # back where the user came from


def test_the_app_list_follows_an_operators_day_in_every_language(verified_admin_client):
    for language in ("zh-hans", "en"):
        with translation.override(language):
            page = verified_admin_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE=language)
        labels = [app["app_label"] for app in page.context["app_list"]]
        ours = [label for label in labels if label in ("messaging", "contacts", "instances", "monitoring", "accounts")]
        assert ours == ["messaging", "contacts", "instances", "monitoring", "accounts"], (language, labels)
