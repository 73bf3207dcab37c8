"""Contact and group lists in the admin name the account (nickname and WeCom id), in a fixed
number of queries whatever the page size."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.models import Contact, Group, WeworkAccount
from instances.tests.factories import WeworkInstanceFactory
from wework import shards

pytestmark = pytest.mark.django_db(transaction=True)


def _rows(n):
    instance = WeworkInstanceFactory()
    account = WeworkAccount.objects.create(instance=instance, wxid="wxid_owner", nickname="客服小王")
    shards.bulk_create(Contact, [{"account_id": account.pk, "wxid": f"wxid_c{i}", "nickname": f"c{i}",
                                  "contact_type": 1} for i in range(n)], instance_id=instance.pk)
    shards.bulk_create(Group, [{"account_id": account.pk, "group_wxid": f"R:{i}", "group_name": f"g{i}"}
                               for i in range(n)], instance_id=instance.pk)
    return instance


def test_lists_name_the_account_without_a_query_per_row(client, django_user_model):
    from wework.testing.fixtures import login_verified

    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    login_verified(client, admin)
    instance = _rows(3)
    for name in ("contacts_contact_changelist", "contacts_group_changelist"):
        url = reverse(f"admin:{name}") + f"?instance={instance.pk}"
        page = client.get(url).content.decode()
        assert "客服小王 (wxid_owner)" in page, name
        with CaptureQueriesContext(connection) as few:
            client.get(url)
        _rows_more = _rows(20)
        with CaptureQueriesContext(connection) as many:
            client.get(reverse(f"admin:{name}") + f"?instance={_rows_more.pk}")
        assert len(many) == len(few), (name, len(few), len(many))
