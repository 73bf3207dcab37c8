"""Messaging tables of the design (消息): messages, send tasks, their receivers, templates.

`messages` is sharded by month (`messages_YYYYMM`) by the shard layer; its ids are 64-bit
time-ordered ids unique across shards, so `task_id`, `parent_message_id` and
`message_receivers.message_id` stay plain id columns. See docs/schema.md.
"""
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from instances.exceptions import USER_MESSAGES, user_message_for
from wework.db.fields import (
    DateTimeField,
    TextField,
    TinyIntegerField,
    UnsignedBigAutoField,
    UnsignedBigIntegerField,
)
from wework.db.models import SoftDeleteModel, TableIndex, TableUniqueConstraint


class ChatType(models.IntegerChoices):
    PRIVATE = 1, _("Private chat")
    GROUP = 2, _("Group chat")


class MessageType(models.TextChoices):
    TEXT = "text", _("Text")
    IMAGE = "image", _("Image")
    VIDEO = "video", _("Video")
    FILE = "file", _("File")
    LINK = "link", _("Link")
    CARD = "card", _("Contact card")
    LOCATION = "location", _("Location")


class SendStatus(models.IntegerChoices):
    PENDING = 0, _("Pending")
    SENDING = 1, _("Sending")
    SUCCESS = 2, _("Sent")
    FAILED = 3, _("Failed")


class ReceiverSendStatus(models.IntegerChoices):
    PENDING = 0, _("Pending")
    SENDING = 1, _("Sending")
    SUCCESS = 2, _("Sent")
    FAILED = 3, _("Failed")
    SKIPPED = 4, _("Skipped")


class TaskType(models.TextChoices):
    SINGLE = "single", _("Single")
    BATCH = "batch", _("Batch")
    BROADCAST = "broadcast", _("Broadcast")


class TaskStatus(models.IntegerChoices):
    PENDING = 0, _("Pending")
    RUNNING = 1, _("Running")
    COMPLETED = 2, _("Completed")
    FAILED = 3, _("Failed")
    CANCELLED = 4, _("Cancelled")
    PAUSED = 5, _("Paused")


class TaskPriority(models.IntegerChoices):
    HIGH = 1, _("High")
    MEDIUM = 2, _("Medium")
    LOW = 3, _("Low")


class ReceiverType(models.IntegerChoices):
    CONTACT = 1, _("Contact")
    GROUP = 2, _("Group chat")


class TemplateStatus(models.IntegerChoices):
    DISABLED = 0, _("Disabled")
    ENABLED = 1, _("Enabled")


def _created_at():
    return DateTimeField(
        _("created at"), default=timezone.now, db_default=Now(), editable=False,
        db_comment="创建时间",
    )


def _updated_at():
    return DateTimeField(_("updated at"), auto_now=True, db_default=Now(), db_comment="更新时间")


