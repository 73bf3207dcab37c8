"""FilterSets of monitoring (API; the admin uses list_filter with fixed choices)."""
import django_filters

from .models import AlertLevel, AlertRecord, AlertRule, AlertStatus, AuditLog, OperationType


class AuditLogFilterSet(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    operation_type = django_filters.ChoiceFilter(choices=OperationType.choices)

    class Meta:
        model = AuditLog
        fields = ["user", "username", "operation", "operation_type", "resource_type",
                  "resource_id", "result", "request_id"]


class AlertRecordFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=AlertStatus.choices)
    alert_level = django_filters.MultipleChoiceFilter(choices=AlertLevel.choices)
    open = django_filters.BooleanFilter(method="filter_open")

    class Meta:
        model = AlertRecord
        fields = ["rule_name", "source_type", "source_id", "instance", "status", "alert_level",
                  "notification_sent"]

    def filter_open(self, queryset, name, value):
        from .services import OPEN_STATUSES

        if value is None:
            return queryset
        if value:
            return queryset.filter(status__in=OPEN_STATUSES)
        return queryset.exclude(status__in=OPEN_STATUSES)


class AlertRuleFilterSet(django_filters.FilterSet):
    class Meta:
        model = AlertRule
        fields = ["rule_type", "alert_level", "is_enabled", "metric_name"]
