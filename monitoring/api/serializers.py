from rest_framework import serializers

from monitoring.admin import LOG_COLUMNS
from monitoring.forms import rule_errors
from monitoring.models import AlertRecord, AlertRule, AuditLog, SystemLog
from wework.api.serializers import ModelSerializer


class SystemLogSerializer(ModelSerializer):
    class Meta:
        model = SystemLog
        fields = "__all__"


class SystemLogRowSerializer(ModelSerializer):
    """A row of the system log list (the columns the list reads: monitoring.admin.LOG_COLUMNS)."""

    class Meta:
        model = SystemLog
        fields = LOG_COLUMNS


class AuditLogSerializer(ModelSerializer):
    class Meta:
        model = AuditLog
        fields = "__all__"


class AlertRecordSerializer(ModelSerializer):
    display_title = serializers.CharField(
        read_only=True, help_text="alert_title in the language of the request (Accept-Language)")
    display_message = serializers.CharField(
        read_only=True, help_text="alert_message in the language of the request")
    source_label = serializers.CharField(read_only=True)

    class Meta:
        model = AlertRecord
        fields = "__all__"
        read_only_fields = [f.name for f in AlertRecord._meta.fields]


class AlertRuleSerializer(ModelSerializer):
    class Meta:
        model = AlertRule
        fields = ["id", "name", "display_name", "rule_type", "metric_name", "comparison",
                  "threshold_value", "window_seconds", "duration_seconds", "alert_level",
                  "is_enabled", "notify_channels", "cooldown_seconds", "description",
                  "created_by", "created_at", "updated_at"]
        read_only_fields = ["created_by", "created_at", "updated_at"]

    def validate(self, attrs):
        data = {}
        if self.instance is not None:
            data = {f: getattr(self.instance, f) for f in self.Meta.fields
                    if f not in ("id", "created_by", "created_at", "updated_at")}
        data.update(attrs)
        errors = rule_errors(data)
        if errors:
            raise serializers.ValidationError({k: [str(v)] for k, v in errors.items()})
        return attrs


class CommentSerializer(serializers.Serializer):
    comment = serializers.CharField(max_length=2000, required=False, allow_blank=True)
