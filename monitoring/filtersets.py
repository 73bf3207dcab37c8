"""FilterSets of monitoring (API; the admin uses list_filter with fixed choices)."""
import django_filters

from wework.api.filters import IsoDateTimeFilter, PlatformFilterSet

from .models import (
    OPEN_STATUSES, AlertLevel, AlertRecord, AlertRule, AlertStatus, AuditLog, OperationType,
)


class CreatedFilters(PlatformFilterSet):
    since = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")


class AuditLogFilterSet(CreatedFilters):
    operation_type = django_filters.ChoiceFilter(choices=OperationType.choices)

    class Meta:
        model = AuditLog
        fields = ["user", "username", "operation", "operation_type", "resource_type",
                  "resource_id", "result", "request_id", "ip_address", "session_id"]


class AlertRecordFilterSet(CreatedFilters):
    status = django_filters.MultipleChoiceFilter(choices=AlertStatus.choices)
    alert_level = django_filters.MultipleChoiceFilter(choices=AlertLevel.choices)
    open = django_filters.BooleanFilter(method="filter_open")

    class Meta:
        model = AlertRecord
        fields = ["rule_name", "source_type", "source_id", "instance", "status", "alert_level",
                  "notification_sent", "metric_name", "acknowledged_by", "resolved_by"]

    def filter_open(self, queryset, name, value):
        if value is None:
            return queryset
        if value:
            return queryset.filter(status__in=OPEN_STATUSES)
        return queryset.exclude(status__in=OPEN_STATUSES)


class AlertRuleFilterSet(CreatedFilters):
    class Meta:
        model = AlertRule
        fields = ["name", "rule_type", "alert_level", "is_enabled", "metric_name", "comparison",
                  "created_by"]
