"""WeCom instance tables of the design (企业微信实例): instances, their configs and monitors.

See docs/schema.md for the deliberate differences from `seed_schema.sql`.
"""
from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from wework.db.fields import (
    DateTimeField,
    EncryptedTextField,
    TextField,
    TinyIntegerField,
    UnsignedBigAutoField,
)
from wework.db.models import SoftDeleteModel, TableIndex, TableUniqueConstraint


class InstanceStatus(models.IntegerChoices):
    OFFLINE = 0, _("Offline")
    ONLINE = 1, _("Online")
    ERROR = 2, _("Error")
    MAINTENANCE = 3, _("Maintenance")


class ConfigType(models.TextChoices):
    STRING = "string", _("String")
    NUMBER = "number", _("Number")
    BOOLEAN = "boolean", _("Boolean")
    JSON = "json", _("JSON")


class WeworkInstance(SoftDeleteModel):
    """A WeCom client instance (企微实例表) that hosts logged-in WeCom accounts."""

    INSTANCE_PATH = ""

    id = UnsignedBigAutoField(primary_key=True, db_comment="实例ID")
    instance_uuid = models.CharField(_("instance UUID"), max_length=36, db_comment="实例UUID")
    name = models.CharField(_("name"), max_length=100, db_comment="实例名称")
    description = TextField(_("description"), null=True, blank=True, db_comment="实例描述")
    version = models.CharField(
        _("version"), max_length=20, null=True, blank=True, db_comment="版本号"
    )
    status = TinyIntegerField(
        _("status"),
        choices=InstanceStatus.choices,
        default=InstanceStatus.OFFLINE,
        db_default=InstanceStatus.OFFLINE,
        db_comment="状态: 0-离线, 1-在线, 2-错误, 3-维护",
    )
    api_url = models.CharField(
        _("API URL"), max_length=500, null=True, blank=True, db_comment="API地址"
    )
    webhook_url = models.CharField(
        _("webhook URL"), max_length=500, null=True, blank=True, db_comment="回调地址"
    )
    proxy_host = models.CharField(
        _("proxy host"), max_length=100, null=True, blank=True, db_comment="代理主机"
    )
    proxy_port = models.IntegerField(_("proxy port"), null=True, blank=True, db_comment="代理端口")
    proxy_username = models.CharField(
        _("proxy username"), max_length=100, null=True, blank=True, db_comment="代理用户名"
    )
    proxy_password_encrypted = EncryptedTextField(
        _("proxy password"), null=True, blank=True, db_comment="代理密码(加密)"
    )
    max_accounts = models.IntegerField(
        _("max accounts"), default=10, db_default=10, db_comment="最大账号数"
    )
    current_accounts = models.IntegerField(
        _("current accounts"), default=0, db_default=0, db_comment="当前账号数"
    )
    heartbeat_interval = models.IntegerField(
        _("heartbeat interval (s)"), default=30, db_default=30, db_comment="心跳间隔(秒)"
    )
    last_heartbeat = DateTimeField(
        _("last heartbeat"), null=True, blank=True, db_comment="最后心跳时间"
    )
    error_message = TextField(_("error message"), null=True, blank=True, db_comment="错误信息")
    restart_count = models.IntegerField(
        _("restart count"), default=0, db_default=0, db_comment="重启次数"
    )
    last_restart_time = DateTimeField(
        _("last restart time"), null=True, blank=True, db_comment="最后重启时间"
    )
    total_messages = models.BigIntegerField(
        _("total messages"), default=0, db_default=0, db_comment="总消息数"
    )
    today_messages = models.IntegerField(
        _("messages today"), default=0, db_default=0, db_comment="今日消息数"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_index=False,
        db_column="created_by",
        related_name="created_instances",
        verbose_name=_("created by"),
        db_comment="创建人",
    )
    created_at = DateTimeField(
        _("created at"), default=timezone.now, db_default=Now(), editable=False,
        db_comment="创建时间",
    )
    updated_at = DateTimeField(
        _("updated at"), auto_now=True, db_default=Now(), db_comment="更新时间"
    )

    class Meta:
        db_table = "wework_instances"
        db_table_comment = "企微实例表"
        verbose_name = _("WeCom instance")
        verbose_name_plural = _("WeCom instances")
        base_manager_name = "all_objects"
        constraints = [
            TableUniqueConstraint(fields=["instance_uuid"], name="uk_uuid"),
        ]
        indexes = [
            TableIndex(fields=["name"], name="idx_name"),
            TableIndex(fields=["status"], name="idx_status"),
            TableIndex(fields=["last_heartbeat"], name="idx_heartbeat"),
            TableIndex(fields=["created_by"], name="idx_created_by"),
            TableIndex(fields=["deleted_at"], name="idx_deleted"),
        ]

    def __str__(self):
        return self.name


