"""Filters of the per-instance shard lists (contacts, groups, group members): a filter the list
cannot apply answers 400 like every other list (QA Q2: these lists answered 200 with every row
for ?bogus=1 or ?is_active=maybe)."""
import pytest

from contacts.models import Contact, Group, GroupMember
from instances.tests.factories import WeworkInstanceFactory
from wework import shards

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def root(client, django_user_model):
    from wework.testing.fixtures import login_verified

    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    login_verified(client, user)
    return client


@pytest.fixture
def instance_id():
    instance = WeworkInstanceFactory()
    for model in (Contact, Group, GroupMember):
        shards.for_instance(model, instance.pk, create=True)
    return instance.pk


@pytest.mark.parametrize("path, query, param", [
    ("contacts", "bogus=1", "bogus"),
    ("contacts", "tags=vip", "tags"),
    ("contacts", "is_star=maybe", "is_star"),
    ("groups", "is_active=maybe", "is_active"),
    ("groups", "min_members=many", "min_members"),
    ("group-members", "present=perhaps", "present"),
    ("group-members", "grup=1", "grup"),
])
def test_bad_or_unknown_filters_are_400(root, instance_id, path, query, param):
    r = root.get(f"/api/v1/{path}/?instance={instance_id}&{query}")
    assert r.status_code == 400, (path, query, r.status_code, r.content[:200])
    assert list(r.json()) == [param] and r.json()[param][0]


def test_valid_filters_search_ordering_and_paging_still_work(root, instance_id):
    for url in (
        f"/api/v1/contacts/?instance={instance_id}&is_star=true&q=x&search=x&ordering=-id&limit=10",
        f"/api/v1/groups/?instance={instance_id}&is_active=false&min_members=3&format=json",
        f"/api/v1/group-members/?instance={instance_id}&present=true&role=1",
    ):
        r = root.get(url)
        assert r.status_code == 200, (url, r.content[:300])
    # a detail view is no list: its query string is not checked for filters
    r = root.get(f"/api/v1/contacts/1/?instance={instance_id}&anything=1")
    assert r.status_code == 404


def test_a_shard_list_asking_no_filter_builds_no_filterset_form(root, instance_id, monkeypatch):
    """`?instance=&limit=` names no filter: the FilterSet's form (built and validated on every
    page before, about a fifth of the list's CPU, issue 13) is skipped; a filter still builds
    it, applies it, and a bad or unknown one is still a 400."""
    from contacts.filtersets import ContactFilterSet
    from contacts.models import WeworkAccount

    account = WeworkAccount.objects.create(instance_id=instance_id, wxid="wxid_f1", status=1)
    rows = shards.for_instance(Contact, instance_id).model._default_manager
    rows.create(account=account, wxid="wxid_a", nickname="A", is_star=True)
    rows.create(account=account, wxid="wxid_b", nickname="B", is_star=False)
    built = []
    form = ContactFilterSet.form.fget
    monkeypatch.setattr(ContactFilterSet, "form", property(lambda fs: built.append(1) or form(fs)))

    r = root.get(f"/api/v1/contacts/?instance={instance_id}&limit=50&search=wxid_a&ordering=-id")
    assert r.status_code == 200 and [c["wxid"] for c in r.json()["results"]] == ["wxid_a"]
    r = root.get(f"/api/v1/contacts/?instance={instance_id}&limit=50")
    assert r.status_code == 200 and {c["wxid"] for c in r.json()["results"]} == {"wxid_a", "wxid_b"}
    assert built == []

    r = root.get(f"/api/v1/contacts/?instance={instance_id}&is_star=true")
    assert r.status_code == 200 and [c["wxid"] for c in r.json()["results"]] == ["wxid_a"]
    assert built
    assert root.get(f"/api/v1/contacts/?instance={instance_id}&is_star=maybe").status_code == 400
    assert root.get(f"/api/v1/contacts/?instance={instance_id}&bogus=1").status_code == 400
