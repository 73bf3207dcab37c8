"""Monitoring domain logic, one topic per module; views, the API, tasks, commands and other
apps call these.

* alerts: fire (deduplicated, notified once), resolve, acknowledge
* rules: the alert rules' evaluators (beat, every minute)
* dashboard: the admin home page figures, scoped to what a user may see

The public API of other apps is re-exported here (stable, keyword arguments as documented in
each module): `fire_alert`, `resolve_alert`, `acknowledge`, `resolve`, `record_metrics`,
`evaluate_rules`, `dashboard_for`, `dashboard_data` (`record_metrics` is the core's writer,
`wework.metrics`, shared with the instances' heartbeats).
"""
from monitoring.models import OPEN_STATUSES
from monitoring.services.alerts import (
    MonitoringError, acknowledge, fire_alert, normalize_level, resolve, resolve_alert,
)
from monitoring.services.dashboard import (
    ALERT_PERMISSION, BADGE_CAP, DASHBOARD_PERMISSIONS, DashboardScope, dashboard_data,
    dashboard_for, dashboard_scope, open_alert_count,
)
from monitoring.services.rules import compare, evaluate_rule, evaluate_rules
from wework.metrics import known_metrics, record_metrics

__all__ = [
    "ALERT_PERMISSION", "BADGE_CAP", "DASHBOARD_PERMISSIONS", "OPEN_STATUSES", "DashboardScope",
    "MonitoringError", "acknowledge", "compare", "dashboard_data", "dashboard_for",
    "dashboard_scope", "evaluate_rule", "evaluate_rules", "fire_alert", "known_metrics",
    "normalize_level", "open_alert_count", "record_metrics", "resolve", "resolve_alert",
]
