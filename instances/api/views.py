"""API of the instances app: instances (with restart and push config actions), configs,
metrics (weekly shards), the event inbox, and the webhook intake endpoint."""


from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from instances import permissions, services
from instances.filtersets import (
    InstanceConfigFilterSet,
    InstanceEventFilterSet,
    InstanceMonitorFilterSet,
    WeworkInstanceFilterSet,
)
from instances.models import InstanceConfig, InstanceEvent, InstanceMonitor, WeworkInstance
from wework.api.filters import query_id
from wework.api.views import PlatformModelViewSet, PlatformReadOnlyViewSet, ShardedListViewSet

from .serializers import (
    EndpointChangedSerializer,
    EndpointSerializer,
    InstanceConfigSerializer,
    InstanceEventSerializer,
    InstanceMonitorSerializer,
    RestartSerializer,
    WeworkInstanceSerializer,
)


def _service_error(exc):
    return Response(
        {"ok": False, "error": {"code": exc.code, "message": exc.message}},
        status=exc.status,
    )


def _require(request, perm, instance):
    if not permissions.allowed(request.user, perm, instance.pk):
        raise PermissionDenied(_("You do not have permission to do this on this instance."))


class WeworkInstanceViewSet(PlatformReadOnlyViewSet):
    """WeCom instances. Actions: restart, push_config (QR login: contacts.api, same URL space)."""

    queryset = WeworkInstance.objects.select_related("created_by").order_by("-id")
    serializer_class = WeworkInstanceSerializer
    filterset_class = WeworkInstanceFilterSet
    search_fields = ["name", "instance_uuid", "api_url"]
    ordering_fields = ["id", "name", "status", "last_heartbeat", "created_at"]
    small_table = True  # a few hundred rows: any declared ordering (wework.api.filters)
    action_permissions = {
        "restart": [permissions.RESTART],
        "push_config": [permissions.PUSH_CONFIG],
        "endpoint": [permissions.VIEW_INSTANCE],  # the service checks its own (a role) and sudo
    }
    sudo_actions = {"destroy", "endpoint"}

    @extend_schema(request=RestartSerializer, responses={202: inline_serializer("RestartAccepted", {
        "ok": serializers.BooleanField(), "restart_count": serializers.IntegerField(),
        "last_restart_time": serializers.DateTimeField(allow_null=True)})})
    @action(detail=True, methods=["post"], serializer_class=RestartSerializer)
    def restart(self, request, pk=None):
        instance = self.get_object()
        _require(request, permissions.RESTART, instance)
        body = RestartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            services.restart_instance(instance, reason=body.validated_data.get("reason") or None)
        except services.ServiceError as exc:
            return _service_error(exc)
        return Response({"ok": True, "restart_count": instance.restart_count,
                         "last_restart_time": instance.last_restart_time},
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: inline_serializer("ConfigPushed", {
        "ok": serializers.BooleanField(), "applied": serializers.ListField(child=serializers.CharField())})})
    @action(detail=True, methods=["post"], url_path="push-config")
    def push_config(self, request, pk=None):
        instance = self.get_object()
        _require(request, permissions.PUSH_CONFIG, instance)
        try:
            result = services.push_config(instance)
        except services.ServiceError as exc:
            return _service_error(exc)
        return Response({"ok": True, "applied": result.get("applied", [])})


    @extend_schema(request=EndpointSerializer, responses={200: EndpointChangedSerializer})
    @action(detail=True, methods=["post"], serializer_class=EndpointSerializer)
    def endpoint(self, request, pk=None):
        """Change where the instance's secrets are sent (API URL, proxy) and give its token
        there: the permission `instances.change_endpoint` (a role) and sudo mode (X-OTP-Code)
        are required; a move re-keys the webhook secret and withholds the API token until a
        token is given (instances.services.endpoint)."""
        instance = self.get_object()
        services.endpoint.authorize(request.user, request)
        body = EndpointSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        push = values.pop("push", True)
        token = values.pop("token", None)
        result = services.change_endpoint(instance, user=request.user, request=request,
                                          token=token, push=push, via="api", **values)
        return Response({"ok": True, **result.as_dict(),
                         "instance": WeworkInstanceSerializer(result.instance).data})


class InstanceConfigViewSet(PlatformModelViewSet):
    """Instance configuration; encrypted values are write-only."""

    queryset = InstanceConfig.objects.select_related("instance").order_by("instance_id",
                                                                          "config_key")
    serializer_class = InstanceConfigSerializer
    filterset_class = InstanceConfigFilterSet
    search_fields = ["config_key", "description"]

    def perform_create(self, serializer):
        instance = serializer.validated_data["instance"]
        if not permissions.allowed(self.request.user, "instances.add_instanceconfig",
                                   instance.pk):
            raise PermissionDenied(_("You may not configure this instance."))
        serializer.save()

    def perform_destroy(self, config):
        if config.is_system:
            raise ValidationError(_("System configuration cannot be deleted."))
        config.delete()


class InstanceEventViewSet(PlatformReadOnlyViewSet):
    """The webhook inbox (read-only): state, attempts and errors of each event."""

    queryset = InstanceEvent.objects.order_by("-id")
    serializer_class = InstanceEventSerializer
    filterset_class = InstanceEventFilterSet
    ordering_fields = ["id", "seq", "received_at"]


class InstanceMonitorViewSet(ShardedListViewSet):
    """Metrics of one instance from the weekly shards, newest first, keyset paged (no COUNT).

    Query: `instance` (required), `metric_name`, `since`, `until` (ISO times: an id range in
    the weeks they cover), `after` (the `next_after` of the previous page), `limit` (1-500).
    Any other parameter is a 400.
    """

    base_model = InstanceMonitor
    serializer_class = InstanceMonitorSerializer
    filterset_class = InstanceMonitorFilterSet

    def shard_scope(self, request):
        instance_id = query_id(request.query_params, "instance", _("An instance id is required."))
        if not permissions.allowed(request.user, "instances.view_instancemonitor", instance_id):
            raise NotFound(_("No such instance."))
        return {"instance_id": instance_id}

    def page_arguments(self, request, scope, filters):
        # since/until choose the weeks and bound the ids (no time index is read)
        cleaned = filters.form.cleaned_data if filters is not None else {}  # None: no filter asked
        lookups = {"instance_id": scope["instance_id"]}
        if cleaned.get("metric_name"):
            lookups["metric_name"] = cleaned["metric_name"]
        return {"since": cleaned.get("since"), "until": cleaned.get("until"), "filters": lookups}


@csrf_exempt
@require_POST
def webhook_events(request, instance_uuid):
    """POST /api/v1/instances/<uuid>/events: one signed event, or a batch of them (protocol
    1.2), from an instance.

    Authentication is the HMAC signature (no session, no CSRF); see services.receive_webhook.
    """
    from django.core.exceptions import RequestDataTooBig

    try:
        body = request.body
    except RequestDataTooBig:
        return JsonResponse({"ok": False, "error": {"code": "too_large", "message": _(
            "The event is larger than the platform accepts.")}}, status=413)
    try:
        result = services.receive_webhook(str(instance_uuid), body, request.headers)
    except Exception:  # never a 500 for an instance: it would retry forever
        import logging

        logging.getLogger("wework.instances").exception("webhook intake failed")
        return JsonResponse({"ok": False, "error": {"code": "internal", "message": _(
            "The platform could not store the event; retry later.")}}, status=503)
    return JsonResponse(result.body, status=result.status,
                        json_dumps_params={"ensure_ascii": False})


