"""Auth endpoints (login, refresh, logout, sessions) and the access-control resources."""
from django.conf import settings
from django.contrib.auth import logout
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from guardian.models import UserObjectPermission
from rest_framework import exceptions, mixins, permissions, status, throttling, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import serializers as s
from accounts.filtersets import (
    LoginLogFilterSet, PermissionFilterSet, RoleFilterSet, UserFilterSet, UserRoleFilterSet,
)
from accounts.models import LoginLog, LoginResult, Permission, Role, User, UserRole, UserSession
from accounts.scoping import has_global_perm
from accounts.services import auth as auth_services
from accounts.services import otp as otp_services
from accounts.services import permissions as perm_services
from accounts.services import roles as role_services
from accounts.services import sessions as session_services
from accounts.services import users as user_services
from wework.api.authentication import UNIFORM_MESSAGE
from wework.api.filters import query_id
from wework.api.views import PlatformModelViewSet, PlatformReadOnlyViewSet, not_found_message


class _CacheThrottle(throttling.SimpleRateThrottle):
    """Per-IP or per-username windows in the cache (Redis in production)."""

    def get_rate(self):
        count, seconds = getattr(settings, self.setting, self.default)
        return f"{count}/{seconds}s"

    def parse_rate(self, rate):
        count, seconds = rate.split("/")
        return int(count), int(seconds.rstrip("s"))


class LoginIPThrottle(_CacheThrottle):
    scope = "auth_ip"
    setting, default = "ACCESS_LOGIN_RATE_PER_IP", (30, 60)

    def get_cache_key(self, request, view):
        return f"thr:api:{self.scope}:{auth_services.client_ip(request)}"


class LoginUsernameThrottle(_CacheThrottle):
    scope = "auth_user"
    setting, default = "ACCESS_LOGIN_RATE_PER_USERNAME", (10, 60)

    def get_cache_key(self, request, view):
        try:
            username = str(request.data.get("username") or "")[:50].lower()
        except exceptions.APIException:
            # Unparsable body (400) or unsupported media type (415): answer that now. Swallowed,
            # DRF would hand the view an empty body, reported as "field required" errors.
            raise
        except AttributeError:  # a JSON list or scalar: the serializer reports it
            return None
        return f"thr:api:{self.scope}:{username}" if username else None


def _failed():
    return exceptions.AuthenticationFailed(UNIFORM_MESSAGE)


def _pair(row, access, refresh):
    return {
        "token_type": "Bearer",
        "access": access,
        "refresh": refresh,
        "expires_in": session_services.access_seconds(),
        "refresh_expires_in": session_services.refresh_seconds(),
        "session": row.pk,
    }