class InstanceConfig(models.Model):
    """One key/value setting of an instance (实例配置表)."""

    INSTANCE_PATH = "instance"

    id = UnsignedBigAutoField(primary_key=True, db_comment="配置ID")
    instance = models.ForeignKey(
        WeworkInstance,
        on_delete=models.DB_CASCADE,
        db_index=False,
        related_name="configs",
        verbose_name=_("instance"),
        db_comment="实例ID",
    )
    config_key = models.CharField(_("key"), max_length=100, db_comment="配置键")
    config_value = TextField(_("value"), null=True, blank=True, db_comment="配置值")
    config_type = models.CharField(
        _("type"),
        max_length=20,
        choices=ConfigType.choices,
        default=ConfigType.STRING,
        db_default=ConfigType.STRING,
        db_comment="配置类型: string, number, boolean, json",
    )
    is_encrypted = models.BooleanField(
        _("encrypted"), default=False, db_default=False, db_comment="是否加密"
    )
    is_system = models.BooleanField(
        _("system setting"), default=False, db_default=False, db_comment="是否系统配置"
    )
    description = models.CharField(
        _("description"), max_length=500, null=True, blank=True, db_comment="配置描述"
    )
    created_at = DateTimeField(
        _("created at"), default=timezone.now, db_default=Now(), editable=False,
        db_comment="创建时间",
    )
    updated_at = DateTimeField(
        _("updated at"), auto_now=True, db_default=Now(), db_comment="更新时间"
    )

    class Meta:
        db_table = "instance_configs"
        db_table_comment = "实例配置表"
        verbose_name = _("instance config")
        verbose_name_plural = _("instance configs")
        constraints = [
            TableUniqueConstraint(fields=["instance", "config_key"], name="uk_instance_key"),
        ]
        indexes = [
            TableIndex(fields=["config_key"], name="idx_key"),
            TableIndex(fields=["config_type"], name="idx_type"),
        ]

    def __str__(self):
        return self.config_key


class InstanceMonitor(models.Model):
    """One metric sample of an instance (实例监控表); sharded by week by the shard layer."""

    INSTANCE_PATH = "instance"

    id = UnsignedBigAutoField(primary_key=True, db_comment="监控ID")
    instance = models.ForeignKey(
        WeworkInstance,
        on_delete=models.DB_CASCADE,
        db_index=False,
        related_name="monitors",
        verbose_name=_("instance"),
        db_comment="实例ID",
    )
    metric_name = models.CharField(_("metric"), max_length=50, db_comment="指标名称")
    metric_value = models.DecimalField(
        _("value"), max_digits=15, decimal_places=4, db_comment="指标值"
    )
    metric_unit = models.CharField(
        _("unit"), max_length=20, null=True, blank=True, db_comment="指标单位"
    )
    collected_at = DateTimeField(_("collected at"), db_comment="采集时间")

    class Meta:
        db_table = "instance_monitors"
        db_table_comment = "实例监控表"
        verbose_name = _("instance metric")
        verbose_name_plural = _("instance metrics")
        indexes = [
            TableIndex(fields=["instance", "metric_name"], name="idx_instance_metric"),
            TableIndex(fields=["collected_at"], name="idx_collected"),
        ]

    def __str__(self):
        return f"{self.metric_name}={self.metric_value}"


class EventState(models.IntegerChoices):
    PENDING = 0, _("Pending")
    PROCESSING = 1, _("Processing")
    DONE = 2, _("Done")
    FAILED = 3, _("Failed")


class InstanceEvent(models.Model):
    """Inbox of webhook events received from instances (not in the design; see docs/schema.md).

    The unique key (instance, event_id) refuses a delivery seen before, across restarts; `seq`
    shows gaps, which are replayed from the instance; `state` keeps an event that failed to
    process (nothing lost) until it is retried or pruned.
    """

    INSTANCE_PATH = "instance"

    id = UnsignedBigAutoField(primary_key=True, db_comment="事件ID")
    instance = models.ForeignKey(
        WeworkInstance,
        on_delete=models.DB_CASCADE,
        db_index=False,
        related_name="events",
        verbose_name=_("instance"),
        db_comment="实例ID",
    )
    event_id = models.CharField(_("event id"), max_length=100, db_comment="事件ID(实例侧)")
    seq = models.PositiveBigIntegerField(_("sequence"), db_comment="实例内序号")
    event_type = models.CharField(_("type"), max_length=50, db_comment="事件类型")
    account_wxid = models.CharField(
        _("account WeCom ID"), max_length=100, null=True, blank=True, db_comment="账号微信ID"
    )
    payload = models.JSONField(_("payload"), db_comment="事件内容")
    ts_ms = models.PositiveBigIntegerField(_("instance time (ms)"), db_comment="实例侧时间(毫秒)")
    replayed = models.BooleanField(
        _("replayed"), default=False, db_default=False, db_comment="是否补发"
    )
    state = TinyIntegerField(
        _("state"),
        choices=EventState.choices,
        default=EventState.PENDING,
        db_default=EventState.PENDING,
        db_comment="状态: 0-待处理, 1-处理中, 2-完成, 3-失败",
    )
    attempts = models.IntegerField(_("attempts"), default=0, db_default=0, db_comment="处理次数")
    error = TextField(_("error"), null=True, blank=True, db_comment="错误信息")
    received_at = DateTimeField(
        _("received at"), default=timezone.now, db_default=Now(), editable=False,
        db_comment="接收时间",
    )
    claimed_at = DateTimeField(_("claimed at"), null=True, blank=True, db_comment="领取时间")
    processed_at = DateTimeField(
        _("processed at"), null=True, blank=True, db_comment="处理完成时间"
    )

    class Meta:
        db_table = "instance_events"
        db_table_comment = "实例事件收件箱"
        verbose_name = _("instance event")
        verbose_name_plural = _("instance events")
        constraints = [
            TableUniqueConstraint(fields=["instance", "event_id"], name="uk_instance_event"),
        ]
        indexes = [
            TableIndex(fields=["instance", "seq"], name="idx_instance_seq"),
            TableIndex(fields=["state", "received_at"], name="idx_state_received"),
            TableIndex(fields=["event_type"], name="idx_type"),
        ]

    def __str__(self):
        return f"{self.event_type} #{self.seq}"
