from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import LoginLog, Permission, Role, Status, User, UserRole, UserSession
from accounts.services.permissions import check_grantable_on_instance, instance_model
from wework.api.serializers import IdField, ModelSerializer, PrimaryKeyRelatedField
from wework.errors import DomainError


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=50)
    password = serializers.CharField(max_length=256, trim_whitespace=False, style={"input_type": "password"})
    otp = serializers.CharField(max_length=32, required=False, allow_blank=True,
                                help_text=_("One-time code (or backup code) when two-factor login is on."))
    otp_token = serializers.CharField(max_length=32, required=False, allow_blank=True,
                                      help_text=_("Another name for otp (the admin login form's name)."))
    device_type = serializers.CharField(max_length=20, required=False, allow_blank=True)
    device_id = serializers.CharField(max_length=100, required=False, allow_blank=True)

    def validate(self, attrs):
        alias = attrs.pop("otp_token", None)
        if not attrs.get("otp") and alias:
            attrs["otp"] = alias
        return attrs


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=200)


class TokenPairSerializer(serializers.Serializer):
    token_type = serializers.CharField()
    access = serializers.CharField()
    refresh = serializers.CharField()
    expires_in = serializers.IntegerField()
    refresh_expires_in = serializers.IntegerField()
    session = serializers.IntegerField()


class UserSessionSerializer(ModelSerializer):
    current = serializers.SerializerMethodField()

    class Meta:
        model = UserSession
        fields = ["id", "user", "kind", "device_type", "device_id", "user_agent", "ip_address",
                  "location", "created_at", "last_activity", "expires_at", "is_active",
                  "revoked_at", "revoke_reason", "current"]
        read_only_fields = fields

    def get_current(self, obj) -> bool:
        auth = getattr(self.context.get("request"), "auth", None)
        return isinstance(auth, UserSession) and auth.pk == obj.pk


class UserSerializer(ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email", "phone", "nickname", "avatar_url", "status",
                  "is_superuser", "two_factor_enabled", "email_verified", "phone_verified",
                  "last_login", "last_login_ip", "login_fail_count", "locked_until",
                  "created_at", "updated_at"]
        read_only_fields = ["is_superuser", "two_factor_enabled", "last_login", "last_login_ip",
                            "login_fail_count", "locked_until", "created_at", "updated_at"]

    def validate_phone(self, value):
        # No phone is NULL, not "": the unique key uk_phone allows many NULLs but one "".
        return (value or "").strip() or None


class RoleSerializer(ModelSerializer):
    permissions = serializers.SlugRelatedField(
        many=True, required=False, slug_field="name",
        queryset=Permission.objects.filter(status=Status.ENABLED),
        help_text=_("Permission names; the role holds exactly these (not for system roles)."),
    )

    class Meta:
        model = Role
        fields = ["id", "name", "display_name", "description", "is_system", "is_default",
                  "sort_order", "status", "require_two_factor", "permissions", "created_at",
                  "updated_at"]
        read_only_fields = ["is_system", "created_at", "updated_at"]


class PermissionSerializer(ModelSerializer):
    class Meta:
        model = Permission
        fields = ["id", "name", "display_name", "description", "module", "resource", "action",
                  "is_system", "status"]
        read_only_fields = fields


class UserRoleSerializer(ModelSerializer):
    class Meta:
        model = UserRole
        fields = ["id", "user", "role", "granted_by", "expires_at", "created_at"]
        read_only_fields = ["granted_by", "created_at"]

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError(_("The expiry must lie in the future."))
        return value


class LoginLogSerializer(ModelSerializer):
    class Meta:
        model = LoginLog
        fields = ["id", "user", "username", "success", "result", "channel", "ip_address",
                  "user_agent", "location", "session_id", "created_at"]
        read_only_fields = fields


class InstanceGrantSerializer(serializers.Serializer):
    """Grant (or revoke) permissions on one instance: a role's grantable permissions, or names."""

    user = PrimaryKeyRelatedField(queryset=User.objects.all())
    instance = IdField(min_value=1)
    role = serializers.SlugRelatedField(slug_field="name", queryset=Role.objects.all(), required=False)
    permissions = serializers.ListField(child=serializers.CharField(max_length=100), required=False)

    def validate(self, attrs):
        model = instance_model()
        instance = model.objects.filter(pk=attrs["instance"]).first() if model else None
        if instance is None:
            raise serializers.ValidationError({"instance": _("No such instance.")})
        attrs["instance"] = instance
        names = attrs.get("permissions")
        if not names and attrs.get("role") is None and self.context.get("require_permissions", True):
            raise serializers.ValidationError(_("Give a role or a list of permissions."))
        try:
            check_grantable_on_instance(names or [])
        except DomainError as exc:
            raise serializers.ValidationError(exc.as_dict()) from exc
        return attrs
