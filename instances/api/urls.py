from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()  # the one API root is wework/api/urls.py's
router.register("instances", views.WeworkInstanceViewSet, basename="weworkinstance")
router.register("instance-configs", views.InstanceConfigViewSet, basename="instanceconfig")
router.register("instance-monitors", views.InstanceMonitorViewSet, basename="instancemonitor")
router.register("instance-events", views.InstanceEventViewSet, basename="instanceevent")

urlpatterns = [
    path("instances/<uuid:instance_uuid>/events", views.webhook_events, name="instance-events"),
    *router.urls,
]
