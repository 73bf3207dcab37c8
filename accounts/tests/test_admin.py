"""Admin pages of accounts: grant pages explain their scope, recent actions and permission
labels read as people read them."""

import pytest
from django.urls import reverse
from django.utils import translation

from accounts.models import Role, UserRole
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(verified_admin_client):
    return verified_admin_client


def test_role_grant_and_instance_grant_pages_explain_their_scope(root):
    with translation.override("en"):
        role_page = root.get(reverse("admin:accounts_userrole_add"), HTTP_ACCEPT_LANGUAGE="en")
        grant_page = root.get(reverse("admin:accounts_instancegrant_add"), HTTP_ACCEPT_LANGUAGE="en")
    assert role_page.status_code == 200
    assert "applies to every instance" in role_page.content.decode()
    assert grant_page.status_code == 200
    assert "on this instance only" in grant_page.content.decode()


def test_admin_recent_actions_name_the_user_and_role(client):
    from django.contrib.admin.models import ADDITION, LogEntry

    from wework.testing.fixtures import login_verified

    root = UserFactory(username="root", is_superuser=True)
    grant = UserRole.objects.create(user=UserFactory(username="bob"), role=Role.objects.get(name="auditor"))
    with translation.override("en"):
        LogEntry.objects.log_actions(root.pk, [grant], ADDITION, change_message="[]", single_object=True)
    login_verified(client, root)
    body = client.get(reverse("admin:index")).content.decode()
    assert "bob → Auditor" in body


@pytest.mark.django_db
def test_permission_admin_and_role_form_show_labels(client, django_user_model):
    from accounts.services.permissions import sync_permissions
    from wework.testing.fixtures import login_verified

    sync_permissions()
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    login_verified(client, admin)
    with translation.override("zh-hans"):
        listing = client.get("/admin/accounts/permission/?q=contacts.add_contact", HTTP_ACCEPT_LANGUAGE="zh-hans")
        role_form = client.get("/admin/accounts/role/add/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert listing.status_code == 200 and "可添加联系人" in listing.content.decode()
    assert role_form.status_code == 200 and "可添加联系人 (contacts.add_contact)" in role_form.content.decode()
