"""Guard: every admin bulk action that changes an audited model leaves its audit rows.

Runs every action of every registered ModelAdmin (as a verified super administrator in sudo
mode, confirming intermediate pages) on rows made by the apps' factories, in the states the
action acts on, and compares every audited table before and after: each row that changed (or
appeared, or vanished) beyond bookkeeping columns must have an audit row naming it. A new
action that writes with `QuerySet.update()` or `bulk_create()` without auditing fails here.

Sharded models are left out (their admins work one shard at a time, and their bulk writes are
audited by the task or broadcast that makes them).
"""
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from accounts.models import UserStatus
from monitoring import audit
from monitoring.models import AlertStatus, AuditLog
from wework import shards
from wework.testing.factories import factory_for, make

pytestmark = pytest.mark.django_db

#: Extra rows in the states some actions act on (locked users for "unlock", ...).
VARIANTS = {
    "accounts.User": [
        {"status": UserStatus.LOCKED, "locked_until": "future"},
        {"status": UserStatus.DISABLED},
    ],
    "monitoring.AlertRecord": [{"status": AlertStatus.ACKNOWLEDGED}],
}
#: Actions that must change something on those rows (so that the guard cannot pass by
#: changing nothing).
MUST_CHANGE = {
    ("accounts.User", "disable_users"), ("accounts.User", "enable_users"),
    ("accounts.User", "unlock_users"), ("accounts.User", "restore_selected"),
    ("accounts.User", "delete_selected"), ("accounts.Role", "restore_selected"),
    ("accounts.Role", "delete_selected"), ("monitoring.AlertRecord", "acknowledge_selected"),
    ("monitoring.AlertRecord", "resolve_selected"),
}
#: Confirmations of the actions with an intermediate page.
CONFIRM = {"post": "yes", "apply": "1", "comment": "audit guard", "confirm": "yes"}


def _audited_models():
    return [m for m in apps.get_models()
            if audit.is_audited(m) and not shards.is_sharded(m) and not m._meta.proxy]


def _snapshot(models):
    ignored = audit.ignored_fields()
    state = {}
    for model in models:
        fields = [f.attname for f in model._meta.concrete_fields if f.attname not in ignored]
        for row in model._base_manager.values(*fields):
            state[(model, str(row[model._meta.pk.attname]))] = row
    return state


def _rows(model, model_admin):
    """Rows for the action: two fresh ones, the state variants, one soft-deleted."""
    made = [make(model), make(model)]
    for changes in VARIANTS.get(model._meta.label, ()):
        changes = {k: (timezone.now() + timedelta(hours=1) if v == "future" else v)
                   for k, v in changes.items()}
        made.append(make(model, **changes))
    if hasattr(model, "deleted_at"):
        row = make(model)
        model._base_manager.filter(pk=row.pk).update(deleted_at=timezone.now())
        made.append(row)
    return [r for r in made if r is not None]


def test_every_admin_action_audits_what_it_changes(verified_admin_client, capsys):
    request = RequestFactory().get("/")
    request.user = verified_admin_client.user
    models = _audited_models()
    report, failures, changed_by = [], [], {}
    for model, model_admin in sorted(admin.site._registry.items(), key=lambda i: i[0]._meta.label):
        actions = model_admin.get_actions(request)
        if not actions:
            continue
        if shards.is_sharded(model):
            report.append(f"SKIP {model._meta.label}: sharded")
            continue
        if factory_for(model) is None:
            report.append(f"SKIP {model._meta.label}: no factory for {sorted(actions)}")
            continue
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        if hasattr(model, "deleted_at") and hasattr(model_admin, "restore_selected"):
            url += "?deleted=all"
        for name in sorted(actions):
            rows = _rows(model, model_admin)
            before = _snapshot(models)
            last_audit = AuditLog.objects.order_by("-id").values_list("id", flat=True).first() or 0
            response = verified_admin_client.post(
                url, {"action": name, "_selected_action": [r.pk for r in rows], "index": 0,
                      **CONFIRM})
            if response.status_code >= 500:
                failures.append(f"{model._meta.label} {name}: HTTP {response.status_code}")
                continue
            after = _snapshot(models)
            changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
            changed_by[(model._meta.label, name)] = len(changed)
            audited = set(
                AuditLog.objects.filter(id__gt=last_audit).values_list("resource_type", "resource_id"))
            for key in sorted(changed, key=str):
                changed_model, pk = key
                if (changed_model._meta.db_table, pk) not in audited:
                    old, new = before.get(key) or {}, after.get(key) or {}
                    fields = sorted(f for f in old.keys() | new.keys() if old.get(f) != new.get(f))
                    failures.append(f"{model._meta.label} action {name} changed "
                                    f"{changed_model._meta.label} #{pk} {fields} without an audit row")
    missing = sorted(key for key in MUST_CHANGE if not changed_by.get(key))
    with capsys.disabled():
        print(f"\naudit guard: {len(changed_by)} admin actions run")
        for line in report:
            print("  " + line)
    assert not missing, f"these actions changed nothing (the guard would prove nothing): {missing}"
    assert not failures, "\n".join(failures)
