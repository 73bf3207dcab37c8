"""Alerts: dedupe, the lifecycle firing -> acknowledge -> auto-resolution, rule validation."""
import datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from instances.tests.factories import UserFactory, WeworkInstanceFactory
from monitoring import services
from monitoring.forms import AlertRuleForm
from monitoring.models import AlertRecord, AlertRule, AlertStatus, AuditLog, RuleType
from monitoring.tests.factories import AlertRuleFactory

pytestmark = pytest.mark.django_db


def test_fire_alert_is_deduplicated_per_rule_and_source():
    first, created = services.fire_alert("disk.full", source_type="host", source_id="db1",
                                         title="Disk full", message="95%", level="error",
                                         metric_value=95)
    assert created and first.status == AlertStatus.ACTIVE and first.alert_level == "ERROR"
    again, created_again = services.fire_alert("disk.full", source_type="host", source_id="db1",
                                               title="Disk full", message="97%",
                                               metric_value=97)
    assert not created_again and again.pk == first.pk
    assert again.metric_value == Decimal("97.0000")
    other, created_other = services.fire_alert("disk.full", source_type="host", source_id="db2",
                                               title="Disk full", message="91%")
    assert created_other and other.pk != first.pk
    assert AlertRecord.objects.filter(rule_name="disk.full").count() == 2

    # Acknowledged still counts as open: no duplicate.
    services.acknowledge(first, None, "looking")
    _, created = services.fire_alert("disk.full", source_type="host", source_id="db1",
                                     title="Disk full", message="98%")
    assert not created

    assert services.resolve_alert("disk.full", source_type="host", source_id="db1") == 1
    record = AlertRecord.objects.get(pk=first.pk)
    assert record.status == AlertStatus.RESOLVED and record.resolved_comment == "auto-resolved"
    # After resolution the next firing opens a new record.
    newer, created = services.fire_alert("disk.full", source_type="host", source_id="db1",
                                         title="Disk full", message="99%")
    assert created and newer.pk != first.pk


def test_disabled_rule_fires_nothing():
    AlertRuleFactory(name="quiet", is_enabled=False)
    assert services.fire_alert("quiet", source_type="x", source_id=1, title="t",
                               message="m") == (None, False)
    assert not AlertRecord.objects.exists()


def test_unknown_level_is_refused():
    with pytest.raises(ValueError):
        services.fire_alert("r", source_type="x", source_id=1, title="t", message="m",
                            level="LOUD")


def test_lifecycle_instance_offline_ack_by_api_then_auto_resolved(client, grant):
    rule = AlertRuleFactory(name="instance.offline", rule_type=RuleType.INSTANCE_OFFLINE,
                            metric_name=None, threshold_value=3, duration_seconds=0)
    now = timezone.now()
    silent = WeworkInstanceFactory(heartbeat_interval=30,
                                   last_heartbeat=now - datetime.timedelta(minutes=10))
    WeworkInstanceFactory(heartbeat_interval=30, last_heartbeat=now)  # healthy

    assert services.evaluate_rule(rule, now) == (1, 0)
    record = AlertRecord.objects.get(rule_name="instance.offline")
    assert record.status == AlertStatus.ACTIVE
    assert record.source_type == "instance" and record.source_id == str(silent.pk)
    assert record.instance_id == silent.pk
    # Evaluating again while the condition holds: still one record.
    assert services.evaluate_rule(rule, now) == (0, 0)
    assert AlertRecord.objects.filter(rule_name="instance.offline").count() == 1

    # Acknowledge through the API: refused without monitoring.ack_alert, then allowed.
    user = UserFactory(password="pw")
    user = grant(user, "monitoring.view_alertrecord")
    client.force_login(user)
    url = reverse("api:alertrecord-acknowledge", args=[record.pk])
    assert client.post(url, {"comment": "on it"}, content_type="application/json"
                       ).status_code == 403
    user = grant(user, "monitoring.view_alertrecord", "monitoring.ack_alert")
    client.force_login(user)
    response = client.post(url, {"comment": "on it"}, content_type="application/json",
                           HTTP_USER_AGENT="pytest-agent")
    assert response.status_code == 200, response.content
    record.refresh_from_db()
    assert record.status == AlertStatus.ACKNOWLEDGED
    assert record.acknowledged_by_id == user.pk and record.acknowledged_comment == "on it"
    assert response["X-Request-ID"]
    # Acknowledging twice is a conflict, not a 500.
    assert client.post(url, {}, content_type="application/json").status_code == 409
    # The change is audited with who and from where.
    row = AuditLog.objects.filter(resource_type="alert_records", operation_type="UPDATE",
                                  resource_id=str(record.pk)).latest("id")
    assert row.user_id == user.pk and row.username == user.username
    assert row.new_values["status"] == "ACKNOWLEDGED"
    assert row.old_values["status"] == "ACTIVE"
    assert row.user_agent == "pytest-agent" and row.request_id == response["X-Request-ID"]
    assert row.extra_info["source"] == "api"

    # Heartbeats come back: the next evaluation resolves it automatically.
    type(silent).objects.filter(pk=silent.pk).update(last_heartbeat=now)
    assert services.evaluate_rule(rule, now) == (0, 1)
    record.refresh_from_db()
    assert record.status == AlertStatus.RESOLVED
    assert record.resolved_by_id is None and "auto-resolved" in record.resolved_comment


