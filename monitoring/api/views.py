"""API of monitoring: system logs (keyset pages over the daily shards), the audit trail
(read-only), alert records (acknowledge / resolve), alert rules (CRUD), the dashboard."""
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers as drf_serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring import services
from monitoring.admin import LOG_COLUMNS, SystemLogFilterForm, day_bounds
from monitoring.filtersets import AlertRecordFilterSet, AlertRuleFilterSet, AuditLogFilterSet
from monitoring.models import AlertRecord, AlertRule, AuditLog, SystemLog
from wework import shards
from wework.api.permissions import PlatformPermission
from wework.api.filters import refuse_unknown
from wework.api.views import (
    KEYSET_PARAMS, PlatformModelViewSet, PlatformReadOnlyViewSet, keyset_page_params, keyset_response,
)
from wework.errors import NotFoundError, PermissionDeniedError

from .serializers import (
    AlertRecordSerializer,
    AlertRuleSerializer,
    AuditLogSerializer,
    CommentSerializer,
    SystemLogSerializer,
)


class AuditLogViewSet(PlatformReadOnlyViewSet):
    queryset = AuditLog.objects.order_by("-id")
    serializer_class = AuditLogSerializer
    filterset_class = AuditLogFilterSet
    search_fields = ["=username", "operation", "=resource_id"]
    ordering_fields = ["id", "created_at"]


class AlertRuleViewSet(PlatformModelViewSet):
    queryset = AlertRule.objects.order_by("name")
    serializer_class = AlertRuleSerializer
    filterset_class = AlertRuleFilterSet
    search_fields = ["name", "display_name"]

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)


class AlertRecordViewSet(PlatformReadOnlyViewSet):
    queryset = AlertRecord.objects.order_by("-id")
    serializer_class = AlertRecordSerializer
    filterset_class = AlertRecordFilterSet
    search_fields = ["=rule_name", "alert_title"]
    ordering_fields = ["id", "created_at", "alert_level"]
    action_permissions = {
        "acknowledge": ["monitoring.ack_alert"],
        "resolve": ["monitoring.ack_alert"],
    }

    def _transition(self, request, apply):
        record = self.get_object()
        body = CommentSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        record = apply(record, request.user, body.validated_data.get("comment", ""))
        return Response(AlertRecordSerializer(record).data)

    @action(detail=True, methods=["post"], serializer_class=CommentSerializer)
    def acknowledge(self, request, pk=None):
        return self._transition(request, services.acknowledge)

    @action(detail=True, methods=["post"], serializer_class=CommentSerializer)
    def resolve(self, request, pk=None):
        return self._transition(request, services.resolve)


LOG_FILTERS = [
    OpenApiParameter("day", OpenApiTypes.DATE, description="Local day (default today)."),
    *[OpenApiParameter(n, OpenApiTypes.STR) for n in ("level", "service", "module", "action",
                                                      "trace_id", "q")],
    OpenApiParameter("user_id", OpenApiTypes.INT),
    OpenApiParameter("instance_id", OpenApiTypes.INT),
    OpenApiParameter("after", OpenApiTypes.INT, description="Cursor: `next_after` of the "
                                                            "previous page."),
    OpenApiParameter("limit", OpenApiTypes.INT, description="1-500, default 50."),
]


class SystemLogListView(APIView):
    """One day of system logs, newest first, keyset pages (`after`), no COUNT."""

    permission_classes = [PlatformPermission]
    model = SystemLog

    @extend_schema(operation_id="monitoring_system_logs_list", parameters=LOG_FILTERS,
                   responses=inline_serializer(
        "SystemLogPage", {"day": drf_serializers.DateField(),
                          "next_after": drf_serializers.IntegerField(allow_null=True),
                          "results": drf_serializers.ListField(
                              child=drf_serializers.DictField())}))
    def get(self, request):
        refuse_unknown(request.query_params, [*SystemLogFilterForm.base_fields, *KEYSET_PARAMS])
        form = SystemLogFilterForm(request.query_params)
        if not form.is_valid():
            raise ValidationError(form.errors)
        day = form.cleaned_data.get("day") or timezone.localdate()
        since, until = day_bounds(day)
        after, limit = keyset_page_params(request)
        page = shards.paginate(SystemLog, since=since, until=until, filters=form.lookups(),
                               after=after, limit=limit, values=LOG_COLUMNS)
        return keyset_response(page.items, page.next_after, day=day.isoformat())


class SystemLogDetailView(APIView):
    """One system log record (its id tells the day shard)."""

    permission_classes = [PlatformPermission]
    model = SystemLog

    @extend_schema(operation_id="monitoring_system_logs_retrieve",
                   responses=SystemLogSerializer)
    def get(self, request, pk):
        row = shards.get_or_none(SystemLog, pk)
        if row is None:
            raise NotFoundError(_("No such log record."))
        return Response(SystemLogSerializer(row).data)


class DashboardView(APIView):
    """The admin home page figures: every instance for a role grant, only the instances of
    the user's object grants otherwise (figures, lists and alerts alike)."""

    permission_classes = [PlatformPermission]
    required_permissions = ["monitoring.view_alertrecord"]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        data = services.dashboard_for(request.user)
        if data is None:
            raise PermissionDeniedError(_("You may see no instance's figures."))
        return Response(data)
