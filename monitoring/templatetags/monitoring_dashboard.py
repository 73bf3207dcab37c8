"""`{% monitoring_dashboard as dash %}`: the admin home page figures (cached, see services).

Users with a role granting a dashboard permission see every instance; users whose rights come
from per-instance grants see the figures of those instances only; others see no dashboard."""
from django import template

from monitoring import services

register = template.Library()

DASHBOARD_PERMISSIONS = services.DASHBOARD_PERMISSIONS


@register.simple_tag(takes_context=True)
def monitoring_dashboard(context):
    request = context.get("request")
    data = services.dashboard_for(getattr(request, "user", None))
    if data is None:
        return None
    data["chart"] = {
        "labels": [f"{h:02d}:00" for h in range(len(data["messages_per_hour"]))],
        "values": data["messages_per_hour"],
        "instances": {"labels": [i["label"] for i in data["instances"]],
                      "values": [i["count"] for i in data["instances"]]},
        "accounts": {"labels": [a["label"] for a in data["accounts"]],
                     "values": [a["count"] for a in data["accounts"]]},
    }
    return data
