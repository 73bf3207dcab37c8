"""The audit trail: changes through the admin, the API, commands and tasks; masking;
read-only admin; CSV export; failures."""
import pytest
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse

from instances.tests.factories import UserFactory, WeworkInstanceFactory
from monitoring import audit
from monitoring.models import AlertRule, AuditLog
from monitoring.tests.factories import AlertRuleFactory, AuditLogFactory

pytestmark = pytest.mark.django_db


def latest(**filters):
    return AuditLog.objects.filter(**filters).latest("id")


def test_admin_change_is_audited_with_who_and_where(verified_admin_client, super_admin):
    rule = AlertRuleFactory(name="cpu.hot", threshold_value=90)
    url = reverse("admin:monitoring_alertrule_change", args=[rule.pk])
    data = {"name": "cpu.hot", "display_name": "CPU hot", "rule_type": "metric_threshold",
            "metric_name": "cpu", "comparison": "gt", "threshold_value": "95",
            "window_seconds": 300, "duration_seconds": 60, "alert_level": "ERROR",
            "is_enabled": "on", "cooldown_seconds": 600, "notify_channels": "{}",
            "description": ""}
    response = verified_admin_client.post(url, data, HTTP_USER_AGENT="Mozilla/5.0 audit-test",
                                 HTTP_X_REQUEST_ID="req-1234567890")
    assert response.status_code == 302, response.content[:500]
    assert response["X-Request-ID"] == "req-1234567890"
    row = latest(resource_type="alert_rules", operation_type="UPDATE")
    assert row.user_id == super_admin.pk and row.username == super_admin.username
    assert row.resource_id == str(rule.pk) and row.resource_name == "CPU hot"
    assert row.old_values["threshold_value"] == "90.0000"
    assert row.new_values["threshold_value"] == "95.0000"
    assert row.new_values["alert_level"] == "ERROR"
    assert "name" not in row.new_values  # unchanged fields are left out
    assert row.ip_address == "127.0.0.1" and row.user_agent == "Mozilla/5.0 audit-test"
    assert row.request_id == "req-1234567890" and row.session_id
    assert row.result == "SUCCESS" and row.extra_info["source"] == "admin"


def test_api_create_and_refused_write_are_audited(client, grant):
    user = grant(UserFactory(), "monitoring.add_alertrule", "monitoring.view_alertrule")
    client.force_login(user)
    response = client.post(reverse("api:alertrule-list"), {
        "name": "acct", "display_name": "Accounts", "rule_type": "account_status"},
        content_type="application/json")
    assert response.status_code == 201, response.content
    row = latest(resource_type="alert_rules", operation_type="CREATE")
    assert row.user_id == user.pk and row.extra_info["source"] == "api"
    assert row.new_values["name"] == "acct" and row.request_id == response["X-Request-ID"]

    # A refused write (validation error) leaves a FAILURE row.
    response = client.post(reverse("api:alertrule-list"), {
        "name": "bad", "display_name": "Bad", "rule_type": "metric_threshold",
        "metric_name": "nope", "threshold_value": 1}, content_type="application/json")
    assert response.status_code == 400
    row = latest(result="FAILURE")
    assert row.user_id == user.pk and row.error_message == "HTTP 400"
    assert row.operation_type == "CREATE"


def test_command_change_is_audited_as_the_command():
    AlertRuleFactory(name="cpu.hot")
    call_command("alerts", "disable", "cpu.hot")
    row = latest(resource_type="alert_rules", operation_type="UPDATE")
    assert row.new_values == {"is_enabled": False}
    assert row.extra_info["source"] == "command" and row.extra_info["command"] == "alerts"
    assert row.user_id is None


def test_command_actor_option_names_the_user():
    user = UserFactory(username="operator1")
    AlertRuleFactory(name="cpu.hot")
    call_command("alerts", "disable", "cpu.hot", actor="operator1")
    row = latest(resource_type="alert_rules", operation_type="UPDATE")
    assert row.user_id == user.pk and row.username == "operator1"


