"""Reads that need another module's column (values(), aggregates) on per-module databases.

A `values("account__instance_id")` on message tasks joins wework_accounts, which on five
schemas is on the contacts database: the services read the local key and look the other
module's column up on its own database (docs/schema.md, "Storage layout")."""
import pytest

from messaging.tests.factories import MessageTaskFactory
from monitoring.models import AlertRecord, RuleType
from monitoring.services.rules import evaluate_rule
from monitoring.tests.factories import AlertRuleFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_failing_task_fires_an_alert_on_its_instance():
    task = MessageTaskFactory(status=1, success_count=5, fail_count=15, target_count=20)
    other = MessageTaskFactory(status=1, success_count=20, fail_count=0, target_count=20)
    rule = AlertRuleFactory(rule_type=RuleType.TASK_FAILURE_RATE, metric_name=None, threshold_value=20,
                            duration_seconds=0, window_seconds=300)

    assert evaluate_rule(rule) == (1, 0)

    alert = AlertRecord.objects.get(rule_name=rule.name)
    assert (alert.source_type, alert.source_id) == ("message_task", str(task.pk))
    assert alert.instance_id == task.account.instance_id != other.account.instance_id
