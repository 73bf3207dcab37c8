"""The tag panel scrm adds to messaging's conversation page (through
`messaging.extensions.register_conversation_panel`): the contact's tags, add and remove, with
the scrm permissions and the audit of the tag service."""
import pytest
from django.urls import reverse

from accounts.services.permissions import grant_instance
from monitoring.models import AuditLog
from scrm.models import ContactTag
from scrm.services import tags
from wework.testing.fixtures import login_verified

pytestmark = pytest.mark.django_db(transaction=True)


def _urls(world, wxid):
    return (reverse("messaging:conversation", args=[world.account.pk, wxid]),
            reverse("scrm:conversation_tags", args=[world.account.pk, wxid]))


def _user(world, django_user_model, *perms, name="operator"):
    user = django_user_model.objects.create_user(name, f"{name}@example.com", "pw-operator-123")
    grant_instance(user, world.instance, list(perms), granted_by=world.admin)
    return user


def test_panel_lists_adds_and_removes_tags(world, client, vip, lead):
    login_verified(client, world.admin)
    wxid = world.contacts[1]
    page_url, tags_url = _urls(world, wxid)
    body = client.get(page_url).content.decode()
    assert 'id="tags"' in body and "scrm-tag-form" in body and tags_url in body
    r = client.post(tags_url, {"op": "add", "tags": [vip.pk, lead.pk]})
    assert r.status_code == 302 and r.url.startswith(page_url)
    assert tags.tags_of(world.account.pk, wxid) == ["lead", "vip"]
    assert world.column_tags(wxid) == ["lead", "vip"]
    body = client.get(page_url).content.decode()
    assert "scrm-untag" in body and ">vip" in body
    client.post(tags_url, {"op": "remove", "tags": ["vip"]})
    assert tags.tags_of(world.account.pk, wxid) == ["lead"]
    assert list(AuditLog.objects.filter(operation__startswith="scrm.contacts.").order_by("id")
                .values_list("operation", flat=True)) == ["scrm.contacts.tag", "scrm.contacts.untag"]
    # an unknown tag is a message, nothing written
    r = client.post(tags_url, {"op": "add", "tags": ["no-such-tag"]}, follow=True)
    assert "no-such-tag" in r.content.decode()
    assert tags.tags_of(world.account.pk, wxid) == ["lead"]


def test_no_panel_for_a_group_chat(world, client):
    login_verified(client, world.admin)
    page_url, tags_url = _urls(world, world.rooms[0])
    assert 'id="tags"' not in client.get(page_url).content.decode()
    assert client.post(tags_url, {"op": "add", "tags": ["x"]}).status_code == 404


def test_panel_follows_the_permissions(world, client, django_user_model, vip):
    wxid = world.contacts[0]
    tags.tag_contacts(world.admin, world.account, [wxid], [vip])
    page_url, tags_url = _urls(world, wxid)
    reader = _user(world, django_user_model, "messaging.view_message", name="reader")
    login_verified(client, reader)
    body = client.get(page_url).content.decode()
    assert ">vip" in body and "scrm-tag-form" not in body and "scrm-untag" not in body
    r = client.post(tags_url, {"op": "remove", "tags": ["vip"]}, follow=True)
    assert "permission" in r.content.decode()
    assert ContactTag.objects.count() == 1
    tagger = _user(world, django_user_model, "messaging.view_message", "scrm.add_contacttag",
                   "scrm.delete_contacttag", name="tagger")
    login_verified(client, tagger)
    assert "scrm-untag" in client.get(page_url).content.decode()
    client.post(tags_url, {"op": "remove", "tags": ["vip"]})
    assert not ContactTag.objects.exists()
    outsider = django_user_model.objects.create_user("outsider", "o@example.com", "pw-outsider-123")
    login_verified(client, outsider)
    assert client.post(tags_url, {"op": "add", "tags": [vip.pk]}).status_code == 404
    assert not ContactTag.objects.exists()