class Message(models.Model):
    """One message sent or received by a WeCom account (消息记录表); sharded by month."""

    INSTANCE_PATH = "account__instance"

    id = UnsignedBigAutoField(primary_key=True, db_comment="消息ID")
    message_uuid = models.CharField(_("message UUID"), max_length=36, db_comment="消息UUID")
    account = models.ForeignKey(
        "contacts.WeworkAccount",
        on_delete=models.DO_NOTHING,
        db_index=False,
        related_name="messages",
        verbose_name=_("account"),
        db_comment="发送账号ID",
    )
    chat_type = TinyIntegerField(
        _("chat type"), choices=ChatType.choices, db_comment="聊天类型: 1-私聊, 2-群聊"
    )
    chat_wxid = models.CharField(_("chat WeCom ID"), max_length=100, db_comment="聊天对象微信ID")
    message_type = models.CharField(
        _("message type"), max_length=20, choices=MessageType.choices,
        db_comment="消息类型: text, image, video, file, link, card, location",
    )
    message_content = TextField(_("content"), null=True, blank=True, db_comment="消息内容")
    media_url = models.CharField(
        _("media URL"), max_length=500, null=True, blank=True, db_comment="媒体文件URL"
    )
    media_size = models.BigIntegerField(
        _("media size"), null=True, blank=True, db_comment="媒体文件大小"
    )
    media_duration = models.IntegerField(
        _("media duration (s)"), null=True, blank=True, db_comment="媒体时长(秒)"
    )
    thumbnail_url = models.CharField(
        _("thumbnail URL"), max_length=500, null=True, blank=True, db_comment="缩略图URL"
    )
    file_name = models.CharField(
        _("file name"), max_length=255, null=True, blank=True, db_comment="文件名"
    )
    message_metadata = models.JSONField(
        _("metadata"), null=True, blank=True, db_comment="消息元数据"
    )
    send_status = TinyIntegerField(
        _("send status"),
        choices=SendStatus.choices,
        default=SendStatus.PENDING,
        db_default=SendStatus.PENDING,
        db_comment="发送状态: 0-待发送, 1-发送中, 2-成功, 3-失败",
    )
    send_time = DateTimeField(_("sent at"), null=True, blank=True, db_comment="发送时间")
    receive_time = DateTimeField(
        _("receipt confirmed at"), null=True, blank=True, db_comment="接收确认时间"
    )
    error_code = models.CharField(
        _("error code"), max_length=50, null=True, blank=True, db_comment="错误码"
    )
    error_message = TextField(_("error message"), null=True, blank=True, db_comment="错误信息")
    retry_count = models.IntegerField(_("retries"), default=0, db_default=0, db_comment="重试次数")
    task_id = UnsignedBigIntegerField(_("task ID"), null=True, blank=True, db_comment="任务ID")
    parent_message_id = UnsignedBigIntegerField(
        _("replied-to message ID"), null=True, blank=True, db_comment="父消息ID(回复消息)"
    )
    at_members = models.JSONField(_("@ members"), null=True, blank=True, db_comment="@成员列表")
    is_scheduled = models.BooleanField(
        _("scheduled"), default=False, db_default=False, db_comment="是否定时消息"
    )
    scheduled_time = DateTimeField(
        _("scheduled for"), null=True, blank=True, db_comment="定时发送时间"
    )
    created_at = _created_at()
    updated_at = _updated_at()

    class Meta:
        db_table = "messages"
        db_table_comment = "消息记录表"
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        constraints = [
            TableUniqueConstraint(fields=["message_uuid"], name="uk_message_uuid"),
        ]
        indexes = [
            TableIndex(fields=["account", "chat_wxid"], name="idx_account_chat"),
            TableIndex(fields=["chat_type"], name="idx_chat_type"),
            TableIndex(fields=["message_type"], name="idx_message_type"),
            TableIndex(fields=["send_status"], name="idx_send_status"),
            TableIndex(fields=["send_time"], name="idx_send_time"),
            TableIndex(fields=["task_id"], name="idx_task_id"),
            TableIndex(fields=["is_scheduled", "scheduled_time"], name="idx_scheduled"),
            TableIndex(fields=["created_at"], name="idx_created"),
        ]

    def __str__(self):
        return self.message_uuid


