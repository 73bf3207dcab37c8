"""Permissions are shown as people read them, in the user's language (the table stores
Django's English names)."""
import pytest
from django.utils import translation

from accounts.services.permissions import permission_label


@pytest.mark.parametrize("lang, name, expected", [
    ("zh-hans", "contacts.add_contact", "可添加联系人"),
    ("zh-hans", "messaging.view_messagetask", "可查看群发任务"),
    ("zh-hans", "messaging.send_message", "发送消息"),
    ("en", "contacts.delete_contact", "Can delete contact"),
    ("en", "messaging.send_message", "Send messages"),
])
def test_permission_label_in_the_users_language(lang, name, expected):
    with translation.override(lang):
        assert permission_label(name, "Can do something") == expected


def test_unknown_permission_falls_back_to_what_is_stored():
    with translation.override("zh-hans"):
        assert permission_label("nosuchapp.frobnicate", "Frobnicate") == "Frobnicate"
        assert permission_label("nosuchapp.frobnicate") == "nosuchapp.frobnicate"


@pytest.mark.django_db
def test_permission_admin_and_role_form_show_labels(client, django_user_model):
    from accounts.services.permissions import sync_permissions
    from accounts.tests.helpers import login_verified

    sync_permissions()
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    login_verified(client, admin)
    with translation.override("zh-hans"):
        listing = client.get("/admin/accounts/permission/?q=contacts.add_contact", HTTP_ACCEPT_LANGUAGE="zh-hans")
        role_form = client.get("/admin/accounts/role/add/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert listing.status_code == 200 and "可添加联系人" in listing.content.decode()
    assert role_form.status_code == 200 and "可添加联系人 (contacts.add_contact)" in role_form.content.decode()
