"""`{% monitoring_dashboard as dash %}`: the admin home page figures (cached, see services).

Users with a role granting a dashboard permission see every instance; users whose rights come
from per-instance grants see the figures of those instances only; others see no dashboard."""
from django import template

from contacts.models import AccountStatus
from instances.models import InstanceStatus
from monitoring import services

register = template.Library()

DASHBOARD_PERMISSIONS = services.DASHBOARD_PERMISSIONS

# Colours say what a status means (Chart.js's default palette made "online" red): green for
# working, grey for idle or off, amber for attention, red for broken.
GOOD, IDLE, ATTENTION, BAD = "#2e7d32", "#9e9e9e", "#f9a825", "#c62828"
INSTANCE_COLORS = {InstanceStatus.ONLINE: GOOD, InstanceStatus.OFFLINE: IDLE,
                   InstanceStatus.MAINTENANCE: ATTENTION, InstanceStatus.ERROR: BAD}
ACCOUNT_COLORS = {AccountStatus.ONLINE: GOOD, AccountStatus.OFFLINE: IDLE,
                  AccountStatus.ABNORMAL: ATTENTION, AccountStatus.BANNED: BAD}


def _doughnut(rows, colors):
    return {"labels": [r["label"] for r in rows], "values": [r["count"] for r in rows],
            "colors": [colors.get(r["status"], IDLE) for r in rows]}


@register.simple_tag(takes_context=True)
def monitoring_dashboard(context):
    request = context.get("request")
    data = services.dashboard_for(getattr(request, "user", None))
    if data is None:
        return None
    data["chart"] = {
        "labels": [f"{h:02d}:00" for h in range(len(data["messages_per_hour"]))],
        "values": data["messages_per_hour"],
        "instances": _doughnut(data["instances"], INSTANCE_COLORS),
        "accounts": _doughnut(data["accounts"], ACCOUNT_COLORS),
    }
    return data


@register.inclusion_tag("monitoring/alert_badge.html", takes_context=True)
def open_alerts_badge(context):
    """The open alerts' badge in the admin's header (every page), for those who may see them."""
    request = context.get("request")
    count = services.open_alert_count(getattr(request, "user", None))
    return {"count": count, "shown": f"{services.BADGE_CAP}+" if (count or 0) > services.BADGE_CAP else count}
