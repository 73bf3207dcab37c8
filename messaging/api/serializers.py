"""Serializers of the messaging API. The input serializers of sends parse types; the rules of a
send task are `services.requests.TaskRequest`'s, which their `validate()` runs (the same
messages as the compose page and the service)."""
import json

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from wework.api.serializers import IdField, ModelSerializer

from .. import content as content_mod
from ..models import Message, MessageReceiver, MessageTask, MessageTemplate, MessageType, TaskPriority, TaskType
from ..services import receivers as receivers_mod
from ..services.requests import (
    MAX_RETRY_ERROR, MAX_RETRY_MAX, PRIORITY_ERROR, SEND_INTERVAL_ERROR, SEND_INTERVAL_MAX, TASK_TYPE_ERROR,
    TaskRequest,
)


def _check_request(request: TaskRequest) -> None:
    errors = request.input_errors()
    if errors:
        raise serializers.ValidationError(errors)


class MessageSerializer(ModelSerializer):
    content = serializers.SerializerMethodField()
    direction = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id", "message_uuid", "account", "chat_type", "chat_wxid", "message_type", "message_content",
            "content", "media_url", "media_size", "media_duration", "thumbnail_url", "file_name",
            "message_metadata", "send_status", "send_time", "receive_time", "error_code", "error_message",
            "retry_count", "task_id", "parent_message_id", "at_members", "is_scheduled", "scheduled_time",
            "direction", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def get_content(self, obj) -> dict:
        return content_mod.from_message(obj)

    def get_direction(self, obj) -> str:
        meta = obj.message_metadata or {}
        return meta.get("direction") or ("out" if obj.task_id else "in")


class MessageTaskSerializer(ModelSerializer):
    status_label = serializers.CharField(source="get_status_display", read_only=True)

    class Meta:
        model = MessageTask
        fields = [
            "id", "task_uuid", "task_name", "task_type", "account", "message_type", "message_content",
            "template", "template_variables", "target_count", "success_count", "fail_count", "progress",
            "status", "status_label", "priority", "send_interval", "max_retry", "scheduled_time",
            "started_at", "completed_at", "error_message", "created_by", "created_at", "updated_at",
        ]
        read_only_fields = fields


class ReceiverInputSerializer(serializers.Serializer):
    wxid = serializers.CharField(max_length=100)
    type = serializers.ChoiceField(choices=["contact", "group"], default="contact")
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    variables = serializers.DictField(required=False)


class ReceiverFiltersSerializer(serializers.Serializer):
    # the API's name for it; as a declared field it does not replace Field.source
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=["contacts", "groups", "all"], default="contacts")
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    contact_type = serializers.IntegerField(required=False, min_value=1, max_value=3)
    search = serializers.CharField(required=False, allow_blank=True)
    include_blocked = serializers.BooleanField(required=False, default=False)


class TaskCreateSerializer(serializers.Serializer):
    """Input of POST /messaging/tasks/: a batch or broadcast (or single) task."""

    account = IdField()
    task_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    task_type = serializers.ChoiceField(choices=TaskType.choices, required=False,
                                        error_messages={"invalid_choice": TASK_TYPE_ERROR})
    message_type = serializers.ChoiceField(choices=MessageType.choices, required=False)
    content = serializers.JSONField(required=False, help_text=_("Text, or the content object of the type."))
    template = IdField(required=False)
    template_variables = serializers.DictField(required=False)
    receivers = ReceiverInputSerializer(many=True, required=False)
    filters = ReceiverFiltersSerializer(required=False)
    priority = serializers.ChoiceField(choices=TaskPriority.choices, default=TaskPriority.MEDIUM,
                                       error_messages={"invalid_choice": PRIORITY_ERROR})
    scheduled_time = serializers.DateTimeField(required=False, allow_null=True)
    send_interval = serializers.IntegerField(
        min_value=0, max_value=SEND_INTERVAL_MAX, default=0,
        error_messages={"min_value": SEND_INTERVAL_ERROR, "max_value": SEND_INTERVAL_ERROR})
    max_retry = serializers.IntegerField(
        min_value=0, max_value=MAX_RETRY_MAX, default=3,
        error_messages={"min_value": MAX_RETRY_ERROR, "max_value": MAX_RETRY_ERROR})
    at_members = serializers.JSONField(required=False)
    reply_to = IdField(required=False)

    def to_internal_value(self, data):
        # Guard before DRF builds one serializer per receiver (1,000,000 of them would be slow).
        receivers = data.get("receivers") if hasattr(data, "get") else None
        limit = receivers_mod.max_receivers()
        if isinstance(receivers, list) and len(receivers) > limit:
            raise serializers.ValidationError(receivers_mod.too_many_receivers_error(len(receivers), limit).fields)
        return super().to_internal_value(data)

    def validate(self, attrs):
        _check_request(self.task_request(attrs))
        return attrs

    @staticmethod
    def task_request(data) -> TaskRequest:
        return TaskRequest.from_data(data)


class SendMessageSerializer(serializers.Serializer):
    """Input of POST /messaging/messages/send/: one message to one contact or group."""

    account = IdField()
    receiver_wxid = serializers.CharField(max_length=100)
    receiver_type = serializers.ChoiceField(choices=["contact", "group"], default="contact")
    message_type = serializers.ChoiceField(choices=MessageType.choices)
    content = serializers.JSONField(help_text=_("Text, or the content object of the type."))
    at_members = serializers.JSONField(required=False)
    reply_to = IdField(required=False)
    scheduled_time = serializers.DateTimeField(required=False, allow_null=True)

    def validate(self, attrs):
        _check_request(self.task_request(attrs))
        return attrs

    @staticmethod
    def task_request(data) -> TaskRequest:
        return TaskRequest.single(
            account=data.get("account"), receiver_wxid=data.get("receiver_wxid"),
            receiver_type=data.get("receiver_type", "contact"), message_type=data.get("message_type"),
            content=data.get("content"), at_members=data.get("at_members"), reply_to=data.get("reply_to"),
            scheduled_time=data.get("scheduled_time"),
        )


class MessageReceiverSerializer(ModelSerializer):
    failure_reason = serializers.CharField(
        read_only=True, help_text="Why the receiver failed, in the request's language (error_message "
                                  "is the instance's or the platform's own text).")

    class Meta:
        model = MessageReceiver
        fields = [
            "id", "task", "receiver_type", "receiver_wxid", "receiver_name", "message_id", "send_status",
            "send_time", "error_code", "error_message", "failure_reason", "retry_count", "variables",
            "created_at", "updated_at",
        ]
        read_only_fields = fields


class MessageTemplateSerializer(ModelSerializer):
    class Meta:
        model = MessageTemplate
        fields = [
            "id", "template_uuid", "name", "category", "message_type", "content", "variables",
            "preview_content", "thumbnail_url", "use_count", "last_used_at", "is_system", "is_public",
            "status", "sort_order", "tags", "created_by", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "template_uuid", "preview_content", "use_count", "last_used_at",
                            "is_system", "created_by", "created_at", "updated_at"]
        extra_kwargs = {"variables": {"required": False}, "tags": {"required": False}}

    def validate_content(self, value):
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False)
        return value


class PreviewSerializer(serializers.Serializer):
    values = serializers.DictField(required=False, default=dict)


class ResumeSerializer(serializers.Serializer):
    clear_stop = serializers.BooleanField(
        required=False, default=False,
        help_text=_("Also clear the account's risk-control stop that paused the task."),
    )
