"""API of private-domain operations: tag groups, tags, contact tags (bulk add/remove), tag rules,
segments (live count), opt-out keywords, opt-outs (opt back in), welcome messages, auto-replies
and sensitive words. Every write goes through the services or the model (audited), under the
platform's object permissions."""
from django.db import transaction
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from accounts.scoping import model_perm, scope_queryset
from contacts.api.views import ContactViewSet
from contacts.models import WeworkAccount
from wework.api.views import PlatformModelViewSet, PlatformReadOnlyViewSet

from .. import filtersets
from ..models import (
    AutoReply,
    ContactTag,
    OptOut,
    OptOutKeyword,
    RuleKind,
    Segment,
    SensitiveWord,
    Tag,
    TagGroup,
    TagRule,
    WelcomeMessage,
)
from ..services import access, optouts, segments, tags as tag_services
from . import serializers as s

CHANGED = inline_serializer("ScrmChanged", {"changed": serializers.IntegerField()})


class OwnedViewSet(PlatformModelViewSet):
    """Rules that send or tag on behalf of whoever set them up (`created_by`)."""

    def perform_create(self, serializer):
        with transaction.atomic():  # as the base's: a row outside the user's scope is rolled back
            obj = serializer.save(created_by=self.request.user)
            if not self.request.user.has_perm(model_perm(type(obj), "add"), obj):
                raise PermissionDenied(_("You may not create objects on that instance."))


def _account(request, raw, perm):
    """The account named in a request body, if the user may `perm` on its instance (else 404)."""
    try:
        account = WeworkAccount.objects.get(pk=int(raw))
    except (WeworkAccount.DoesNotExist, TypeError, ValueError):
        raise ValidationError({"account": [_("Unknown account.")]}) from None
    if not access.allowed(request.user, perm, account.instance_id):
        raise NotFound(_("Unknown account."))
    return account


class TagGroupViewSet(PlatformModelViewSet):
    queryset = TagGroup.objects.order_by("sort_order", "id")
    serializer_class = s.TagGroupSerializer
    filterset_class = filtersets.TagGroupFilterSet
    ordering_fields = ["id", "name", "sort_order"]

    def perform_destroy(self, instance):
        if instance.tags.exists():
            raise ValidationError({"tags": [_("The group has tags: move or delete them first.")]})
        instance.delete()


class TagViewSet(PlatformModelViewSet):
    queryset = Tag.objects.order_by("sort_order", "id")
    serializer_class = s.TagSerializer
    filterset_class = filtersets.TagFilterSet
    ordering_fields = ["id", "name", "sort_order"]

    def perform_destroy(self, instance):
        tag_services.delete_tag(self.request.user, instance)


class ContactTagViewSet(PlatformReadOnlyViewSet):
    """Who carries which tag. `add` and `remove` tag contacts of one account in bulk; the design's
    `contacts.tags` column follows."""

    queryset = ContactTag.objects.select_related("tag").order_by("-id")
    serializer_class = s.ContactTagSerializer
    filterset_class = filtersets.ContactTagFilterSet
    ordering_fields = ["id"]
    action_permissions = {"add": [access.TAG_CONTACTS], "remove": [access.UNTAG_CONTACTS]}

    @extend_schema(request=s.TagContactsSerializer, responses={200: CHANGED})
    @action(detail=False, methods=["post"], serializer_class=s.TagContactsSerializer)
    def add(self, request):
        body = s.TagContactsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        account = _account(request, body.validated_data["account"], access.TAG_CONTACTS)
        n = tag_services.tag_contacts(request.user, account, body.validated_data["contacts"],
                                      body.validated_data["tags"])
        return Response({"changed": n})

    @extend_schema(request=s.TagContactsSerializer, responses={200: CHANGED})
    @action(detail=False, methods=["post"], serializer_class=s.TagContactsSerializer)
    def remove(self, request):
        body = s.TagContactsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        account = _account(request, body.validated_data["account"], access.UNTAG_CONTACTS)
        n = tag_services.untag_contacts(request.user, account, body.validated_data["contacts"],
                                        body.validated_data["tags"])
        return Response({"changed": n})


class TagRuleViewSet(OwnedViewSet):
    queryset = TagRule.objects.order_by("-id")
    serializer_class = s.TagRuleSerializer
    filterset_class = filtersets.TagRuleFilterSet
    ordering_fields = ["id"]
    action_permissions = {"apply": [access.TAG_CONTACTS]}

    @extend_schema(request=None, responses={200: CHANGED})
    @action(detail=True, methods=["post"])
    def apply(self, request, pk=None):
        """Tag the receivers of a campaign rule's campaign now."""
        rule = self.get_object()
        if rule.kind != RuleKind.CAMPAIGN:
            raise ValidationError({"kind": [_("Only campaign rules are applied on demand.")]})
        return Response({"changed": tag_services.apply_campaign_rule(request.user, rule)})


