"""FilterSets of scrm's API lists (the admin mirrors their fields)."""
import django_filters
from django.utils.translation import gettext_lazy as _

from wework.api.filters import IsoDateTimeFilter, PlatformFilterSet

from .models import (
    AutoReply,
    ContactTag,
    OptOut,
    OptOutKeyword,
    Segment,
    SensitiveWord,
    Tag,
    TagGroup,
    TagRule,
    WelcomeMessage,
)


class CreatedFilterSet(PlatformFilterSet):
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte",
                                                     label=_("Created at or after"))
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt",
                                                      label=_("Created before"))


class TagGroupFilterSet(CreatedFilterSet):
    class Meta:
        model = TagGroup
        fields = ["name"]


class TagFilterSet(CreatedFilterSet):
    class Meta:
        model = Tag
        fields = ["group", "name", "color"]


class ContactTagFilterSet(CreatedFilterSet):
    class Meta:
        model = ContactTag
        fields = ["tag", "account", "contact_wxid", "source"]


class TagRuleFilterSet(CreatedFilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", label=_("Name contains"))
    keyword = django_filters.CharFilter(label=_("Keyword"))

    class Meta:
        model = TagRule
        fields = ["kind", "tag", "account", "match_type", "task", "is_enabled", "created_by"]


class SegmentFilterSet(CreatedFilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", label=_("Name contains"))

    class Meta:
        model = Segment
        fields = ["instance", "account", "opted_out", "created_by"]


class OptOutKeywordFilterSet(CreatedFilterSet):
    class Meta:
        model = OptOutKeyword
        fields = ["keyword", "is_enabled", "match_type"]


class OptOutFilterSet(CreatedFilterSet):
    opted_out = django_filters.BooleanFilter(field_name="is_opted_out", label=_("Opted out"))
    opted_out_after = IsoDateTimeFilter(field_name="opted_out_at", lookup_expr="gte",
                                                       label=_("Opted out at or after"))
    opted_in_after = IsoDateTimeFilter(field_name="opted_in_at", lookup_expr="gte",
                                                      label=_("Opted back in at or after"))

    class Meta:
        model = OptOut
        fields = ["account", "contact_wxid", "is_opted_out", "keyword", "event_id", "confirmation_task"]


class WelcomeMessageFilterSet(CreatedFilterSet):
    class Meta:
        model = WelcomeMessage
        fields = ["account", "kind", "is_enabled", "created_by"]


class AutoReplyFilterSet(CreatedFilterSet):
    class Meta:
        model = AutoReply
        fields = ["account", "keyword", "match_type", "is_enabled", "created_by"]


class SensitiveWordFilterSet(CreatedFilterSet):
    class Meta:
        model = SensitiveWord
        fields = ["word", "is_enabled"]
