"""FilterSets of scrm's API lists (the admin mirrors their fields)."""
import django_filters
from django.utils.translation import gettext_lazy as _

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


class TagGroupFilterSet(django_filters.FilterSet):
    class Meta:
        model = TagGroup
        fields = ["name"]


class TagFilterSet(django_filters.FilterSet):
    class Meta:
        model = Tag
        fields = ["group", "name"]


class ContactTagFilterSet(django_filters.FilterSet):
    class Meta:
        model = ContactTag
        fields = ["tag", "account", "contact_wxid", "source"]


class TagRuleFilterSet(django_filters.FilterSet):
    class Meta:
        model = TagRule
        fields = ["kind", "tag", "account", "is_enabled"]


class SegmentFilterSet(django_filters.FilterSet):
    class Meta:
        model = Segment
        fields = ["instance", "account"]


class OptOutKeywordFilterSet(django_filters.FilterSet):
    class Meta:
        model = OptOutKeyword
        fields = ["is_enabled", "match_type"]


class OptOutFilterSet(django_filters.FilterSet):
    opted_out = django_filters.BooleanFilter(field_name="is_opted_out", label=_("Opted out"))

    class Meta:
        model = OptOut
        fields = ["account", "contact_wxid", "is_opted_out"]


class WelcomeMessageFilterSet(django_filters.FilterSet):
    class Meta:
        model = WelcomeMessage
        fields = ["account", "kind", "is_enabled"]


class AutoReplyFilterSet(django_filters.FilterSet):
    class Meta:
        model = AutoReply
        fields = ["account", "match_type", "is_enabled"]


class SensitiveWordFilterSet(django_filters.FilterSet):
    class Meta:
        model = SensitiveWord
        fields = ["is_enabled"]