class SegmentViewSet(OwnedViewSet):
    queryset = Segment.objects.order_by("-id")
    serializer_class = s.SegmentSerializer
    filterset_class = filtersets.SegmentFilterSet
    ordering_fields = ["id", "name"]

    @extend_schema(responses={200: s.SegmentCountSerializer})
    @action(detail=True, methods=["get"])
    def count(self, request, pk=None):
        """The live count, capped (SEGMENT_COUNT_CAP): `capped` says there are more."""
        found = segments.count(self.get_object())
        return Response({"count": found.value, "capped": found.capped, "text": str(found)})


class OptOutKeywordViewSet(PlatformModelViewSet):
    queryset = OptOutKeyword.objects.order_by("id")
    serializer_class = s.OptOutKeywordSerializer
    filterset_class = filtersets.OptOutKeywordFilterSet
    ordering_fields = ["id", "keyword"]


class OptOutViewSet(PlatformReadOnlyViewSet):
    """Contacts who opted out. `opt_in` opts one back in; `opt_out` opts contacts out on their
    behalf (they asked elsewhere)."""

    queryset = OptOut.objects.order_by("-id")
    serializer_class = s.OptOutSerializer
    filterset_class = filtersets.OptOutFilterSet
    ordering_fields = ["id", "opted_out_at"]
    action_permissions = {"opt_in": [access.CHANGE_OPT_OUT], "opt_out": [access.CHANGE_OPT_OUT]}

    def get_queryset(self):
        qs = super().get_queryset()
        if getattr(self, "action", None) == "opt_in":
            qs = scope_queryset(OptOut.objects.all(), self.request.user, access.CHANGE_OPT_OUT)
        return qs

    @extend_schema(request=None, responses={200: s.OptOutSerializer})
    @action(detail=True, methods=["post"])
    def opt_in(self, request, pk=None):
        row = self.get_object()
        optouts.opt_in(request.user, [row])
        row.refresh_from_db()
        return Response(s.OptOutSerializer(row).data)

    @extend_schema(request=s.OptOutContactsSerializer, responses={200: CHANGED})
    @action(detail=False, methods=["post"], serializer_class=s.OptOutContactsSerializer)
    def opt_out(self, request):
        body = s.OptOutContactsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        account = _account(request, body.validated_data["account"], access.CHANGE_OPT_OUT)
        n = optouts.opt_out_by_operator(request.user, account, body.validated_data["contacts"])
        return Response({"changed": n}, status=status.HTTP_200_OK)


class WelcomeMessageViewSet(OwnedViewSet):
    queryset = WelcomeMessage.objects.order_by("-id")
    serializer_class = s.WelcomeMessageSerializer
    filterset_class = filtersets.WelcomeMessageFilterSet
    ordering_fields = ["id"]


class AutoReplyViewSet(OwnedViewSet):
    queryset = AutoReply.objects.order_by("sort_order", "id")
    serializer_class = s.AutoReplySerializer
    filterset_class = filtersets.AutoReplyFilterSet
    ordering_fields = ["id", "sort_order"]


class SensitiveWordViewSet(PlatformModelViewSet):
    queryset = SensitiveWord.objects.order_by("id")
    serializer_class = s.SensitiveWordSerializer
    filterset_class = filtersets.SensitiveWordFilterSet
    ordering_fields = ["id", "word"]


class TaggedContactViewSet(ContactViewSet):
    """The contacts of one instance (`?instance=` required, as `/contacts/`), with tag filters:
    `tags_all`, `tags_any`, `tags_none` (comma-separated tag names) and `opted_out`
    (true/false)."""

    extra_params = ("tags_all", "tags_any", "tags_none", "opted_out")

    @extend_schema(parameters=[
        OpenApiParameter(name, str, description=_("Comma-separated tag names.")) for name in extra_params[:3]
    ] + [OpenApiParameter("opted_out", bool)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        params = self.request.query_params
        names = {key: tuple(n.strip() for n in params.get(key, "").split(",") if n.strip())
                 for key in self.extra_params[:3]}
        opted = params.get("opted_out", "").lower()
        if opted not in ("", "true", "false", "1", "0"):
            raise ValidationError({"opted_out": [_("Use true or false.")]})
        return segments.apply_filters(queryset, segments.SegmentFilters(
            **names, opted_out=None if opted == "" else opted in ("true", "1")))
