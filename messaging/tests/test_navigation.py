"""The compose and task pages are reachable from the admin (no URL typing needed)."""
import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(client, django_user_model):
    from accounts.tests.helpers import login_verified

    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    login_verified(client, user)
    return client


def test_task_changelist_links_to_compose_and_task_pages(root):
    body = root.get(reverse("admin:messaging_messagetask_changelist")).content.decode()
    assert f'href="{reverse("messaging:compose")}"' in body
    assert f'href="{reverse("messaging:task_list")}"' in body


def test_view_site_link_leads_to_a_page(root):
    index = root.get(reverse("admin:index"))
    site_url = index.context["site_url"]
    assert site_url == reverse("messaging:task_list")
    assert root.get(site_url).status_code == 200


def test_no_compose_link_without_send_permission(client, django_user_model):
    from accounts.tests.helpers import login_verified
    from monitoring.tests.conftest import grant_perms

    user = grant_perms(django_user_model.objects.create_user("viewer", "v@example.com", "pw-viewer-123"),
                       "messaging.view_messagetask")
    login_verified(client, user)
    body = client.get(reverse("admin:messaging_messagetask_changelist")).content.decode()
    assert f'href="{reverse("messaging:compose")}"' not in body


def test_compose_breadcrumbs_render_in_the_admin_bar(root):
    body = root.get(reverse("messaging:compose")).content.decode()
    assert '<ol class="breadcrumbs">' in body


def test_compose_says_to_sync_an_account_without_contacts(root, django_user_model):
    import uuid

    from contacts.models import AccountStatus, WeworkAccount
    from instances.models import WeworkInstance

    admin = django_user_model.objects.get(username="root")
    instance = WeworkInstance.objects.create(instance_uuid=str(uuid.uuid4()), name="fresh",
                                             created_by=admin)
    account = WeworkAccount.objects.create(instance=instance, wxid="wxid_fresh",
                                           status=AccountStatus.ONLINE, is_logged_in=True)
    body = root.get(reverse("messaging:compose"), {"account": account.pk}).content.decode()
    assert 'id="no-receivers"' in body
    assert reverse("admin:contacts_weworkaccount_changelist") in body
