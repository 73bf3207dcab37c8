"""Messaging API: messages (by month shard), send, tasks with their actions, receivers, templates.

Every list is scoped to the instances the user may see. Writes call the services, which check
the permission on the account's instance and the input: their errors (MessagingInvalid → 400
with field messages, SendPermissionDenied → 403) are answered by the API's one exception
handler (wework.api.exceptions).
"""
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from wework import shards
from wework.api.views import PlatformModelViewSet, PlatformReadOnlyViewSet, ShardedListViewSet
from wework.shards.conf import period_of

from .. import permissions
from ..filtersets import MessageFilterSet, MessageReceiverFilterSet, MessageTaskFilterSet, MessageTemplateFilterSet
from ..models import Message, MessageReceiver, MessageTask, MessageTemplate
from ..services import counters, lifecycle, receivers, sending, stats, templates
from .serializers import (
    MessageReceiverSerializer, MessageSerializer, MessageTaskSerializer, MessageTemplateSerializer,
    PreviewSerializer, ResumeSerializer, SendMessageSerializer, TaskCreateSerializer,
)


class MessageViewSet(ShardedListViewSet):
    """Messages of one month (`?month=YYYYMM`, default the current one), newest first, keyset
    paged with `?after=<id>` (no COUNT): `{"results": [...], "next_after": id|null}`.

    The page is read from the month's shard alone (`ORDER BY id DESC LIMIT n`): the answer names
    the account by id, so no account is joined, and a user limited to some instances is limited
    to their accounts' ids (one indexed query on the accounts), never through a join that would
    let the server start from the accounts and sort the whole month."""

    queryset = Message.objects.none()
    base_model = Message
    serializer_class = MessageSerializer
    filterset_class = MessageFilterSet
    shard_params = ("month",)
    action_permissions = {"send": [permissions.SEND_MESSAGE]}

    def _scope_q(self, request):
        return permissions.instance_q(request.user, "messaging.view_message", "account__instance_id")

    def row_scope(self, request):
        return permissions.account_scope_q(request.user, "messaging.view_message")

    def shard_scope(self, request):
        try:
            period = period_of("month", self._month(request.query_params))
        except shards.ShardError:
            return None
        return {"since": period.start, "until": period.end}

    @extend_schema(parameters=[
        OpenApiParameter("month", OpenApiTypes.STR, description="YYYYMM (default: the current month)"),
    ])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @staticmethod
    def _month(params):
        """A time in the asked month's shard (default: this month); 400 naming a bad month."""
        month = params.get("month") or timezone.localdate().strftime("%Y%m")
        try:
            return timezone.make_aware(timezone.datetime(int(month[:4]), int(month[4:6]), 15))
        except (ValueError, TypeError):
            raise ValidationError({"month": [_("Use YYYYMM, e.g. 202611.")]}) from None

    def retrieve(self, request, pk=None):
        obj = shards.get_or_none(Message, pk) if str(pk).isdigit() else None
        if obj is None or not type(obj)._default_manager.filter(self._scope_q(request), pk=obj.pk).exists():
            raise NotFound()
        return Response(MessageSerializer(obj).data)

    @extend_schema(request=SendMessageSerializer, responses={201: MessageTaskSerializer})
    @action(detail=False, methods=["post"])
    def send(self, request):
        """Send one message (text, image, video, file, link, card, location) now or at a time."""
        ser = SendMessageSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        task = sending.create_task(request.user, ser.task_request(ser.validated_data))
        return Response(MessageTaskSerializer(task).data, status=status.HTTP_201_CREATED)