class _TokenEndpoint(APIView):
    """Unauthenticated token endpoints: failures still answer 401 with a Bearer challenge."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    def get_authenticate_header(self, request):
        return 'Bearer realm="api"'


class LoginView(_TokenEndpoint):
    """Exchange username, password (and a one-time code when enrolled) for tokens."""

    throttle_classes = [LoginIPThrottle, LoginUsernameThrottle]

    @extend_schema(request=s.LoginSerializer, responses={200: s.TokenPairSerializer})
    def post(self, request):
        data = s.LoginSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        user = auth_services.check_password_login(
            request, v["username"], v["password"], channel="api", throttle=False
        )
        if user is None:
            raise _failed()
        if otp_services.has_device(user):
            if otp_services.verify_code(user, v.get("otp")) is None:
                auth_services.register_otp_failure(request, user, channel="api")
                raise _failed()
        elif otp_services.requires_two_factor(user):
            # Must enroll in the browser first (the admin sends them to the setup page).
            auth_services.record_attempt(request, user.username, LoginResult.BAD_OTP, user=user, channel="api")
            raise _failed()
        with transaction.atomic():
            row, access, refresh = session_services.issue_tokens(
                user, request, v.get("device_type") or None, v.get("device_id") or None
            )
            auth_services.complete_login(request, user, channel="api", session_id=row.session_id)
        return Response(_pair(row, access, refresh))


class RefreshView(_TokenEndpoint):
    """Rotate a refresh token: returns a new pair; the old refresh token stops working."""
    throttle_classes = [LoginIPThrottle]

    @extend_schema(request=s.RefreshSerializer, responses={200: s.TokenPairSerializer})
    def post(self, request):
        data = s.RefreshSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            row, access, refresh = session_services.refresh_tokens(data.validated_data["refresh"], request)
        except session_services.AuthFailed:
            raise _failed() from None
        return Response(_pair(row, access, refresh))


class LogoutView(APIView):
    """End the current session (its whole token family)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        if isinstance(request.auth, UserSession):
            session_services.revoke(request.auth, reason="logout")
        else:
            logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                     viewsets.GenericViewSet):
    """My sessions (everyone); all sessions for holders of accounts.view_usersession.
    DELETE ends a session: your own, or any with accounts.change_usersession."""

    serializer_class = s.UserSessionSerializer
    permission_classes = [permissions.IsAuthenticated]
    queryset = UserSession.objects.all()

    def get_queryset(self):
        user = self.request.user
        qs = UserSession.objects.filter(is_active=True, revoked_at__isnull=True).order_by("-last_activity")
        if has_global_perm(user, "accounts.view_usersession"):
            wanted = self.request.query_params.get("user")
            if wanted and wanted.isdigit():
                return qs.filter(user_id=int(wanted))
            if self.request.query_params.get("all") == "1":
                return qs
        return qs.filter(user=user)

    def get_object(self):
        """A 404 in the user's language, as the platform's other detail endpoints answer."""
        try:
            return super().get_object()
        except Http404:
            raise exceptions.NotFound(not_found_message(UserSession)) from None

    def perform_destroy(self, instance):
        user = self.request.user
        if instance.user_id != user.pk and not has_global_perm(user, "accounts.change_usersession"):
            raise exceptions.PermissionDenied
        session_services.revoke(instance, reason="user" if instance.user_id == user.pk else "admin")


class UserViewSet(PlatformModelViewSet):
    """Users. The rules of who may change whom live in accounts.services.users."""

    queryset = User.objects.all().order_by("id")
    serializer_class = s.UserSerializer
    search_fields = ["username", "email", "nickname"]
    filterset_class = UserFilterSet
    action_permissions = {"unlock": ["accounts.change_user"]}
    sudo_actions = {"destroy"}

    def perform_create(self, serializer):
        user = User(**serializer.validated_data)
        serializer.instance = user_services.create_user(
            self.request.user, user, self.request.data.get("password") or None)

    def perform_update(self, serializer):
        target = serializer.instance
        changed = [name for name, value in serializer.validated_data.items()
                   if getattr(target, name) != value]
        for name, value in serializer.validated_data.items():
            setattr(target, name, value)
        user_services.save_user(self.request.user, target, changed)

    def perform_destroy(self, instance):
        user_services.delete_user(self.request.user, instance)

    @action(detail=True, methods=["post"])
    def unlock(self, request, pk=None):
        user = self.get_object()
        user_services.check_change(request.user, user)
        user_services.unlock(request.user, [user])
        return Response(s.UserSerializer(user).data)


class RoleViewSet(PlatformModelViewSet):
    """Roles and their permissions (`permissions`: names). Editing needs accounts.manage_roles
    and sudo mode; the rules live in accounts.services.roles."""

    queryset = Role.objects.all().prefetch_related("permissions")
    serializer_class = s.RoleSerializer
    filterset_class = RoleFilterSet
    sudo_actions = {"create", "update", "partial_update", "destroy"}

    def check_permissions(self, request):
        super().check_permissions(request)
        if request.method not in permissions.SAFE_METHODS and not role_services.may_manage_roles(request.user):
            self.permission_denied(request)

    def _save(self, serializer, role):
        data = dict(serializer.validated_data)
        names = data.pop("permissions", None)
        for name, value in data.items():
            setattr(role, name, value)
        serializer.instance = role_services.save_role(role, actor=self.request.user, permissions=names)

    def perform_create(self, serializer):
        self._save(serializer, Role())

    def perform_update(self, serializer):
        self._save(serializer, serializer.instance)

    def perform_destroy(self, instance):
        role_services.delete_role(instance, actor=self.request.user)


