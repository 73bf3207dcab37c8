from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts.api import views

router = SimpleRouter()
router.register("auth/sessions", views.SessionViewSet, basename="auth-session")
router.register("users", views.UserViewSet, basename="user")
router.register("roles", views.RoleViewSet, basename="role")
router.register("permissions", views.PermissionViewSet, basename="permission")
router.register("role-grants", views.UserRoleViewSet, basename="userrole")
router.register("login-logs", views.LoginLogViewSet, basename="loginlog")

urlpatterns = [
    path("auth/login", views.LoginView.as_view(), name="auth-login"),
    path("auth/refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("instance-grants/", views.InstanceGrantView.as_view(), name="instance-grants"),
    path("instance-grants/revoke/", views.InstanceGrantRevokeView.as_view(), name="instance-grants-revoke"),
    *router.urls,
]
