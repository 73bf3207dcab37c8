"""API of the contacts app: accounts (sync, logout actions) and the per-instance shards of
contacts, groups and group members (the `instance` query parameter picks the shard)."""
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from contacts import services
from contacts.filtersets import (
    ContactFilterSet,
    GroupFilterSet,
    GroupMemberFilterSet,
    WeworkAccountFilterSet,
)
from contacts.models import Contact, Group, GroupMember, WeworkAccount
from contacts.qr import qr_svg
from instances import permissions
from instances.models import WeworkInstance
from instances.services import ServiceError
from wework import shards
from wework.api.filters import (
    PlatformOrderingFilter,
    PlatformSearchFilter,
    no_filter_asked,
    query_errors,
    query_id,
    view_params,
)
from wework.api.views import PlatformReadOnlyViewSet, ScopedQuerysetMixin

from .serializers import (
    ContactSerializer,
    GroupMemberSerializer,
    GroupSerializer,
    StartLoginSerializer,
    SyncSerializer,
    VerifyLoginSerializer,
    WeworkAccountSerializer,
)


def _require(request, perm, instance):
    if not permissions.allowed(request.user, perm, instance.pk):
        raise PermissionDenied(_("You do not have permission to do this on this instance."))


def _service_error(exc):
    return Response({"ok": False, "error": {"code": exc.code, "message": exc.message}},
                    status=exc.status)


