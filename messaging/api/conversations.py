"""The conversation API for integrators: one account's messages with one contact or group
(across month shards, newest first, keyset paged), the messages after one (`newer_than`, for
polling), replying through the send path, and the read marker.

    GET  /api/v1/messaging/conversations/?account=<id>&chat_wxid=<wxid>[&after=&limit=|&newer_than=]
    POST /api/v1/messaging/conversations/reply/   {account, chat_wxid, message_type, content, ...}
    POST /api/v1/messaging/conversations/read/    {account, chat_wxid[, message_id]}
    GET  /api/v1/messaging/conversations/inbox/[?account=&before=&limit=|&after=]

Reading needs `messaging.view_message` on the account's instance (else 404, as for a missing
conversation); replying the send path's `messaging.send_message` (checked by the service).
A reply with an `Idempotency-Key` header (or `idempotency_key`) sent twice creates one task.
"""
import re

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.viewsets import ViewSet

from wework.api.pagination import AfterIdPagination
from wework.api.permissions import PlatformPermission
from wework.api.serializers import IdField
from wework.api.views import KEYSET_PARAMS
from wework.ids import fits_bigint

from .. import display, permissions
from ..models import Message, MessageType
from ..services import conversations, inbox
from ..services.requests import TaskRequest
from .serializers import MessageTaskSerializer

LIST_PARAMS = {"account", "chat_wxid", "newer_than", "format", *KEYSET_PARAMS}


class ConversationMessageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.IntegerField(source="account_id")
    chat_type = serializers.IntegerField()
    chat_wxid = serializers.CharField()
    message_type = serializers.CharField()
    content = serializers.SerializerMethodField()
    direction = serializers.SerializerMethodField()
    sender = serializers.SerializerMethodField()
    send_status = serializers.IntegerField()
    send_time = serializers.DateTimeField(allow_null=True)
    error_code = serializers.CharField(allow_null=True)
    task_id = serializers.IntegerField(allow_null=True)
    parent_message_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_content(self, row) -> dict:
        return display.parts(row["message_type"], row.get("message_content"))

    def get_direction(self, row) -> str:
        meta = row.get("message_metadata") or {}
        return meta.get("direction") or ("out" if row.get("task_id") else "in")

    def get_sender(self, row) -> dict | None:
        return (row.get("message_metadata") or {}).get("sender")


class ConversationKeySerializer(serializers.Serializer):
    account = IdField(min_value=1)
    chat_wxid = serializers.CharField(max_length=100)


class ReadSerializer(ConversationKeySerializer):
    message_id = IdField(min_value=1, required=False, allow_null=True)


class ReplySerializer(ConversationKeySerializer):
    message_type = serializers.ChoiceField(choices=MessageType.choices, required=False)
    content = serializers.JSONField(required=False, help_text="Text, or the content object of the type.")
    template = IdField(required=False, allow_null=True)
    template_variables = serializers.DictField(required=False)
    at_members = serializers.JSONField(required=False)
    reply_to = IdField(required=False, allow_null=True)
    idempotency_key = serializers.CharField(required=False, max_length=100)

    def validate(self, attrs):
        if not attrs.get("template") and not attrs.get("message_type"):
            raise ValidationError({"message_type": [_("Choose a message type or a template.")]})
        if attrs.get("message_type") and not attrs.get("template") and "content" not in attrs:
            raise ValidationError({"content": [_("This field is required.")]})
        errors = self.task_request(attrs).input_errors()
        if errors:
            raise ValidationError(errors)
        return attrs

    @staticmethod
    def task_request(data) -> TaskRequest:
        return TaskRequest(
            message_type=None if data.get("template") else data.get("message_type"),
            content=data.get("content"), template=data.get("template"),
            template_variables=data.get("template_variables"), at_members=data.get("at_members"),
            reply_to=data.get("reply_to"), priority=1,
        )


PAGE = inline_serializer("ConversationPage", {
    "results": ConversationMessageSerializer(many=True), "next_after": serializers.IntegerField(allow_null=True),
    "unread": serializers.IntegerField(), "last_read_message_id": serializers.IntegerField(),
})


class InboxRowSerializer(serializers.Serializer):
    account = serializers.IntegerField(source="account_id")
    chat_wxid = serializers.CharField()
    chat_type = serializers.IntegerField()
    name = serializers.CharField()
    last_message_id = serializers.IntegerField(source="last_inbound_message_id")
    last_message_at = serializers.DateTimeField(source="last_inbound_at", allow_null=True)
    preview = serializers.CharField()
    last_read_message_id = serializers.IntegerField()


INBOX_PAGE = inline_serializer("InboxPage", {
    "results": InboxRowSerializer(many=True), "next_before": serializers.IntegerField(allow_null=True),
    "newest": serializers.IntegerField(),
})


