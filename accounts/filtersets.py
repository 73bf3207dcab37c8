"""FilterSets of accounts (the API lists). Every field has a filter or is exempt with a reason
(tests/test_filter_coverage.py)."""
from accounts.models import LoginLog, Permission, Role, User, UserRole
from wework.api.filters import IsoDateTimeFilter, PlatformFilterSet


class CreatedFilters(PlatformFilterSet):
    since = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")


class UserFilterSet(CreatedFilters):
    last_login_since = IsoDateTimeFilter(field_name="last_login", lookup_expr="gte")

    class Meta:
        model = User
        fields = ["username", "email", "phone", "status", "is_superuser", "two_factor_enabled",
                  "email_verified", "phone_verified", "last_login_ip"]


class RoleFilterSet(CreatedFilters):
    class Meta:
        model = Role
        fields = ["name", "status", "is_system", "is_default", "require_two_factor"]


class PermissionFilterSet(CreatedFilters):
    class Meta:
        model = Permission
        fields = ["name", "module", "resource", "action", "status", "is_system"]


class UserRoleFilterSet(CreatedFilters):
    expires_before = IsoDateTimeFilter(field_name="expires_at", lookup_expr="lte")

    class Meta:
        model = UserRole
        fields = ["user", "role", "granted_by"]


class LoginLogFilterSet(CreatedFilters):
    class Meta:
        model = LoginLog
        fields = ["user", "username", "success", "result", "channel", "ip_address", "session_id"]
