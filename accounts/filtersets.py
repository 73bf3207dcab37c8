"""FilterSets of accounts (the API lists). Every field has a filter or is exempt with a reason
(tests/test_filter_coverage.py)."""
import django_filters

from accounts.models import LoginLog, Permission, Role, User, UserRole


class CreatedFilters(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")


class UserFilterSet(CreatedFilters):
    last_login_since = django_filters.IsoDateTimeFilter(field_name="last_login", lookup_expr="gte")

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
    expires_before = django_filters.IsoDateTimeFilter(field_name="expires_at", lookup_expr="lte")

    class Meta:
        model = UserRole
        fields = ["user", "role", "granted_by"]


class LoginLogFilterSet(CreatedFilters):
    class Meta:
        model = LoginLog
        fields = ["user", "username", "success", "result", "channel", "ip_address", "session_id"]
