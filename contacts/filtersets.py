"""FilterSets of the contacts app (API list filters; the admin mirrors their fields)."""
import django_filters
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from wework.api.filters import IdFilter, NumberFilter, PlatformFilterSet

from .models import (
    AccountStatus,
    Contact,
    ContactType,
    FriendStatus,
    Group,
    GroupMember,
    GroupRole,
    WeworkAccount,
)


class WeworkAccountFilterSet(PlatformFilterSet):
    q = django_filters.CharFilter(method="search", label=_("Search"))
    status = django_filters.MultipleChoiceFilter(choices=AccountStatus.choices)

    class Meta:
        model = WeworkAccount
        fields = ["instance", "status", "is_logged_in", "login_method", "wxid"]

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(wxid__icontains=value) | Q(nickname__icontains=value) | Q(phone=value)
        )


class ContactFilterSet(PlatformFilterSet):
    q = django_filters.CharFilter(method="search", label=_("Search"))
    contact_type = django_filters.ChoiceFilter(choices=ContactType.choices)
    friend_status = django_filters.ChoiceFilter(choices=FriendStatus.choices)

    class Meta:
        model = Contact
        fields = ["account", "wxid", "contact_type", "friend_status", "is_star", "sync_status"]

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(wxid__icontains=value) | Q(nickname__icontains=value) | Q(remark__icontains=value)
        )


class GroupFilterSet(PlatformFilterSet):
    q = django_filters.CharFilter(method="search", label=_("Search"))
    my_role = django_filters.ChoiceFilter(choices=GroupRole.choices)
    min_members = NumberFilter(field_name="member_count", lookup_expr="gte")

    class Meta:
        model = Group
        fields = ["account", "group_wxid", "my_role", "is_active", "sync_status"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(group_wxid__icontains=value) | Q(group_name__icontains=value))


class GroupMemberFilterSet(PlatformFilterSet):
    q = django_filters.CharFilter(method="search", label=_("Search"))
    role = django_filters.ChoiceFilter(choices=GroupRole.choices)
    # groups live in the instance's shard: filter by id, not by a choice from the base table
    group = IdFilter(field_name="group_id", label=_("Group id"))
    present = django_filters.BooleanFilter(
        field_name="left_at", lookup_expr="isnull", label=_("Still in the group")
    )

    class Meta:
        model = GroupMember
        fields = ["group", "member_wxid", "role", "is_active"]

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(member_wxid__icontains=value) | Q(member_nickname__icontains=value)
            | Q(group_nickname__icontains=value)
        )
