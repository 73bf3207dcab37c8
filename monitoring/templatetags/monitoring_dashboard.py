"""`{% monitoring_dashboard as dash %}`: the admin home page figures (cached, see services)."""
from django import template

from monitoring import services

register = template.Library()

DASHBOARD_PERMISSIONS = ("monitoring.view_alertrecord", "instances.view_weworkinstance")


@register.simple_tag(takes_context=True)
def monitoring_dashboard(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    if not any(user.has_perm(p) for p in DASHBOARD_PERMISSIONS):
        return None
    data = dict(services.dashboard_data())
    data["can_see_alerts"] = user.has_perm("monitoring.view_alertrecord")
    data["chart"] = {
        "labels": [f"{h:02d}:00" for h in range(len(data["messages_per_hour"]))],
        "values": data["messages_per_hour"],
        "instances": {"labels": [i["label"] for i in data["instances"]],
                      "values": [i["count"] for i in data["instances"]]},
        "accounts": {"labels": [a["label"] for a in data["accounts"]],
                     "values": [a["count"] for a in data["accounts"]]},
    }
    return data