def test_resolve_via_admin_action_with_comment(verified_admin_client):
    record, _ = services.fire_alert("r1", source_type="x", source_id="1", title="T",
                                    message="M")
    url = reverse("admin:monitoring_alertrecord_changelist")
    # First step shows the comment form.
    response = verified_admin_client.post(url, {"action": "resolve_selected",
                                       "_selected_action": [record.pk]})
    assert response.status_code == 200 and b"comment" in response.content
    response = verified_admin_client.post(url, {"action": "resolve_selected", "apply": "1",
                                       "_selected_action": [record.pk], "comment": "fixed"})
    assert response.status_code == 302
    record.refresh_from_db()
    assert record.status == AlertStatus.RESOLVED and record.resolved_comment == "fixed"


def test_evaluate_command_and_seed(capsys):
    call_command("alerts", "seed-rules")
    assert AlertRule.objects.filter(name="instance.offline").exists()
    call_command("alerts", "evaluate")
    assert "instance.offline" in capsys.readouterr().out


@pytest.mark.parametrize("data, field", [
    ({"rule_type": RuleType.METRIC_THRESHOLD, "metric_name": "bogomips",
      "threshold_value": "5"}, "metric_name"),
    ({"rule_type": RuleType.METRIC_THRESHOLD, "metric_name": "cpu",
      "threshold_value": "abc"}, "threshold_value"),
    ({"rule_type": RuleType.METRIC_THRESHOLD, "metric_name": "cpu"}, "threshold_value"),
    ({"rule_type": RuleType.TASK_FAILURE_RATE, "threshold_value": "150"}, "threshold_value"),
    ({"rule_type": RuleType.INSTANCE_OFFLINE, "threshold_value": "2.5"}, "threshold_value"),
    ({"rule_type": RuleType.ACCOUNT_STATUS, "metric_name": "cpu"}, "metric_name"),
    ({"rule_type": RuleType.METRIC_THRESHOLD, "metric_name": "cpu", "threshold_value": "9",
      "notify_channels": '{"wecom": ["nobody"]}'}, "notify_channels"),
    ({"rule_type": RuleType.METRIC_THRESHOLD, "metric_name": "cpu", "threshold_value": "9",
      "window_seconds": "5"}, "window_seconds"),
])
def test_invalid_rule_is_a_form_error(data, field):
    base = {"name": "rule.x", "display_name": "X", "comparison": "gt", "window_seconds": 300,
            "duration_seconds": 0, "alert_level": "WARNING", "is_enabled": True,
            "cooldown_seconds": 600, "notify_channels": "{}"}
    form = AlertRuleForm(data={**base, **data})
    assert not form.is_valid()
    assert field in form.errors, form.errors


def test_valid_rule_form_and_admin_add(verified_admin_client):
    data = {"name": "cpu.hot", "display_name": "CPU hot", "rule_type": "metric_threshold",
            "metric_name": "cpu", "comparison": "gt", "threshold_value": "90",
            "window_seconds": 300, "duration_seconds": 60, "alert_level": "WARNING",
            "is_enabled": "on", "cooldown_seconds": 600,
            "notify_channels": '{"email": ["ops@example.com"]}', "description": ""}
    assert AlertRuleForm(data=data).is_valid()
    response = verified_admin_client.post(reverse("admin:monitoring_alertrule_add"),
                                 {**data, "metric_name": "nope"})
    assert response.status_code == 200 and b"Unknown metric" in response.content
    response = verified_admin_client.post(reverse("admin:monitoring_alertrule_add"), data)
    assert response.status_code == 302
    assert AlertRule.objects.get(name="cpu.hot").created_by is not None


def test_invalid_rule_through_api_is_400(verified_admin_client):
    response = verified_admin_client.post(reverse("api:alertrule-list"), {
        "name": "m", "display_name": "M", "rule_type": "metric_threshold",
        "metric_name": "unknown_metric", "threshold_value": "1"},
        content_type="application/json")
    assert response.status_code == 400
    assert "metric_name" in response.json()


def test_admin_pages_render(verified_admin_client):
    rule = AlertRuleFactory(name="cpu.hot")
    record, _created = services.fire_alert("cpu.hot", source_type="instance", source_id="1",
                                           title="CPU hot", message="m")
    audit_row = AuditLog.objects.latest("id")
    for url in (
        reverse("admin:monitoring_alertrule_changelist"),
        reverse("admin:monitoring_alertrule_change", args=[rule.pk]),
        reverse("admin:monitoring_alertrecord_changelist") + "?status=open",
        reverse("admin:monitoring_alertrecord_change", args=[record.pk]),
        reverse("admin:monitoring_auditlog_changelist") + "?q=cpu",
        reverse("admin:monitoring_auditlog_change", args=[audit_row.pk]),
        reverse("admin:index"),
    ):
        response = verified_admin_client.get(url)
        assert response.status_code == 200, url
    # Nobody adds or deletes alert records.
    assert verified_admin_client.get(reverse("admin:monitoring_alertrecord_add")).status_code == 403


def test_alert_about_an_instance_belongs_to_it():
    """Scoped users reach alerts through their instance grants: an alert whose source is an
    instance is recorded against that instance even when the caller did not say so."""
    instance = WeworkInstanceFactory()
    record, _ = services.fire_alert("custom.instance_check", source_type="instance", source_id=instance.pk,
                                    title="Check", message="m")
    assert record.instance_id == instance.pk
    other, _ = services.fire_alert("custom.host_check", source_type="host", source_id="7", title="t", message="m")
    assert other.instance_id is None