class PermissionViewSet(PlatformReadOnlyViewSet):
    queryset = Permission.objects.all()
    serializer_class = s.PermissionSerializer
    filterset_class = PermissionFilterSet
    search_fields = ["name", "display_name"]


class UserRoleViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, PlatformReadOnlyViewSet):
    """Role grants. Granting and revoking need accounts.manage_roles and sudo mode."""

    queryset = UserRole.objects.select_related("user", "role").order_by("id")
    serializer_class = s.UserRoleSerializer
    filterset_class = UserRoleFilterSet
    sudo_actions = {"create", "destroy"}

    def check_permissions(self, request):
        super().check_permissions(request)
        if request.method not in permissions.SAFE_METHODS and not role_services.may_manage_roles(request.user):
            self.permission_denied(request)

    def perform_create(self, serializer):
        v = serializer.validated_data
        serializer.instance = perm_services.grant_role(v["user"], v["role"], self.request.user, v.get("expires_at"))

    def perform_destroy(self, instance):
        perm_services.revoke_role(instance.user, instance.role, self.request.user)


class LoginLogViewSet(PlatformReadOnlyViewSet):
    """Login history (auditors: accounts.view_loginlog)."""

    queryset = LoginLog.objects.all()
    serializer_class = s.LoginLogSerializer
    filterset_class = LoginLogFilterSet
    search_fields = ["username", "ip_address"]


class InstanceGrantView(APIView):
    """Object grants on instances. GET lists them (?user=, ?instance=) for holders of
    accounts.view_userrole; POST grants, POST to .../revoke revokes: accounts.manage_roles and
    sudo mode (X-OTP-Code)."""

    required_permissions = ["accounts.view_userrole"]
    serializer_class = s.InstanceGrantSerializer

    @extend_schema(responses={200: s.InstanceGrantSerializer(many=True)})
    def get(self, request):
        model = perm_services.instance_model()
        rows = UserObjectPermission.objects.filter(content_type=ContentType.objects.get_for_model(model))
        if (user := query_id(request.query_params, "user")) is not None:
            rows = rows.filter(user_id=user)
        if (inst := query_id(request.query_params, "instance")) is not None:
            rows = rows.filter(object_pk=str(inst))
        grants = {}
        for user_id, object_pk, codename in rows.values_list("user_id", "object_pk", "permission__codename")[:5000]:
            name = codename if "." in codename else f"instances.{codename}"
            grants.setdefault((user_id, int(object_pk)), []).append(name)
        return Response([{"user": u, "instance": i, "permissions": sorted(p)} for (u, i), p in sorted(grants.items())])

    def _check_manager(self, request):
        if not role_services.may_manage_roles(request.user):
            raise exceptions.PermissionDenied
        if not otp_services.in_sudo(request):
            raise exceptions.PermissionDenied(
                _("This action needs a recent one-time code (send it in the X-OTP-Code header).")
            )

    @extend_schema(request=s.InstanceGrantSerializer, responses={201: None})
    def post(self, request):
        self._check_manager(request)
        data = s.InstanceGrantSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        names = perm_services.grant_instance(
            v["user"], v["instance"], v.get("permissions") or v["role"], granted_by=request.user
        )
        return Response({"user": v["user"].pk, "instance": v["instance"].pk, "permissions": sorted(names)},
                        status=status.HTTP_201_CREATED)


class InstanceGrantRevokeView(InstanceGrantView):
    @extend_schema(request=s.InstanceGrantSerializer, responses={200: None})
    def post(self, request):
        self._check_manager(request)
        data = s.InstanceGrantSerializer(data=request.data, context={"require_permissions": False})
        data.is_valid(raise_exception=True)
        v = data.validated_data
        names = v.get("permissions")
        if not names and v.get("role") is not None:
            names = [n for n in v["role"].permissions.values_list("name", flat=True)
                     if perm_services.grantable_on_instance(n)]
        count = perm_services.revoke_instance(v["user"], v["instance"], names or None, revoked_by=request.user)
        return Response({"revoked": count})