def test_task_change_is_audited_as_the_task(django_capture_on_commit_callbacks):
    from monitoring.tasks import evaluate_alert_rules

    AlertRuleFactory(name="inst.off", rule_type="instance_offline", metric_name=None,
                     threshold_value=1)
    import datetime

    from django.utils import timezone

    WeworkInstanceFactory(last_heartbeat=timezone.now() - datetime.timedelta(hours=1))
    evaluate_alert_rules.apply()
    row = latest(resource_type="alert_records", operation_type="CREATE")
    assert row.extra_info["source"] == "task"
    assert row.request_id  # the task id


def test_secrets_are_masked():
    instance = WeworkInstanceFactory(proxy_password_encrypted="hunter2")
    row = latest(resource_type="wework_instances", operation_type="CREATE")
    assert row.new_values["proxy_password_encrypted"] == audit.MASK
    instance.proxy_password_encrypted = "correct horse"
    instance.save()
    row = latest(resource_type="wework_instances", operation_type="UPDATE")
    assert row.old_values["proxy_password_encrypted"] == audit.MASK
    assert row.new_values["proxy_password_encrypted"] == audit.MASK
    assert "hunter2" not in str(AuditLog.objects.values_list("old_values", "new_values"))

    user = UserFactory()
    user.set_password("s3cret-Pass")
    user.save()
    row = latest(resource_type="users", operation_type="UPDATE")
    assert row.new_values["password"] == audit.MASK
    # Values given to record() are masked by key too.
    row = audit.record("x.y", resource_type="t", resource_id=1, resource_name="n",
                       operation_type="UPDATE", new_values={"api_token": "abc", "name": "ok"},
                       extra={"webhook_url": "https://robot?key=k"})
    assert row.new_values == {"api_token": audit.MASK, "name": "ok"}
    assert row.extra_info["webhook_url"] == audit.MASK


def test_rolled_back_change_leaves_no_audit_row():
    before = AuditLog.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        AlertRuleFactory(name="temp")
        raise RuntimeError
    assert AuditLog.objects.count() == before


def test_delete_is_audited():
    rule = AlertRuleFactory(name="gone")
    pk = rule.pk
    rule.delete()
    row = latest(resource_type="alert_rules", operation_type="DELETE")
    assert row.resource_id == str(pk) and row.old_values["name"] == "gone"