class WeworkAccountViewSet(PlatformReadOnlyViewSet):
    """WeCom accounts. Actions: sync (contacts, groups, members), logout."""

    queryset = WeworkAccount.objects.select_related("instance").order_by("-id")
    serializer_class = WeworkAccountSerializer
    filterset_class = WeworkAccountFilterSet
    search_fields = ["wxid", "nickname", "phone"]
    ordering_fields = ["id", "status", "last_login_time", "contact_count"]
    action_permissions = {
        "sync": [permissions.SYNC_CONTACTS],
        "logout": [permissions.LOGIN_ACCOUNT],
    }

    @action(detail=True, methods=["post"], serializer_class=SyncSerializer)
    def sync(self, request, pk=None):
        account = self.get_object()
        if not permissions.allowed(request.user, permissions.SYNC_CONTACTS, account.instance_id):
            raise PermissionDenied(_("You do not have permission to sync this account."))
        body = SyncSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if not account.is_logged_in:
            return _service_error(ServiceError(_("The account is not logged in."),
                                               code="not_logged_in", status=409))
        scopes = [s for s in services.SYNC_SCOPES if s in (body.validated_data.get("scopes")
                                                           or services.SYNC_SCOPES)]
        result = services.request_sync(account, scopes=tuple(scopes),
                                       resume=body.validated_data["resume"])
        if not result.queued:
            return _service_error(ServiceError(
                _("A sync of this account is already queued or running."),
                code="sync_running", status=409))
        return Response({"ok": True, "task_id": result.task_id},
                        status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def logout(self, request, pk=None):
        account = self.get_object()
        if not permissions.allowed(request.user, permissions.LOGIN_ACCOUNT, account.instance_id):
            raise PermissionDenied(_("You do not have permission to log this account out."))
        try:
            account = services.logout(account)
        except ServiceError as exc:
            return _service_error(exc)
        return Response(WeworkAccountSerializer(account).data)


class InstanceShardViewSet(PlatformReadOnlyViewSet):
    """Rows of one instance's shard: `?instance=<id>` is required (lists and details). A shard
    holds up to millions of rows: searches go through an index (wework.api.filters.
    PlatformSearchFilter), exact or by a name's beginning."""

    base_model = None
    view_perm = None
    #: Parameters a subclass reads itself (an app above adding filters), not unknown ones.
    extra_params: tuple[str, ...] = ()
    large_table = True
    #: Columns an index serves together with the account: (account, wxid), (account, group_wxid).
    account_indexed = ("wxid", "group_wxid")

    def indexed_search_scope(self, attname):
        if attname not in self.account_indexed:
            return {}
        accounts = WeworkAccount.all_objects.filter(instance_id=self.instance_id())
        return {"account_id__in": sorted(accounts.values_list("pk", flat=True))}

    def instance_id(self):
        instance_id = query_id(self.request.query_params, "instance", _("An instance id is required."))
        if not permissions.allowed(self.request.user, self.view_perm, instance_id):
            raise NotFound(_("No such instance."))
        return instance_id

    def filter_queryset(self, queryset):
        """django-filter's backend insists on the FilterSet's model; a shard model has the
        same fields but another class, so the FilterSet is applied here directly. A query that
        names no filter (`?instance=&limit=`) builds no FilterSet form: it would change nothing."""
        params = self.request.query_params
        allowed = view_params(self) | {"instance"} | set(self.extra_params)
        if not no_filter_asked(params, self.filterset_class, allowed):
            filterset = self.filterset_class(params, queryset=queryset, request=self.request)
            # bad values (and, on lists, unknown parameters) answer 400, as on every other list
            errors = query_errors(params, filterset, allowed,
                                  check_unknown=getattr(self, "action", "list") == "list")
            if errors:
                raise ValidationError(errors)
            queryset = filterset.qs
        for backend in (PlatformSearchFilter, PlatformOrderingFilter):
            queryset = backend().filter_queryset(self.request, queryset, self)
        return queryset

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.base_model.objects.none()
        try:
            qs = shards.for_instance(self.base_model, self.instance_id(), create=False)
        except shards.ShardMissing:
            return self.base_model.objects.none()
        return qs.order_by("-id")


class ContactViewSet(InstanceShardViewSet):
    base_model = Contact
    view_perm = "contacts.view_contact"
    serializer_class = ContactSerializer
    filterset_class = ContactFilterSet
    search_fields = ["=wxid", "^nickname", "^remark"]
    ordering_fields = ["id", "nickname", "last_chat_time"]


class GroupViewSet(InstanceShardViewSet):
    base_model = Group
    view_perm = "contacts.view_group"
    serializer_class = GroupSerializer
    filterset_class = GroupFilterSet
    search_fields = ["=group_wxid", "^group_name"]
    ordering_fields = ["id", "group_name", "member_count"]


class GroupMemberViewSet(InstanceShardViewSet):
    base_model = GroupMember
    view_perm = "contacts.view_groupmember"
    serializer_class = GroupMemberSerializer
    filterset_class = GroupMemberFilterSet
    search_fields = ["=member_wxid", "^group__group_name"]  # nicknames: no index in the members
    ordering_fields = ["id", "join_time"]


#: The answer of the QR login actions (_login_view).
LOGIN_FIELDS = {
    "login_id": serializers.CharField(), "status": serializers.CharField(),
    "qrcode": serializers.CharField(allow_null=True), "expires_at_ms": serializers.IntegerField(allow_null=True),
    "account_wxid": serializers.CharField(allow_null=True), "account": serializers.IntegerField(allow_null=True),
    "error": serializers.JSONField(allow_null=True),
}


class InstanceLoginViewSet(ScopedQuerysetMixin, viewsets.GenericViewSet):
    """QR login of WeCom accounts on an instance: `/instances/{id}/logins/...` (the instance
    routes are the instances app's; logging accounts in is this app's)."""

    queryset = WeworkInstance.objects.order_by("-id")
    serializer_class = StartLoginSerializer
    action_permissions = {
        "logins": [permissions.LOGIN_ACCOUNT],
        "login_status": [permissions.LOGIN_ACCOUNT],
        "verify_login": [permissions.LOGIN_ACCOUNT],
        "cancel_login": [permissions.LOGIN_ACCOUNT],
    }

    @extend_schema(request=StartLoginSerializer, responses={201: inline_serializer("LoginStarted", {
        **LOGIN_FIELDS, "qr_svg": serializers.CharField()})})
    @action(detail=True, methods=["post"], serializer_class=StartLoginSerializer)
    def logins(self, request, pk=None):
        """Start a QR login: returns login_id, the QR content and an inline SVG of it."""
        instance = self.get_object()
        _require(request, permissions.LOGIN_ACCOUNT, instance)
        body = StartLoginSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            state = services.start_login(
                instance, user=request.user,
                account_wxid=body.validated_data.get("account_wxid") or None,
            )
        except ServiceError as exc:
            return _service_error(exc)
        return Response(
            {**_login_view(state), "qr_svg": qr_svg(state["qrcode"])},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(responses={200: inline_serializer("LoginState", LOGIN_FIELDS)})
    @action(detail=True, methods=["get"], url_path=r"logins/(?P<login_id>[\w.:-]+)")
    def login_status(self, request, pk=None, login_id=None):
        instance = self.get_object()
        _require(request, permissions.LOGIN_ACCOUNT, instance)
        try:
            state = services.poll_login(instance, login_id)
        except ServiceError as exc:
            return _service_error(exc)
        return Response(_login_view(state))

    @extend_schema(request=VerifyLoginSerializer, responses={200: inline_serializer("LoginVerified", LOGIN_FIELDS)})
    @action(detail=True, methods=["post"], serializer_class=VerifyLoginSerializer,
            url_path=r"logins/(?P<login_id>[\w.:-]+)/verify")
    def verify_login(self, request, pk=None, login_id=None):
        """Submit the verification code of a login in `need_verify`."""
        instance = self.get_object()
        _require(request, permissions.LOGIN_ACCOUNT, instance)
        body = VerifyLoginSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            state = services.verify_login(instance, login_id, body.validated_data["code"])
        except ServiceError as exc:
            return _service_error(exc)
        return Response(_login_view(state))

    @extend_schema(request=None, responses={200: inline_serializer("LoginCancelled", LOGIN_FIELDS)})
    @action(detail=True, methods=["post"], url_path=r"logins/(?P<login_id>[\w.:-]+)/cancel")
    def cancel_login(self, request, pk=None, login_id=None):
        instance = self.get_object()
        _require(request, permissions.LOGIN_ACCOUNT, instance)
        try:
            state = services.cancel_login(instance, login_id)
        except ServiceError as exc:
            return _service_error(exc)
        return Response(_login_view(state))


def _login_view(state):
    return {
        "login_id": state["login_id"],
        "status": state["status"],
        "qrcode": state.get("qrcode"),
        "expires_at_ms": state.get("expires_at_ms"),
        "account_wxid": state.get("account_id"),
        "account": state.get("account_pk"),
        "error": state.get("error"),
    }