class MessageTemplate(SoftDeleteModel):
    """A reusable message body with variables (消息模板表)."""

    id = UnsignedBigAutoField(primary_key=True, db_comment="模板ID")
    template_uuid = models.CharField(_("template UUID"), max_length=36, db_comment="模板UUID")
    name = models.CharField(_("name"), max_length=200, db_comment="模板名称")
    category = models.CharField(
        _("category"), max_length=50, null=True, blank=True, db_comment="模板分类"
    )
    message_type = models.CharField(
        _("message type"), max_length=20, choices=MessageType.choices, db_comment="消息类型"
    )
    content = TextField(_("content"), db_comment="模板内容")
    variables = models.JSONField(_("variables"), null=True, blank=True, db_comment="变量定义")
    preview_content = TextField(_("preview"), null=True, blank=True, db_comment="预览内容")
    thumbnail_url = models.CharField(
        _("thumbnail URL"), max_length=500, null=True, blank=True, db_comment="缩略图URL"
    )
    use_count = models.IntegerField(_("uses"), default=0, db_default=0, db_comment="使用次数")
    last_used_at = DateTimeField(_("last used"), null=True, blank=True, db_comment="最后使用时间")
    is_system = models.BooleanField(
        _("system template"), default=False, db_default=False, db_comment="是否系统模板"
    )
    is_public = models.BooleanField(
        _("public"), default=False, db_default=False, db_comment="是否公开模板"
    )
    status = TinyIntegerField(
        _("status"),
        choices=TemplateStatus.choices,
        default=TemplateStatus.ENABLED,
        db_default=TemplateStatus.ENABLED,
        db_comment="状态: 0-禁用, 1-启用",
    )
    sort_order = models.IntegerField(_("sort order"), default=0, db_default=0, db_comment="排序")
    tags = models.JSONField(_("tags"), null=True, blank=True, db_comment="标签")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_index=False,
        db_column="created_by",
        related_name="created_message_templates",
        verbose_name=_("created by"),
        db_comment="创建人",
    )
    created_at = _created_at()
    updated_at = _updated_at()

    class Meta:
        db_table = "message_templates"
        db_table_comment = "消息模板表"
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        base_manager_name = "all_objects"
        constraints = [
            TableUniqueConstraint(fields=["template_uuid"], name="uk_template_uuid"),
        ]
        indexes = [
            TableIndex(fields=["name"], name="idx_name"),
            TableIndex(fields=["category"], name="idx_category"),
            TableIndex(fields=["message_type"], name="idx_message_type"),
            TableIndex(fields=["status"], name="idx_status"),
            TableIndex(fields=["created_by"], name="idx_created_by"),
            TableIndex(fields=["use_count"], name="idx_use_count"),
            TableIndex(fields=["deleted_at"], name="idx_deleted"),
        ]

    def __str__(self):
        return self.name


class MessageTask(models.Model):
    """A send job: one message to one or many receivers (消息任务表)."""

    INSTANCE_PATH = "account__instance"

    id = UnsignedBigAutoField(primary_key=True, db_comment="任务ID")
    task_uuid = models.CharField(_("task UUID"), max_length=36, db_comment="任务UUID")
    task_name = models.CharField(
        _("name"), max_length=200, null=True, blank=True, db_comment="任务名称"
    )
    task_type = models.CharField(
        _("task type"), max_length=20, choices=TaskType.choices,
        db_comment="任务类型: single, batch, broadcast",
    )
    account = models.ForeignKey(
        "contacts.WeworkAccount",
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        db_index=False,
        related_name="message_tasks",
        verbose_name=_("sending account"),
        db_comment="发送账号ID",
    )
    message_type = models.CharField(
        _("message type"), max_length=20, choices=MessageType.choices, db_comment="消息类型"
    )
    message_content = TextField(_("content"), null=True, blank=True, db_comment="消息内容")
    # The design declares no foreign key here (templates are soft-deleted, tasks keep the id).
    template = models.ForeignKey(
        MessageTemplate,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        db_index=False,
        db_constraint=False,
        related_name="tasks",
        verbose_name=_("template"),
        db_comment="模板ID",
    )
    template_variables = models.JSONField(
        _("template variables"), null=True, blank=True, db_comment="模板变量"
    )
    target_count = models.IntegerField(_("targets"), default=0, db_default=0, db_comment="目标数量")
    success_count = models.IntegerField(
        _("succeeded"), default=0, db_default=0, db_comment="成功数量"
    )
    fail_count = models.IntegerField(_("failed"), default=0, db_default=0, db_comment="失败数量")
    progress = models.DecimalField(
        _("progress (%)"), max_digits=5, decimal_places=2, default=Decimal("0"),
        db_default=Decimal("0"), db_comment="进度百分比",
    )
    status = TinyIntegerField(
        _("status"),
        choices=TaskStatus.choices,
        default=TaskStatus.PENDING,
        db_default=TaskStatus.PENDING,
        db_comment="状态: 0-待执行, 1-执行中, 2-已完成, 3-失败, 4-已取消, 5-暂停",
    )
    priority = TinyIntegerField(
        _("priority"),
        choices=TaskPriority.choices,
        default=TaskPriority.MEDIUM,
        db_default=TaskPriority.MEDIUM,
        db_comment="优先级: 1-高, 2-中, 3-低",
    )
    send_interval = models.IntegerField(
        _("send interval (s)"), default=0, db_default=0, db_comment="发送间隔(秒)"
    )
    max_retry = models.IntegerField(_("max retries"), default=3, db_default=3, db_comment="最大重试次数")
    scheduled_time = DateTimeField(
        _("scheduled for"), null=True, blank=True, db_comment="定时执行时间"
    )
    started_at = DateTimeField(_("started at"), null=True, blank=True, db_comment="开始时间")
    completed_at = DateTimeField(_("completed at"), null=True, blank=True, db_comment="完成时间")
    error_message = TextField(_("error message"), null=True, blank=True, db_comment="错误信息")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_index=False,
        db_column="created_by",
        related_name="created_message_tasks",
        verbose_name=_("created by"),
        db_comment="创建人",
    )
    created_at = _created_at()
    updated_at = _updated_at()

    class Meta:
        db_table = "message_tasks"
        db_table_comment = "消息任务表"
        verbose_name = _("message task")
        verbose_name_plural = _("message tasks")
        constraints = [
            TableUniqueConstraint(fields=["task_uuid"], name="uk_task_uuid"),
        ]
        indexes = [
            TableIndex(fields=["task_type"], name="idx_task_type"),
            TableIndex(fields=["account"], name="idx_account_id"),
            TableIndex(fields=["status"], name="idx_status"),
            TableIndex(fields=["priority"], name="idx_priority"),
            TableIndex(fields=["scheduled_time"], name="idx_scheduled"),
            TableIndex(fields=["created_by"], name="idx_created_by"),
            TableIndex(fields=["created_at"], name="idx_created"),
        ]

    def __str__(self):
        return self.task_name or self.task_uuid


