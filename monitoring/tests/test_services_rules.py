"""Alert rules over real data: metric thresholds over the weekly shards, shard rotation."""
import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from contacts.models import AccountStatus
from contacts.tests.factories import WeworkAccountFactory
from instances.tests.factories import WeworkInstanceFactory
from monitoring import services
from monitoring.models import AlertRecord, AlertRule, RuleType
from monitoring.tests.factories import AlertRuleFactory
from wework import shards
from wework.shards.conf import all_configs


@pytest.mark.django_db(transaction=True)
def test_metric_rule_over_weekly_shards_fires_and_clears():
    instance = WeworkInstanceFactory()
    rule = AlertRuleFactory(name="cpu.hot", rule_type=RuleType.METRIC_THRESHOLD,
                            metric_name="cpu", threshold_value=Decimal("90"),
                            duration_seconds=120, window_seconds=300)
    now = timezone.now()
    for seconds, value in ((100, 95), (60, 97), (10, 99)):
        services.record_metrics(instance, {"cpu": value, "memory": 512, "bogus": "n/a"},
                                now - datetime.timedelta(seconds=seconds))
    assert services.evaluate_rule(rule, now) == (1, 0)
    record = AlertRecord.objects.get(rule_name="cpu.hot")
    assert record.instance_id == instance.pk and record.metric_value == Decimal("99.0000")
    # One sample below the threshold within the duration: the condition no longer holds.
    services.record_metrics(instance, {"cpu": 40}, now - datetime.timedelta(seconds=5))
    assert services.evaluate_rule(rule, now) == (0, 1)


@pytest.mark.django_db(transaction=True)
def test_shard_rotation_rule_fires_when_shards_are_missing_and_clears():
    rule = AlertRuleFactory(name="shards.rotation", rule_type=RuleType.SHARD_ROTATION,
                            metric_name=None, threshold_value=None)
    now = timezone.now()
    later = now + datetime.timedelta(days=400)  # no shard exists that far ahead
    fired, _resolved = services.evaluate_rule(rule, later)
    assert fired >= 1
    assert AlertRecord.objects.filter(rule_name="shards.rotation",
                                      source_id="monitoring.SystemLog").exists()
    # Shards for today and tomorrow exist after a rotation: the alerts clear.
    for conf in all_configs().values():
        if conf.enabled and conf.is_time:
            for when in (now, now + datetime.timedelta(days=1)):
                shards.model_for(conf.model, when=when)
    services.evaluate_rule(rule, now)
    assert not AlertRecord.objects.filter(rule_name="shards.rotation",
                                          status__in=services.OPEN_STATUSES).exists()


@pytest.mark.django_db
def test_account_status_rule_fires_for_banned_and_clears():
    rule = AlertRuleFactory(name="account.status", rule_type=RuleType.ACCOUNT_STATUS,
                            metric_name=None, threshold_value=None)
    account = WeworkAccountFactory(status=AccountStatus.BANNED)
    WeworkAccountFactory(status=AccountStatus.ONLINE)
    assert services.evaluate_rule(rule) == (1, 0)
    type(account).objects.filter(pk=account.pk).update(status=AccountStatus.ONLINE)
    assert services.evaluate_rule(rule) == (0, 1)


@pytest.mark.django_db
def test_a_new_platform_starts_with_the_default_rules_and_an_operators_change_is_kept():
    """Alerts work out of the box: the migration seeds the default rules; seeding again creates
    only what is missing and never rewrites a rule an operator changed."""
    from importlib import import_module

    from django.apps import apps as django_apps

    from monitoring.services import rules as rule_services

    AlertRule.objects.all().delete()
    import_module("monitoring.migrations.0004_seed_default_alert_rules").seed(django_apps, None)
    names = set(AlertRule.objects.values_list("name", flat=True))
    assert names == {spec["name"] for spec in rule_services.DEFAULT_RULES}
    AlertRule.objects.filter(name="instance.offline").update(threshold_value=7)
    AlertRule.objects.filter(name="shards.rotation").delete()
    assert rule_services.seed_default_rules() == 1
    assert AlertRule.objects.get(name="instance.offline").threshold_value == 7
