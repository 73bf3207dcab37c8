"""factory-boy factories for the monitoring app (base tables; the shard layer has its own API)."""
from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from instances.tests.factories import UserFactory, WeworkInstanceFactory
from monitoring.models import (
    AlertLevel,
    AlertRecord,
    AlertRule,
    AuditLog,
    AuditResult,
    Comparison,
    LogLevel,
    OperationType,
    RuleType,
    SystemLog,
)
from wework.ids import new_uuid


class SystemLogFactory(DjangoModelFactory):
    class Meta:
        model = SystemLog

    log_uuid = factory.LazyFunction(new_uuid)
    level = LogLevel.INFO
    service = "web"
    module = "tests"
    action = "factory"
    message = factory.Sequence(lambda n: f"log line {n}")
    context = factory.LazyFunction(dict)


class AuditLogFactory(DjangoModelFactory):
    class Meta:
        model = AuditLog

    audit_uuid = factory.LazyFunction(new_uuid)
    user = factory.SubFactory(UserFactory)
    username = factory.LazyAttribute(lambda o: o.user.username if o.user else None)
    operation = "instance.update"
    resource_type = "wework_instance"
    resource_id = "1"
    operation_type = OperationType.UPDATE
    old_values = factory.LazyFunction(lambda: {"name": "old"})
    new_values = factory.LazyFunction(lambda: {"name": "new"})
    result = AuditResult.SUCCESS
    ip_address = "127.0.0.1"


class AlertRuleFactory(DjangoModelFactory):
    class Meta:
        model = AlertRule

    name = factory.Sequence(lambda n: f"cpu_high_{n}")
    display_name = factory.Sequence(lambda n: f"CPU high {n}")
    rule_type = RuleType.METRIC_THRESHOLD
    metric_name = "cpu"
    comparison = Comparison.GT
    threshold_value = Decimal("90.0000")
    duration_seconds = 60
    alert_level = AlertLevel.WARNING
    notify_channels = factory.LazyFunction(dict)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # A migration seeds the default rules (instance.offline, account.status, ...): a test's
        # rule of the same name replaces the seeded one.
        model_class.objects.filter(name=kwargs.get("name")).delete()
        return super()._create(model_class, *args, **kwargs)
    created_by = factory.SubFactory(UserFactory)


class AlertRecordFactory(DjangoModelFactory):
    class Meta:
        model = AlertRecord

    alert_uuid = factory.LazyFunction(new_uuid)
    rule_name = factory.Sequence(lambda n: f"cpu_high_{n}")
    alert_level = AlertLevel.WARNING
    alert_title = "CPU high"
    alert_message = "cpu above 90 for 60 s"
    metric_name = "cpu"
    metric_value = Decimal("95.5000")
    threshold_value = Decimal("90.0000")
    instance = factory.SubFactory(WeworkInstanceFactory)
    source_type = "instance"
    source_id = factory.LazyAttribute(lambda o: str(o.instance.pk) if o.instance else None)
