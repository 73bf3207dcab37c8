from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from instances import services
from instances.models import (
    ConfigType,
    InstanceConfig,
    InstanceEvent,
    InstanceMonitor,
    WeworkInstance,
)
from wework.api.serializers import ModelSerializer


class WeworkInstanceSerializer(ModelSerializer):
    status_display = serializers.CharField(source="get_status_display", read_only=True)

    class Meta:
        model = WeworkInstance
        fields = [
            "id", "instance_uuid", "name", "description", "version", "status", "status_display",
            "api_url", "webhook_url", "proxy_host", "proxy_port", "proxy_username",
            "max_accounts", "current_accounts", "heartbeat_interval", "last_heartbeat",
            "error_message", "restart_count", "last_restart_time", "total_messages",
            "today_messages", "created_by", "created_at", "updated_at",
        ]
        read_only_fields = fields


class InstanceConfigSerializer(ModelSerializer):
    """`config_value` is write-only for encrypted configs: reads show a mask, never the value."""

    config_value = serializers.CharField(allow_null=True, allow_blank=True, required=False)

    class Meta:
        model = InstanceConfig
        fields = [
            "id", "instance", "config_key", "config_value", "config_type", "is_encrypted",
            "is_system", "description", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "is_system", "created_at", "updated_at"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.is_encrypted:
            data["config_value"] = services.MASK if instance.config_value else None
        return data

    def validate(self, attrs):
        config_type = attrs.get("config_type", getattr(self.instance, "config_type",
                                                       ConfigType.STRING))
        value = attrs.get("config_value")
        if value is not None:
            try:
                services.format_config_value(config_type, value)
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"config_value": exc.messages}) from None
        if self.instance is not None and self.instance.is_system:
            raise serializers.ValidationError(
                _("System configuration is managed by the platform (register_instance).")
            )
        if self.instance is None and attrs.get("config_key") in services.RESERVED_KEYS:
            raise serializers.ValidationError({"config_key": [_(
                "This key is the platform's own (the instance's secrets and where they go); set "
                "it through the instance's endpoint.")]})
        return attrs

    def create(self, validated):
        return services.set_config(
            validated["instance"], validated["config_key"], validated.get("config_value"),
            config_type=validated.get("config_type", ConfigType.STRING),
            encrypted=validated.get("is_encrypted", False),
            description=validated.get("description"),
        )

    def update(self, config, validated):
        if "config_value" not in validated and validated.get("is_encrypted") == config.is_encrypted:
            value = services.config_value(config)
        elif "config_value" in validated:
            value = validated["config_value"]
        else:
            value = services.config_value(config)
        return services.set_config(
            config.instance, config.config_key, value,
            config_type=validated.get("config_type", config.config_type),
            encrypted=validated.get("is_encrypted", config.is_encrypted),
            description=validated.get("description", config.description),
        )


class InstanceMonitorSerializer(ModelSerializer):
    class Meta:
        model = InstanceMonitor
        fields = ["id", "instance", "metric_name", "metric_value", "metric_unit", "collected_at"]
        read_only_fields = fields


class InstanceEventSerializer(ModelSerializer):
    class Meta:
        model = InstanceEvent
        fields = [
            "id", "instance", "event_id", "seq", "event_type", "account_wxid", "payload",
            "ts_ms", "replayed", "state", "attempts", "error", "received_at", "processed_at",
        ]
        read_only_fields = fields


class EndpointSerializer(serializers.Serializer):
    """POST /instances/{id}/endpoint/: where the instance's secrets are sent. Fields left out
    keep their value; `proxy_password` "" clears it; `token` is the instance's API token at
    its (new) address (write-only)."""

    api_url = serializers.CharField(required=False, max_length=500)
    proxy_host = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=100)
    proxy_port = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=65535)
    proxy_username = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                           max_length=100)
    proxy_password = serializers.CharField(required=False, allow_blank=True, write_only=True,
                                           max_length=200)
    token = serializers.CharField(required=False, write_only=True, max_length=500)
    push = serializers.BooleanField(required=False, default=True)

    def validate(self, attrs):
        if not set(attrs) - {"push"}:
            raise serializers.ValidationError(_("Give at least one endpoint field or a token."))
        return attrs


class EndpointChangedSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    changed = serializers.ListField(child=serializers.CharField())
    moved = serializers.BooleanField()
    rekeyed = serializers.BooleanField()
    token_given = serializers.BooleanField()
    token_withheld = serializers.BooleanField()
    pushed = serializers.BooleanField()
    push_error = serializers.CharField(allow_null=True)
    instance = WeworkInstanceSerializer()


class RestartSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)
