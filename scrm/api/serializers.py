"""Serializers of scrm's API; the rules are the services' and the forms' (same messages)."""
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from messaging.errors import error_messages
from wework.api.serializers import IdField, ModelSerializer
from wework.errors import DomainError

from ..forms import check_rule
from ..models import (
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
from ..services import autoreplies, segments, sensitive, welcome


class TagGroupSerializer(ModelSerializer):
    class Meta:
        model = TagGroup
        fields = ["id", "name", "sort_order", "created_at", "updated_at"]


class TagSerializer(ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "group", "name", "color", "sort_order", "created_at", "updated_at"]


class ContactTagSerializer(ModelSerializer):
    tag_name = serializers.CharField(source="tag.name", read_only=True)

    class Meta:
        model = ContactTag
        fields = ["id", "tag", "tag_name", "account", "contact_wxid", "source", "created_at"]
        read_only_fields = fields


class TagContactsSerializer(serializers.Serializer):
    """`POST /scrm/contact-tags/add/` and `/remove/`: tags (names or ids) on contacts of one account."""

    account = IdField()
    contacts = serializers.ListField(child=serializers.CharField(max_length=100), min_length=1, max_length=100_000)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), min_length=1, max_length=100)


class TagRuleSerializer(ModelSerializer):
    class Meta:
        model = TagRule
        fields = ["id", "name", "kind", "tag", "account", "keyword", "match_type", "task", "is_enabled",
                  "applied_count", "created_by", "created_at", "updated_at"]
        read_only_fields = ["applied_count", "created_by", "created_at", "updated_at"]

    def validate(self, attrs):
        data = {**({f: getattr(self.instance, f) for f in ("kind", "keyword", "task", "account")}
                   if self.instance else {}), **attrs}
        errors: dict = {}
        check_rule(data, lambda field, message: errors.setdefault(field, []).append(message))
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class TagNamesField(serializers.ListField):
    child = serializers.CharField(max_length=50)

    def to_internal_value(self, data):
        names = sorted(set(super().to_internal_value(data)))
        unknown = sorted(set(names) - set(Tag.objects.filter(name__in=names).values_list("name", flat=True)))
        if unknown:
            raise serializers.ValidationError(_("Unknown tags: %(list)s.") % {"list": ", ".join(unknown)})
        return names


class SegmentSerializer(ModelSerializer):
    tags_all = TagNamesField(required=False)
    tags_any = TagNamesField(required=False)
    tags_none = TagNamesField(required=False)

    class Meta:
        model = Segment
        fields = ["id", "name", "instance", "account", "tags_all", "tags_any", "tags_none", "added_after",
                  "added_before", "last_message_after", "last_message_before", "opted_out", "created_by",
                  "created_at", "updated_at"]
        read_only_fields = ["created_by", "created_at", "updated_at"]

    def validate(self, attrs):
        fields = ["account", "instance", *(name for pair in segments.DATE_RANGES for name in pair)]
        data = {**({f: getattr(self.instance, f) for f in fields} if self.instance else {}), **attrs}
        errors: dict = {}
        segments.check_segment(data, lambda field, message: errors.setdefault(field, []).append(message))
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class SegmentCountSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    capped = serializers.BooleanField()
    text = serializers.CharField()


class OptOutKeywordSerializer(ModelSerializer):
    class Meta:
        model = OptOutKeyword
        fields = ["id", "keyword", "match_type", "is_enabled", "created_at", "updated_at"]


class OptOutSerializer(ModelSerializer):
    class Meta:
        model = OptOut
        fields = ["id", "account", "contact_wxid", "is_opted_out", "keyword", "event_id", "opted_out_at",
                  "opted_in_at", "confirmation_task", "created_at", "updated_at"]
        read_only_fields = fields


class WxidField(serializers.CharField):
    """A WeCom id: text only (DRF's CharField would take 1 for "1")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class OptOutContactsSerializer(serializers.Serializer):
    account = IdField()
    contacts = serializers.ListField(child=WxidField(max_length=100), min_length=1, max_length=10_000)


def _sendable(check, value):
    """`value` checked by a service as a send will check it; its messages as the field's."""
    try:
        return check(value)
    except DomainError as exc:
        raise serializers.ValidationError(error_messages(exc)) from None


def _no_sensitive_words(value):
    words = sensitive.found_words(value)
    if words:
        raise serializers.ValidationError(_("The text contains sensitive words: %(words)s.")
                                          % {"words": ", ".join(words)})
    return value


class WelcomeMessageSerializer(ModelSerializer):
    class Meta:
        model = WelcomeMessage
        fields = ["id", "account", "kind", "content", "is_enabled", "created_by", "created_at", "updated_at"]
        read_only_fields = ["created_by", "created_at", "updated_at"]

    def validate_content(self, value):
        return _no_sensitive_words(_sendable(welcome.check_content, value))


class AutoReplySerializer(ModelSerializer):
    class Meta:
        model = AutoReply
        fields = ["id", "account", "keyword", "match_type", "reply", "sort_order", "is_enabled", "created_by",
                  "created_at", "updated_at"]
        read_only_fields = ["created_by", "created_at", "updated_at"]

    def validate_reply(self, value):
        return _no_sensitive_words(_sendable(autoreplies.check_reply, value))


class SensitiveWordSerializer(ModelSerializer):
    class Meta:
        model = SensitiveWord
        fields = ["id", "word", "is_enabled", "created_at", "updated_at"]
