from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("monitoring/audit-logs", views.AuditLogViewSet, basename="auditlog")
router.register("monitoring/alerts", views.AlertRecordViewSet, basename="alertrecord")
router.register("monitoring/alert-rules", views.AlertRuleViewSet, basename="alertrule")

urlpatterns = [
    path("monitoring/system-logs/", views.SystemLogListView.as_view({"get": "list"}), name="systemlog-list"),
    path("monitoring/system-logs/<int:pk>/", views.SystemLogDetailView.as_view(),
         name="systemlog-detail"),
    path("monitoring/dashboard/", views.DashboardView.as_view(), name="monitoring-dashboard"),
    *router.urls,
]
