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


class WeworkInstanceSerializer(serializers.ModelSerializer):
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


class InstanceConfigSerializer(serializers.ModelSerializer):
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


class InstanceMonitorSerializer(serializers.ModelSerializer):
    class Meta:
        model = InstanceMonitor
        fields = ["id", "instance", "metric_name", "metric_value", "metric_unit", "collected_at"]
        read_only_fields = fields


class InstanceEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = InstanceEvent
        fields = [
            "id", "instance", "event_id", "seq", "event_type", "account_wxid", "payload",
            "ts_ms", "replayed", "state", "attempts", "error", "received_at", "processed_at",
        ]
        read_only_fields = fields


class RestartSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)
