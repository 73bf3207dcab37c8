"""FilterSets shared by the API and the pages."""
import json

import django_filters
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from wework.api.filters import IdFilter, IsoDateTimeFilter, PlatformFilterSet

from .models import (
    ChatType, Message, MessageReceiver, MessageTask, MessageTemplate, MessageType,
    ReceiverSendStatus, ReceiverType, SendStatus, TaskPriority, TaskStatus, TaskType, TemplateStatus,
)


class MessageFilterSet(PlatformFilterSet):
    """Applied inside one monthly shard (see the API's `month` parameter)."""

    account = IdFilter(field_name="account_id", label=_("account"))
    chat_wxid = django_filters.CharFilter(label=_("chat WeCom ID"))
    chat_type = django_filters.ChoiceFilter(choices=ChatType.choices)
    message_type = django_filters.ChoiceFilter(choices=MessageType.choices)
    send_status = django_filters.ChoiceFilter(choices=SendStatus.choices)
    task_id = IdFilter()
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Message
        fields = ["account", "chat_wxid", "chat_type", "message_type", "send_status", "task_id"]


class MessageTaskFilterSet(PlatformFilterSet):
    account = IdFilter(field_name="account_id", label=_("account"))
    status = django_filters.ChoiceFilter(choices=TaskStatus.choices)
    task_type = django_filters.ChoiceFilter(choices=TaskType.choices)
    message_type = django_filters.ChoiceFilter(choices=MessageType.choices)
    priority = django_filters.ChoiceFilter(choices=TaskPriority.choices)
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = MessageTask
        fields = ["account", "status", "task_type", "message_type", "priority"]


class MessageReceiverFilterSet(PlatformFilterSet):
    task = IdFilter(field_name="task_id", label=_("task"))
    send_status = django_filters.ChoiceFilter(choices=ReceiverSendStatus.choices)
    receiver_type = django_filters.ChoiceFilter(choices=ReceiverType.choices)
    receiver_wxid = django_filters.CharFilter()
    error_code = django_filters.CharFilter()

    class Meta:
        model = MessageReceiver
        fields = ["task", "send_status", "receiver_type", "receiver_wxid", "error_code"]


class MessageTemplateFilterSet(PlatformFilterSet):
    category = django_filters.CharFilter()
    message_type = django_filters.ChoiceFilter(choices=MessageType.choices)
    status = django_filters.ChoiceFilter(choices=TemplateStatus.choices)
    name = django_filters.CharFilter(lookup_expr="icontains")
    tag = django_filters.CharFilter(method="filter_tag", label=_("tag"))

    class Meta:
        model = MessageTemplate
        fields = ["category", "message_type", "status", "is_public", "is_system"]

    def filter_tag(self, queryset, name, value):
        # JSON containment is not portable to SQLite: match the quoted tag in the JSON text, which
        # stores non-ASCII characters escaped (\uXXXX) or as they are, depending on who wrote it.
        return queryset.filter(Q(tags__icontains=json.dumps(value, ensure_ascii=False))
                               | Q(tags__icontains=json.dumps(value)))
