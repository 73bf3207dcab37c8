"""FilterSets of monitoring on the API lists: each filter narrows the list, a misspelt one is a
400."""
import pytest

from monitoring.models import AlertStatus
from monitoring.tests.factories import AlertRecordFactory, AlertRuleFactory, AuditLogFactory

pytestmark = pytest.mark.django_db


def _ids(response):
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_alert_record_filters(verified_admin_client, super_admin):
    acked = AlertRecordFactory(status=AlertStatus.ACKNOWLEDGED, acknowledged_by=super_admin)
    AlertRecordFactory()
    url = "/api/v1/monitoring/alerts/"
    assert _ids(verified_admin_client.get(url, {"acknowledged_by": super_admin.pk})) == {acked.pk}
    assert _ids(verified_admin_client.get(url, {"open": "true"})) >= {acked.pk}
    assert verified_admin_client.get(url, {"acknowleged_by": 1}).status_code == 400


def test_alert_rule_and_audit_filters(verified_admin_client):
    rule = AlertRuleFactory(comparison="lt")
    AlertRuleFactory()
    assert _ids(verified_admin_client.get("/api/v1/monitoring/alert-rules/",
                                          {"comparison": "lt"})) == {rule.pk}
    row = AuditLogFactory(ip_address="10.1.1.1", session_id="s-1")
    AuditLogFactory()
    assert _ids(verified_admin_client.get("/api/v1/monitoring/audit-logs/",
                                          {"ip_address": "10.1.1.1", "session_id": "s-1"})) == {row.pk}
