"""factory-boy factories for the instances app (and the user they are created by)."""
from decimal import Decimal

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from instances.models import ConfigType, InstanceConfig, InstanceMonitor, InstanceStatus, WeworkInstance
from wework.ids import new_uuid

from accounts.tests.factories import UserFactory


class WeworkInstanceFactory(DjangoModelFactory):
    class Meta:
        model = WeworkInstance

    instance_uuid = factory.LazyFunction(new_uuid)
    name = factory.Sequence(lambda n: f"instance-{n}")
    version = "4.1.20"
    status = InstanceStatus.ONLINE
    api_url = factory.Sequence(lambda n: f"http://127.0.0.1:{18000 + n % 1000}/api")
    heartbeat_interval = 30
    last_heartbeat = factory.LazyFunction(timezone.now)
    created_by = factory.SubFactory(UserFactory)


class InstanceConfigFactory(DjangoModelFactory):
    class Meta:
        model = InstanceConfig

    instance = factory.SubFactory(WeworkInstanceFactory)
    config_key = factory.Sequence(lambda n: f"setting_{n}")
    config_value = "on"
    config_type = ConfigType.STRING


class InstanceMonitorFactory(DjangoModelFactory):
    class Meta:
        model = InstanceMonitor

    instance = factory.SubFactory(WeworkInstanceFactory)
    metric_name = "cpu_percent"
    metric_value = Decimal("12.5000")
    metric_unit = "%"
    collected_at = factory.LazyFunction(timezone.now)
