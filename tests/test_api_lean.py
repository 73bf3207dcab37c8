"""The lean path of list pages (wework/api/lean.py) answers exactly what DRF's serializer
answers, on every API list and for the values it reads directly."""
import datetime
import zoneinfo

import pytest
from django.utils import timezone
from rest_framework import serializers

from accounts.models import User
from wework.api import lean
from wework.db import rows as plain

from .test_api_list_queries import Rows, _list_cases, api  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True)


def _drf(monkeypatch):
    """DRF's serializer on rows built by Django's own ModelIterable."""
    monkeypatch.setattr(lean.LeanListSerializer, "to_representation",
                        serializers.ListSerializer.to_representation)
    monkeypatch.setattr(plain, "_plain", lambda queryset: False)


def _counting_plain_rows(monkeypatch):
    """Counts the pages read by PlainRowIterable (wework/db/rows.py), by model."""
    used = []
    iterate = plain.PlainRowIterable.__iter__

    def counted(self):
        used.append(self.queryset.model._meta.label)
        return iterate(self)

    monkeypatch.setattr(plain.PlainRowIterable, "__iter__", counted)
    return used


def test_every_list_answers_what_drf_answers(api, monkeypatch):  # noqa: F811
    rows = Rows()
    compared, plain_lists = [], []
    used = _counting_plain_rows(monkeypatch)
    for basename, url, params, fill in _list_cases(rows):
        for _ in range(3):
            fill()
        used.clear()
        fast = api.get(url, params)
        if used:
            plain_lists.append(basename)
        assert fast.status_code == 200, (basename, fast.content[:300])
        with monkeypatch.context() as m:
            _drf(m)
            slow = api.get(url, params)
        assert fast.json() == slow.json(), basename
        assert list(fast.json()["results"][0]) == list(slow.json()["results"][0]), basename
        compared.append(basename)
    assert len(compared) >= 20, compared
    # most pages are read without Model.__init__ (the rest select related rows, or are not models)
    assert len(plain_lists) >= 15, (plain_lists, sorted(set(compared) - set(plain_lists)))


class _UserSerializer(serializers.ModelSerializer):
    big = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "status", "is_superuser", "last_login", "created_at", "big"]

    def get_big(self, obj):
        return self.context.get("mark")


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai"])
def test_values_read_directly_match_drf(zone):
    user = User.objects.create(username="lean-a", email="lean-a@example.com", status=1,
                               last_login=datetime.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=datetime.UTC))
    other = User.objects.create(username="lean-b", email="lean-b@example.com", status=0)
    users = list(User.objects.filter(pk__in=[user.pk, other.pk]).order_by("pk"))
    users[1].status = 99  # a value outside the choices: DRF gives it back as it is
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        for mark in ("first", "second"):  # the plan is kept; the context is this page's
            expected = serializers.ListSerializer(child=_UserSerializer(), context={"mark": mark}).to_representation(users)
            got = lean.LeanListSerializer(child=_UserSerializer(), context={"mark": mark}).to_representation(users)
            assert got == expected and got[0]["big"] == mark
    assert (_UserSerializer, zone) in {(cls, tz) for cls, tz in lean._PLANS}


class _MessageSerializer(serializers.ModelSerializer):
    raw = serializers.JSONField(source="at_members", binary=True, read_only=True)

    class Meta:
        from messaging.models import Message

        model = Message
        fields = ["id", "message_metadata", "at_members", "raw"]


def test_json_columns_read_directly_match_drf():
    """A JSON column is given back decoded, as DRF's JSONField does (None, dicts, lists,
    scalars); a `binary` one still goes through DRF (it answers the JSON text)."""
    from messaging.models import Message

    rows = [Message(id=1, message_metadata={"direction": "in", "n": [1, 2]}, at_members=["wxid_a"]),
            Message(id=2, message_metadata=None, at_members=None),
            Message(id=3, message_metadata="text", at_members=[])]
    kinds = {key: kind for key, kind, *_rest in lean._plan(_MessageSerializer())}
    assert kinds == {"id": lean._DIRECT, "message_metadata": lean._JSON, "at_members": lean._JSON,
                     "raw": lean._DRF}
    expected = serializers.ListSerializer(child=_MessageSerializer()).to_representation(rows)
    got = lean.LeanListSerializer(child=_MessageSerializer()).to_representation(rows)
    assert got == expected and got[0]["raw"] == b'["wxid_a"]'