class ConversationViewSet(ViewSet):
    """One account's conversation with a contact or group chat."""

    permission_classes = [PlatformPermission]
    queryset = Message.objects.none()
    serializer_class = ConversationMessageSerializer
    action_permissions = {"reply": [permissions.SEND_MESSAGE], "read": [conversations.VIEW_MESSAGE],
                          "inbox": [conversations.VIEW_MESSAGE]}

    @staticmethod
    def _open(request, data):
        ser = ConversationKeySerializer(data=data)
        ser.is_valid(raise_exception=True)
        return conversations.open_conversation(request.user, ser.validated_data["account"],
                                               ser.validated_data["chat_wxid"])

    @extend_schema(parameters=[
        OpenApiParameter("account", OpenApiTypes.INT, required=True),
        OpenApiParameter("chat_wxid", OpenApiTypes.STR, required=True),
        OpenApiParameter("after", OpenApiTypes.INT, description="cursor: the next_after of the previous page"),
        OpenApiParameter("limit", OpenApiTypes.INT, description="1-500 (default 50)"),
        OpenApiParameter("newer_than", OpenApiTypes.INT,
                         description="instead of a page: the messages above this id, oldest first"),
    ], responses=PAGE)
    def list(self, request):
        unknown = sorted(set(request.query_params) - LIST_PARAMS)
        if unknown:
            raise ValidationError({name: [_("Unknown parameter.")] for name in unknown})
        conv = self._open(request, request.query_params)
        after, limit = AfterIdPagination().page_params(request)
        newer_than = (request.query_params.get("newer_than") or "").strip()
        marker = conversations.last_read_id(conv.account.pk, conv.chat_wxid)
        extra = {"unread": conversations.unread_count(conv.account.pk, conv.chat_wxid, marker=marker),
                 "last_read_message_id": marker}
        if newer_than:
            if not newer_than.isdigit():
                raise ValidationError({"newer_than": [_("Not an id.")]})
            rows = conversations.newer(conv, int(newer_than), limit=limit)
            return Response({**extra, "results": ConversationMessageSerializer(rows, many=True).data,
                             "next_after": None})
        page = conversations.history(conv, after=after, limit=limit)
        return Response({**extra, "results": ConversationMessageSerializer(page.items, many=True).data,
                         "next_after": page.next_after})

    @extend_schema(parameters=[
        OpenApiParameter("account", OpenApiTypes.INT, description="only this account"),
        OpenApiParameter("before", OpenApiTypes.INT, description="cursor: the next_before of the previous page"),
        OpenApiParameter("after", OpenApiTypes.INT,
                         description="instead of a page: the conversations whose newest received message is "
                                     "above this id (polling)"),
        OpenApiParameter("limit", OpenApiTypes.INT, description="1-200 (default 30)"),
    ], responses=INBOX_PAGE)
    @action(detail=False, methods=["get"])
    def inbox(self, request):
        """Conversations with unread received messages across the accounts you may read,
        newest first (keyset by `last_inbound_message_id`)."""
        params = request.query_params
        unknown = sorted(set(params) - {"account", "before", "after", "limit", "format"})
        errors = {name: [_("Unknown parameter.")] for name in unknown}
        numbers = {}
        for name in ("account", "before", "after", "limit"):
            value = params.get(name, "")
            if not value:
                continue
            # ASCII digits only: str.isdigit() also takes "²", which int() refuses
            if re.fullmatch(r"-?[0-9]{1,19}", value) is None or not fits_bigint(int(value)):
                errors[name] = [_("Not a number.")]
            else:
                numbers[name] = int(value)
        limit = numbers.get("limit", inbox.PAGE_SIZE)
        if "limit" in numbers and not 1 <= limit <= inbox.MAX_LIMIT:
            errors["limit"] = [_("Give a number from 1 to %(most)d.") % {"most": inbox.MAX_LIMIT}]
        for name in ("account", "before", "after"):
            if numbers.get(name, 0) < 0:
                errors[name] = [_("Must not be negative.")]
        if errors:
            raise ValidationError(errors)
        if params.get("after"):
            page = inbox.newer(request.user, int(params["after"]), account=params.get("account"), limit=limit)
        else:
            page = inbox.page(request.user, before=params.get("before"), account=params.get("account"), limit=limit)
        return Response({"results": InboxRowSerializer(page.items, many=True).data,
                         "next_before": page.next_before, "newest": page.newest})

    @extend_schema(request=ReplySerializer, responses={201: MessageTaskSerializer})
    @action(detail=False, methods=["post"])
    def reply(self, request):
        ser = ReplySerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        conv = conversations.open_conversation(request.user, ser.validated_data["account"],
                                               ser.validated_data["chat_wxid"])
        key = request.headers.get("Idempotency-Key") or ser.validated_data.get("idempotency_key")
        task = conversations.reply(request.user, conv, ser.task_request(ser.validated_data), idempotency_key=key)
        return Response(MessageTaskSerializer(task).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ReadSerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=False, methods=["post"])
    def read(self, request):
        ser = ReadSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        conv = self._open(request, request.data)
        marker = conversations.mark_read(request.user, conv, ser.validated_data.get("message_id"))
        return Response({"last_read_message_id": marker,
                         "unread": conversations.unread_count(conv.account.pk, conv.chat_wxid)})

