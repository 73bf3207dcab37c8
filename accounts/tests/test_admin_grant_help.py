"""The grant pages say which grant covers every instance and which covers one."""
import pytest
from django.urls import reverse
from django.utils import translation

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(client, django_user_model):
    from accounts.tests.helpers import login_verified

    login_verified(client, django_user_model.objects.create_superuser("root", "r@example.com",
                                                                         "pw-root-123"))
    return client


def test_role_grant_and_instance_grant_pages_explain_their_scope(root):
    with translation.override("en"):
        role_page = root.get(reverse("admin:accounts_userrole_add"), HTTP_ACCEPT_LANGUAGE="en")
        grant_page = root.get(reverse("admin:accounts_instancegrant_add"), HTTP_ACCEPT_LANGUAGE="en")
    assert role_page.status_code == 200
    assert "applies to every instance" in role_page.content.decode()
    assert grant_page.status_code == 200
    assert "on this instance only" in grant_page.content.decode()
