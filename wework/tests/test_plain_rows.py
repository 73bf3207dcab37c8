"""List pages read rows without Model.__init__ (wework/db/rows.py): the same instances as
Django's, and Django's own iterable wherever a difference could show."""
import pytest
from django.db.models import F, signals
from django.db.models.query import ModelIterable

from accounts.models import User, UserRole
from accounts.tests.factories import UserFactory, UserRoleFactory
from contacts.models import WeworkAccount
from contacts.tests.factories import WeworkAccountFactory
from wework.db.rows import PlainRowIterable, plain_rows

pytestmark = pytest.mark.django_db


def _fields(obj):
    return {k: v for k, v in obj.__dict__.items() if k != "_state"}


def test_plain_rows_are_the_instances_django_builds():
    UserFactory.create_batch(3)
    queryset = User.objects.order_by("id")
    plain = plain_rows(queryset)
    assert plain._iterable_class is PlainRowIterable
    django_rows, rows = list(queryset), list(plain)
    assert [type(r) for r in rows] == [type(r) for r in django_rows]
    assert [_fields(r) for r in rows] == [_fields(r) for r in django_rows]
    assert list(_fields(rows[0])) == list(_fields(django_rows[0]))  # column order too
    for row, expected in zip(rows, django_rows):
        assert row._state.adding is False and row._state.db == expected._state.db
        assert row._state.fetch_mode == expected._state.fetch_mode
        assert row == expected


def test_a_plain_row_loads_its_relations_saves_and_refreshes():
    account = WeworkAccountFactory(nickname="before")
    row = list(plain_rows(WeworkAccount.objects.filter(pk=account.pk)))[0]
    assert row.instance == account.instance  # a foreign key loads on access
    row.nickname = "after"
    row.save(update_fields=["nickname"])
    assert WeworkAccount.objects.get(pk=account.pk).nickname == "after"
    WeworkAccount.objects.filter(pk=account.pk).update(nickname="again")
    row.refresh_from_db()
    assert row.nickname == "again"


@pytest.mark.parametrize("narrow", [
    lambda qs: qs.select_related("user"),
    lambda qs: qs.only("id", "user"),
    lambda qs: qs.defer("role"),
    lambda qs: qs.annotate(twice=F("id") * 2),
    lambda qs: qs.extra(select={"one": "1"}),
    lambda qs: qs.values("id"),
], ids=["select_related", "only", "defer", "annotate", "extra", "values"])
def test_queries_that_are_not_the_plain_columns_keep_djangos_iterable(narrow):
    # user roles and their users share a module, so one database in every layout (a join)
    UserRoleFactory()
    queryset = narrow(UserRole.objects.all())
    assert plain_rows(queryset) is queryset
    assert list(plain_rows(queryset)) == list(queryset)


def test_a_model_someone_listens_to_or_builds_itself_keeps_djangos_iterable(monkeypatch):
    UserFactory()
    seen = []

    def listener(sender, instance, **kwargs):
        seen.append(instance.pk)

    signals.post_init.connect(listener, sender=User)
    try:
        queryset = User.objects.all()
        assert plain_rows(queryset)._iterable_class is ModelIterable
        list(plain_rows(queryset))
        assert seen  # the receiver saw the rows
    finally:
        signals.post_init.disconnect(listener, sender=User)
    assert plain_rows(User.objects.all())._iterable_class is PlainRowIterable

    original = User.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)

    monkeypatch.setattr(User, "__init__", init)
    assert plain_rows(User.objects.all())._iterable_class is ModelIterable