class MessageReceiver(models.Model):
    """One receiver of a message task and its delivery state (消息接收者表)."""

    INSTANCE_PATH = "task__account__instance"

    id = UnsignedBigAutoField(primary_key=True, db_comment="ID")
    task = models.ForeignKey(
        MessageTask,
        on_delete=models.DB_CASCADE,
        db_index=False,
        related_name="receivers",
        verbose_name=_("task"),
        db_comment="任务ID",
    )
    receiver_type = TinyIntegerField(
        _("receiver type"), choices=ReceiverType.choices, db_comment="接收者类型: 1-联系人, 2-群聊"
    )
    receiver_wxid = models.CharField(
        _("receiver WeCom ID"), max_length=100, db_comment="接收者微信ID"
    )
    receiver_name = models.CharField(
        _("receiver name"), max_length=100, null=True, blank=True, db_comment="接收者名称"
    )
    message_id = UnsignedBigIntegerField(
        _("message ID"), null=True, blank=True, db_comment="消息ID"
    )
    send_status = TinyIntegerField(
        _("send status"),
        choices=ReceiverSendStatus.choices,
        default=ReceiverSendStatus.PENDING,
        db_default=ReceiverSendStatus.PENDING,
        db_comment="发送状态: 0-待发送, 1-发送中, 2-成功, 3-失败, 4-跳过",
    )
    send_time = DateTimeField(_("sent at"), null=True, blank=True, db_comment="发送时间")
    error_code = models.CharField(
        _("error code"), max_length=50, null=True, blank=True, db_comment="错误码"
    )
    error_message = TextField(_("error message"), null=True, blank=True, db_comment="错误信息")
    retry_count = models.IntegerField(_("retries"), default=0, db_default=0, db_comment="重试次数")
    variables = models.JSONField(
        _("personal variables"), null=True, blank=True, db_comment="个性化变量"
    )
    created_at = _created_at()
    updated_at = _updated_at()

    class Meta:
        db_table = "message_receivers"
        db_table_comment = "消息接收者表"
        verbose_name = _("message receiver")
        verbose_name_plural = _("message receivers")
        indexes = [
            TableIndex(fields=["task", "receiver_wxid"], name="idx_task_receiver"),
            # a task's receivers newest first (the API's ?task=, the admin's task filter): the
            # page walks the index instead of sorting every receiver of the task (issue 13)
            TableIndex(fields=["task", "id"], name="idx_task_id"),
            TableIndex(fields=["send_status"], name="idx_send_status"),
            TableIndex(fields=["send_time"], name="idx_send_time"),
            TableIndex(fields=["message_id"], name="idx_message_id"),
        ]

    def __str__(self):
        return self.receiver_name or self.receiver_wxid

    @property
    def failure_reason(self):
        """Why the receiver failed, as users read it: the translated sentence of an instance
        protocol error code with the instance's own text as detail, or the platform's message
        (template errors, cancellation), which is already in the user's words."""
        if self.error_code in USER_MESSAGES:
            return user_message_for(self.error_code, self.error_message)
        return self.error_message or ""


