"""Contact, group and member lists in the admin: they name the account (nickname and WeCom id)
and the group, in a fixed number of queries whatever the page size, and link to each other."""
import pytest
from django.urls import reverse

from contacts.models import Contact, Group, GroupMember, WeworkAccount
from instances.tests.factories import WeworkInstanceFactory
from wework import shards
from wework.testing.fixtures import login_verified
from wework.testing.queries import capture_queries

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
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    login_verified(client, admin)
    instance = _rows(3)
    for name in ("contacts_contact_changelist", "contacts_group_changelist"):
        url = reverse(f"admin:{name}") + f"?instance={instance.pk}"
        page = client.get(url).content.decode()
        assert "客服小王 (wxid_owner)" in page, name
        with capture_queries() as few:
            client.get(url)
        _rows_more = _rows(20)
        with capture_queries() as many:
            client.get(reverse(f"admin:{name}") + f"?instance={_rows_more.pk}")
        assert len(many) == len(few), (name, len(few), len(many))


def test_members_name_their_group_and_accounts_and_groups_link_to_their_rows(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    login_verified(client, admin)
    instance = _rows(2)
    account = WeworkAccount.objects.get(instance=instance)
    group_model = shards.for_instance(Group, instance.pk)
    first, second = group_model.order_by("id")
    shards.bulk_create(GroupMember, [
        {"group_id": first.pk, "member_wxid": "wxid_m1", "member_nickname": "小李"},
        {"group_id": second.pk, "member_wxid": "wxid_m2", "member_nickname": "小张"},
    ], instance_id=instance.pk)
    members = reverse("admin:contacts_groupmember_changelist")
    # the account's row links to its contacts, groups and tasks
    accounts = client.get(reverse("admin:contacts_weworkaccount_changelist")).content.decode()
    assert f"?instance={instance.pk}&amp;account={account.pk}" in accounts
    assert f"account__id__exact={account.pk}" in accounts
    # a group links to its members; the members list shows the group's name, filters by it
    groups = client.get(reverse("admin:contacts_group_changelist") + f"?instance={instance.pk}").content.decode()
    assert f"{members}?instance={instance.pk}&amp;group={first.pk}" in groups
    page = client.get(members + f"?instance={instance.pk}&group={first.pk}")
    assert page.status_code == 200
    body = page.content.decode()
    assert "小李" in body and "小张" not in body and first.group_name in body
    # searched by the group's name
    found = client.get(members + f"?instance={instance.pk}&q={second.group_name}").content.decode()
    assert "小张" in found and "小李" not in found
    # contacts of one account
    assert client.get(reverse("admin:contacts_contact_changelist")
                      + f"?instance={instance.pk}&account={account.pk}").status_code == 200


def test_logging_accounts_out_asks_first(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    login_verified(client, admin)
    instance = _rows(1)
    account = WeworkAccount.objects.get(instance=instance)
    WeworkAccount.objects.filter(pk=account.pk).update(is_logged_in=True)
    url = reverse("admin:contacts_weworkaccount_changelist")
    ask = client.post(url, {"action": "logout_selected", "_selected_action": [account.pk]})
    assert ask.status_code == 200 and b'name="confirmed" value="yes"' in ask.content
    assert WeworkAccount.objects.get(pk=account.pk).is_logged_in  # nothing done before the answer