def test_audit_admin_is_read_only_for_auditors(client, grant):
    entry = AuditLogFactory()
    auditor = grant(UserFactory(), "monitoring.view_auditlog")
    client.force_login(auditor)
    assert client.get(reverse("admin:monitoring_auditlog_changelist")).status_code == 200
    change = reverse("admin:monitoring_auditlog_change", args=[entry.pk])
    page = client.get(change)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(change, {"operation": "tampered"}).status_code == 403
    assert client.post(reverse("admin:monitoring_auditlog_delete", args=[entry.pk]),
                       {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:monitoring_auditlog_add")).status_code == 403
    entry.refresh_from_db()
    assert entry.operation != "tampered"
    # Without the export permission, no CSV.
    assert client.get(reverse("admin:monitoring_auditlog_export")).status_code == 403


def test_csv_export_streams_filtered_rows(client, grant):
    AuditLogFactory(operation="instance.restart", result="FAILURE")
    AuditLogFactory(operation="=cmd|evil", result="SUCCESS")
    user = grant(UserFactory(), "monitoring.view_auditlog", "monitoring.export_audit")
    client.force_login(user)
    response = client.get(reverse("admin:monitoring_auditlog_export"))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0].startswith("id,created_at,user_id,username,operation")
    assert "instance.restart" in text and "'=cmd|evil" in text  # formula injection defused
    filtered = client.get(reverse("admin:monitoring_auditlog_export") + "?result__exact=FAILURE")
    body = b"".join(filtered.streaming_content).decode()
    assert "instance.restart" in body and "evil" not in body
    # The export itself is audited.
    assert AuditLog.objects.filter(operation="audit.export", user_id=user.pk).exists()


def test_csv_export_has_a_bom_and_local_times_with_their_offset(client, grant, settings):
    """Q2-10: Excel on Chinese Windows needs the BOM; times in the platform's zone, ISO 8601."""
    import datetime

    settings.TIME_ZONE = "Asia/Shanghai"
    entry = AuditLogFactory(operation="instance.restart")
    AuditLog.objects.filter(pk=entry.pk).update(
        created_at=datetime.datetime(2026, 11, 28, 18, 35, 48, tzinfo=datetime.timezone.utc))
    user = grant(UserFactory(), "monitoring.view_auditlog", "monitoring.export_audit")
    client.force_login(user)
    raw = b"".join(client.get(reverse("admin:monitoring_auditlog_export")).streaming_content)
    assert raw.startswith(b"\xef\xbb\xbfid,created_at,")
    row = next(line for line in raw.decode("utf-8-sig").splitlines() if "instance.restart" in line)
    assert row.split(",")[1] == "2026-11-29T02:35:48+08:00"


def test_audit_api_is_read_only(client, grant):
    AuditLogFactory()
    user = grant(UserFactory(), "monitoring.view_auditlog")
    client.force_login(user)
    assert client.get(reverse("api:auditlog-list")).status_code == 200
    assert client.post(reverse("api:auditlog-list"), {}).status_code in (403, 405)


def test_actor_context_nests_and_rejects_unknown_source():
    rules_before = AlertRule.objects.count()
    user = UserFactory()
    with audit.actor_context(user=user, source="task", ip="10.0.0.1"):
        row = audit.record("x", resource_type="t", resource_id=None, resource_name=None,
                           operation_type="READ")
        assert row.user_id == user.pk and row.ip_address == "10.0.0.1"
        with audit.actor_context(source="command"):
            inner = audit.record("y", resource_type="t", resource_id=None, resource_name=None,
                                 operation_type="READ")
            assert inner.user_id is None and inner.extra_info["source"] == "command"
    with pytest.raises(ValueError), audit.actor_context(source="cron"):
        pass
    assert AlertRule.objects.count() == rules_before


def test_a_crashing_write_is_audited_as_failure(admin_user):
    from django.test import RequestFactory

    from monitoring.middleware import RequestContextMiddleware

    request = RequestFactory().post("/api/v1/monitoring/alert-rules/", HTTP_USER_AGENT="ua")
    request.user = admin_user
    middleware = RequestContextMiddleware(lambda r: None)

    def view(r):
        middleware.process_exception(r, RuntimeError("database went away"))
        from django.http import HttpResponse

        return HttpResponse(status=500)

    middleware.get_response = view
    response = middleware(request)
    row = latest(result="FAILURE")
    assert "database went away" in row.error_message and row.user_id == admin_user.pk
    assert row.request_id == response["X-Request-ID"]


def test_anonymous_refused_writes_are_not_audited(client):
    before = AuditLog.objects.count()
    assert client.post(reverse("api:alertrule-list"), {}).status_code in (401, 403)
    assert AuditLog.objects.count() == before


def test_many_to_many_changes_are_audited():
    from django.contrib.auth.models import Permission

    user = UserFactory()
    perm = Permission.objects.get(codename="view_auditlog")
    user.user_permissions.add(perm)
    row = latest(resource_type="users", operation_type="UPDATE")
    assert row.new_values == {"user_permissions_added": [perm.pk]}
    user.user_permissions.remove(perm)
    row = latest(resource_type="users", operation_type="UPDATE")
    assert row.old_values == {"user_permissions_removed": [perm.pk]}


def test_task_run_for_a_user_is_attributed_to_that_user():
    import datetime

    from django.utils import timezone

    from monitoring.tasks import evaluate_alert_rules

    user = UserFactory()
    AlertRuleFactory(name="inst.off", rule_type="instance_offline", metric_name=None,
                     threshold_value=1)
    WeworkInstanceFactory(last_heartbeat=timezone.now() - datetime.timedelta(hours=1))
    with audit.actor_context(user=user, source="api", request_id="req-from-api-1"):
        evaluate_alert_rules.delay()
    row = latest(resource_type="alert_records", operation_type="CREATE")
    assert row.extra_info["source"] == "task"
    assert row.user_id == user.pk and row.request_id == "req-from-api-1"
