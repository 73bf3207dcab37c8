"""FilterSets of the instances app (API list filters; the admin mirrors their fields)."""
import django_filters
from django.utils.translation import gettext_lazy as _

from wework.api.filters import IsoDateTimeFilter, PlatformFilterSet

from .models import (
    ConfigType,
    EventState,
    InstanceConfig,
    InstanceEvent,
    InstanceMonitor,
    InstanceStatus,
    WeworkInstance,
)


class WeworkInstanceFilterSet(PlatformFilterSet):
    q = django_filters.CharFilter(method="search", label=_("Search"))
    status = django_filters.MultipleChoiceFilter(choices=InstanceStatus.choices)
    name = django_filters.CharFilter(lookup_expr="icontains")
    heartbeat_before = IsoDateTimeFilter(
        field_name="last_heartbeat", lookup_expr="lt", label=_("Last heartbeat before")
    )
    heartbeat_after = IsoDateTimeFilter(
        field_name="last_heartbeat", lookup_expr="gte", label=_("Last heartbeat after")
    )

    class Meta:
        model = WeworkInstance
        fields = ["status", "name", "instance_uuid", "version", "created_by"]

    def search(self, queryset, name, value):
        from django.db.models import Q

        return queryset.filter(
            Q(name__icontains=value) | Q(instance_uuid=value) | Q(api_url__icontains=value)
        )


class InstanceConfigFilterSet(PlatformFilterSet):
    config_type = django_filters.ChoiceFilter(choices=ConfigType.choices)
    config_key = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = InstanceConfig
        fields = ["instance", "config_key", "config_type", "is_encrypted", "is_system"]


class InstanceMonitorFilterSet(PlatformFilterSet):
    since = IsoDateTimeFilter(field_name="collected_at", lookup_expr="gte")
    until = IsoDateTimeFilter(field_name="collected_at", lookup_expr="lt")

    class Meta:
        model = InstanceMonitor
        fields = ["instance", "metric_name"]


class InstanceEventFilterSet(PlatformFilterSet):
    state = django_filters.MultipleChoiceFilter(choices=EventState.choices)

    class Meta:
        model = InstanceEvent
        fields = ["instance", "event_type", "state", "account_wxid", "replayed"]