class MessageTaskViewSet(PlatformReadOnlyViewSet):
    """Tasks; POST creates one (validated, receivers materialized); actions pause, resume, cancel,
    resend_failed, progress, failed (failed receivers with reasons)."""

    queryset = MessageTask.objects.select_related("account").order_by("-id")
    serializer_class = MessageTaskSerializer
    filterset_class = MessageTaskFilterSet
    search_fields = ["task_name"]
    ordering_fields = ["id", "created_at", "priority", "status", "progress"]
    # Creating: the service checks send_message / send_broadcast on the account's instance.
    action_permissions = {
        "create": [],
        "pause": [permissions.MANAGE_TASK],
        "resume": [permissions.MANAGE_TASK],
        "cancel": [permissions.MANAGE_TASK],
        "resend_failed": [permissions.MANAGE_TASK],
        "progress": ["messaging.view_messagetask"],
        "failed": ["messaging.view_messagetask"],
        "stats": ["messaging.view_messagetask"],
    }

    def get_serializer_class(self):
        if self.action == "create":
            return TaskCreateSerializer
        return MessageTaskSerializer

    @extend_schema(request=TaskCreateSerializer, responses={201: MessageTaskSerializer})
    def create(self, request):
        ser = TaskCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        task = sending.create_task(request.user, ser.task_request(ser.validated_data))
        return Response(MessageTaskSerializer(task).data, status=status.HTTP_201_CREATED)

    def _manage(self, request, fn, **kwargs):
        """An operator action of `lifecycle` on the task (it checks messaging.manage_task)."""
        task = self.get_object()
        result = fn(request.user, task, **kwargs)
        task.refresh_from_db()
        data = MessageTaskSerializer(task).data
        if isinstance(result, int) and not isinstance(result, bool):
            data["requeued"] = result
        return Response(data)

    @extend_schema(request=None, responses=MessageTaskSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._manage(request, lifecycle.pause_task)

    @extend_schema(request=ResumeSerializer, responses=MessageTaskSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        ser = ResumeSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        return self._manage(request, lifecycle.resume_task, clear_stop=ser.validated_data["clear_stop"])

    @extend_schema(request=None, responses=MessageTaskSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._manage(request, lifecycle.cancel_task)

    @extend_schema(request=None, responses=MessageTaskSerializer)
    @action(detail=True, methods=["post"], url_path="resend-failed")
    def resend_failed(self, request, pk=None):
        return self._manage(request, lifecycle.resend_failed)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def progress(self, request, pk=None):
        return Response(counters.task_progress(self.get_object()))

    @extend_schema(parameters=[OpenApiParameter("window_hours", OpenApiTypes.INT,
                                                description="reply window in hours, 1-720 (default 24)")],
                   responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        """Delivered, failed, replied within the window, opted out after it; per day and account."""
        task = self.get_object()
        return Response(stats.task_stats(task, stats.window_hours(request.query_params.get("window_hours"))))

    @extend_schema(responses=MessageReceiverSerializer(many=True))
    @action(detail=True, methods=["get"])
    def failed(self, request, pk=None):
        task = self.get_object()
        page = self.paginate_queryset(receivers.failed_receivers(task))
        return self.get_paginated_response(MessageReceiverSerializer(page, many=True).data)


class MessageReceiverViewSet(PlatformReadOnlyViewSet):
    queryset = MessageReceiver.objects.order_by("-id")  # the task is its id: no join
    serializer_class = MessageReceiverSerializer
    filterset_class = MessageReceiverFilterSet
    ordering_fields = ["id", "send_time", "send_status"]


class MessageTemplateViewSet(PlatformModelViewSet):
    queryset = MessageTemplate.objects.order_by("sort_order", "-id")
    serializer_class = MessageTemplateSerializer
    filterset_class = MessageTemplateFilterSet
    search_fields = ["name", "category"]
    ordering_fields = ["id", "name", "use_count", "last_used_at", "sort_order"]
    small_table = True  # a few hundred rows: any declared ordering (wework.api.filters)
    # Reading (list, retrieve, preview) follows the compose page's rule and is checked in
    # get_queryset() (permissions.previewable_templates); writes keep the model permissions.
    READ_ACTIONS = ("list", "retrieve", "preview")
    action_permissions: dict[str, list[str]] = {name: [] for name in READ_ACTIONS}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False) or self.action not in self.READ_ACTIONS:
            return super().get_queryset()
        previewable = permissions.previewable_templates(self.request.user)
        if previewable is None:
            raise PermissionDenied()
        return previewable.order_by("sort_order", "-id")

    def perform_create(self, serializer):
        serializer.instance = templates.save_template(self.request.user, dict(serializer.validated_data))

    def perform_update(self, serializer):
        serializer.instance = templates.save_template(
            self.request.user, dict(serializer.validated_data), template=serializer.instance
        )

    def perform_destroy(self, instance):
        instance.delete()  # soft delete

    @extend_schema(request=PreviewSerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post", "get"])
    def preview(self, request, pk=None):
        template = self.get_object()
        values = request.data if request.method == "POST" else {"values": dict(request.query_params.items())}
        ser = PreviewSerializer(data=values)
        ser.is_valid(raise_exception=True)
        return Response(templates.preview_template(template, ser.validated_data.get("values") or {}))