class ConversationRead(models.Model):
    """How far an account's conversation has been read (ours, outside the design): the id of
    the newest message read in (account, chat_wxid). Unread messages are the received ones
    above it, counted on the messages' (account_id, chat_wxid) index, never over a shard.

    The row also says what the inbox needs without reading a message shard: the newest
    received message (id, time, a preview), and `has_unread` (1 while that message is above
    the marker), kept by the inbound handler and the read marker in the same UPDATE each; the
    inbox walks `idx_account_unread (account_id, has_unread, last_inbound_message_id)`."""

    INSTANCE_PATH = "account__instance"

    id = UnsignedBigAutoField(primary_key=True, db_comment="ID")
    account = models.ForeignKey(
        "contacts.WeworkAccount",
        on_delete=models.DB_CASCADE,
        db_index=False,
        related_name="conversation_reads",
        verbose_name=_("account"),
        db_comment="企微账号ID",
    )
    chat_wxid = models.CharField(_("chat WeCom ID"), max_length=100, db_comment="聊天对象微信ID")
    last_read_message_id = UnsignedBigIntegerField(
        _("last read message ID"), default=0, db_default=0, db_comment="最后已读消息ID"
    )
    read_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DB_SET_NULL,
        null=True,
        blank=True,
        db_index=False,
        db_column="read_by",
        related_name="+",
        verbose_name=_("read by"),
        db_comment="最后阅读人",
    )
    chat_type = TinyIntegerField(_("chat type"), choices=ChatType.choices, default=ChatType.PRIVATE,
                                 db_default=ChatType.PRIVATE, db_comment="聊天类型:1私聊 2群聊")
    last_inbound_message_id = UnsignedBigIntegerField(
        _("last received message ID"), default=0, db_default=0, db_comment="最后收到的消息ID"
    )
    last_inbound_at = DateTimeField(_("last received at"), null=True, blank=True, db_comment="最后收到消息时间")
    last_inbound_preview = models.CharField(_("last received message"), max_length=200, blank=True, default="",
                                            db_default="", db_comment="最后收到消息摘要")
    has_unread = TinyIntegerField(_("has unread messages"), default=0, db_default=0, db_comment="是否有未读: 0否 1是")
    updated_at = _updated_at()

    class Meta:
        db_table = "conversation_reads"
        db_table_comment = "会话已读位置表"
        verbose_name = _("conversation read marker")
        verbose_name_plural = _("conversation read markers")
        constraints = [
            TableUniqueConstraint(fields=["account", "chat_wxid"], name="uk_account_chat"),
        ]
        indexes = [
            TableIndex(fields=["read_by"], name="idx_read_by"),
            TableIndex(fields=["account", "has_unread", "last_inbound_message_id"], name="idx_account_unread"),
            TableIndex(fields=["has_unread", "last_inbound_message_id"], name="idx_unread"),
        ]

    def __str__(self):
        return f"{self.account_id}:{self.chat_wxid}"
