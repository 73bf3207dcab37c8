"""API of monitoring: system logs (keyset pages over the daily shards), the audit trail
(read-only), alert records (acknowledge / resolve), alert rules (CRUD), the dashboard."""
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring import services
from monitoring.admin import LOG_COLUMNS, SystemLogFilterForm, day_bounds
from monitoring.filtersets import AlertRecordFilterSet, AlertRuleFilterSet, AuditLogFilterSet
from monitoring.models import AlertRecord, AlertRule, AuditLog, SystemLog
from wework import shards
from wework.api.permissions import PlatformPermission
from wework.api.pagination import AfterIdPagination
from wework.api.views import PlatformModelViewSet, PlatformReadOnlyViewSet, ShardedListViewSet, form_parameters
from wework.errors import NotFoundError, PermissionDeniedError

from .serializers import (
    AlertRecordSerializer,
    AlertRuleSerializer,
    AuditLogSerializer,
    CommentSerializer,
    SystemLogRowSerializer,
    SystemLogSerializer,
)


class AuditLogViewSet(PlatformReadOnlyViewSet):
    queryset = AuditLog.objects.order_by("-id")
    serializer_class = AuditLogSerializer
    filterset_class = AuditLogFilterSet
    search_fields = ["=username", "^operation", "=resource_id"]
    ordering_fields = ["id", "created_at"]
    large_table = True  # millions of rows: indexed searches (wework.api.filters.PlatformSearchFilter)

    def indexed_search_scope(self, attname):
        if attname != "resource_id":
            return {}
        # (resource_type, resource_id): a resource's id is searched within ?resource_type=
        kind = self.request.query_params.get("resource_type", "")
        return {"resource_type": kind} if kind else None


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


class DayPagination(AfterIdPagination):
    extra_schema = {"day": {"type": "string", "format": "date", "description": "The day read."}}


class SystemLogListView(ShardedListViewSet):
    """One day of system logs (`?day=`, default today: its daily shard), newest first, keyset
    pages (`after`), no COUNT; filtered by the admin's form (indexed columns, `q` in the
    message)."""

    base_model = SystemLog
    serializer_class = SystemLogRowSerializer
    filter_form_class = SystemLogFilterForm
    pagination_class = DayPagination
    page_values = LOG_COLUMNS

    def shard_scope(self, request):
        form = SystemLogFilterForm(request.query_params)
        day = (form.cleaned_data.get("day") if form.is_valid() else None) or timezone.localdate()
        since, until = day_bounds(day)
        return {"since": since, "until": until}

    def page_extra(self, request, scope):
        return {"day": timezone.localtime(scope["since"]).date().isoformat()}

    @extend_schema(operation_id="monitoring_system_logs_list",
                   parameters=form_parameters(SystemLogFilterForm, exclude=("after",)))
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


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
