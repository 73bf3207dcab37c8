"""Monitoring and log tables of the design (监控日志): system logs, audit logs, alerts.

`alert_records` is truncated in the design and completed here; `alert_rules` is designed by
us (the design names rules only through `alert_records.rule_name`). `system_logs` is sharded
by day (`system_logs_YYYYMMDD`) by the shard layer. See docs/schema.md.
"""
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from wework.db.fields import (
    DateTimeField,
    TextField,
    UnsignedBigAutoField,
    UnsignedBigIntegerField,
)
from wework.db.models import (
    CreatedAtModel, TableIndex, TableUniqueConstraint, TimestampedModel, created_at_field,
)
from wework.i18n import render_data


class LogLevel(models.TextChoices):
    DEBUG = "DEBUG", _("Debug")
    INFO = "INFO", _("Info")
    WARN = "WARN", _("Warning")
    ERROR = "ERROR", _("Error")
    FATAL = "FATAL", _("Fatal")


class OperationType(models.TextChoices):
    CREATE = "CREATE", _("Create")
    READ = "READ", _("Read")
    UPDATE = "UPDATE", _("Update")
    DELETE = "DELETE", _("Delete")


class AuditResult(models.TextChoices):
    SUCCESS = "SUCCESS", _("Success")
    FAILURE = "FAILURE", _("Failure")


class AlertLevel(models.TextChoices):
    INFO = "INFO", _("Info")
    WARNING = "WARNING", _("Warning")
    ERROR = "ERROR", _("Error")
    CRITICAL = "CRITICAL", _("Critical")


class AlertStatus(models.TextChoices):
    ACTIVE = "ACTIVE", _("Active")
    ACKNOWLEDGED = "ACKNOWLEDGED", _("Acknowledged")
    RESOLVED = "RESOLVED", _("Resolved")


#: An alert is open (the condition holds, or nobody resolved it yet) in these states.
OPEN_STATUSES = (AlertStatus.ACTIVE, AlertStatus.ACKNOWLEDGED)


class RuleType(models.TextChoices):
    INSTANCE_OFFLINE = "instance_offline", _("Instance offline")
    ACCOUNT_STATUS = "account_status", _("Account status")
    TASK_FAILURE_RATE = "task_failure_rate", _("Task failure rate")
    METRIC_THRESHOLD = "metric_threshold", _("Metric threshold")
    SHARD_ROTATION = "shard_rotation", _("Shard rotation")


class Comparison(models.TextChoices):
    GT = "gt", ">"
    GTE = "gte", ">="
    LT = "lt", "<"
    LTE = "lte", "<="
    EQ = "eq", "="
    NE = "ne", "!="


class SystemLog(models.Model):
    """A structured application log line (系统日志表); sharded by day."""

    id = UnsignedBigAutoField(primary_key=True, db_comment="日志ID")
    log_uuid = models.CharField(_("log UUID"), max_length=36, db_comment="日志UUID")
    level = models.CharField(
        _("level"), max_length=10, choices=LogLevel.choices,
        db_comment="日志级别: DEBUG, INFO, WARN, ERROR, FATAL",
    )
    service = models.CharField(_("service"), max_length=50, db_comment="服务名称")
    module = models.CharField(
        _("module"), max_length=50, null=True, blank=True, db_comment="模块名称"
    )
    action = models.CharField(
        _("action"), max_length=100, null=True, blank=True, db_comment="操作名称"
    )
    message = TextField(_("message"), db_comment="日志消息")
    context = models.JSONField(_("context"), null=True, blank=True, db_comment="上下文信息")
    trace_id = models.CharField(
        _("trace ID"), max_length=64, null=True, blank=True, db_comment="链路追踪ID"
    )
    span_id = models.CharField(
        _("span ID"), max_length=64, null=True, blank=True, db_comment="Span ID"
    )
    user_id = UnsignedBigIntegerField(_("user ID"), null=True, blank=True, db_comment="用户ID")
    instance_id = UnsignedBigIntegerField(
        _("instance ID"), null=True, blank=True, db_comment="实例ID"
    )
    ip_address = models.CharField(
        _("IP address"), max_length=45, null=True, blank=True, db_comment="IP地址"
    )
    user_agent = TextField(_("user agent"), null=True, blank=True, db_comment="用户代理")
    request_url = models.CharField(
        _("request URL"), max_length=1000, null=True, blank=True, db_comment="请求URL"
    )
    request_method = models.CharField(
        _("request method"), max_length=10, null=True, blank=True, db_comment="请求方法"
    )
    response_code = models.IntegerField(
        _("response code"), null=True, blank=True, db_comment="响应码"
    )
    response_time = models.IntegerField(
        _("response time (ms)"), null=True, blank=True, db_comment="响应时间(ms)"
    )
    error_stack = TextField(_("error stack"), null=True, blank=True, db_comment="错误堆栈")
    created_at = created_at_field()  # in place: the daily shards follow this column order

    class Meta:
        db_table = "system_logs"
        db_table_comment = "系统日志表"
        verbose_name = _("system log")
        verbose_name_plural = _("system logs")
        constraints = [
            TableUniqueConstraint(fields=["log_uuid"], name="uk_log_uuid"),
        ]
        indexes = [
            TableIndex(fields=["level"], name="idx_level"),
            TableIndex(fields=["service"], name="idx_service"),
            TableIndex(fields=["module"], name="idx_module"),
            TableIndex(fields=["action"], name="idx_action"),
            TableIndex(fields=["trace_id"], name="idx_trace_id"),
            TableIndex(fields=["user_id"], name="idx_user_id"),
            TableIndex(fields=["instance_id"], name="idx_instance_id"),
            TableIndex(fields=["created_at"], name="idx_created"),
        ]

    def __str__(self):
        return f"[{self.level}] {self.service}: {self.message[:60]}"


class AuditLog(CreatedAtModel):
    """Who did what to which resource, with before/after values (操作审计表)."""

    id = UnsignedBigAutoField(primary_key=True, db_comment="审计ID")
    audit_uuid = models.CharField(_("audit UUID"), max_length=36, db_comment="审计UUID")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        db_index=False,
        related_name="audit_logs",
        verbose_name=_("user"),
        db_comment="用户ID",
    )
    username = models.CharField(
        _("username"), max_length=50, null=True, blank=True, db_comment="用户名"
    )
    operation = models.CharField(_("operation"), max_length=100, db_comment="操作名称")
    resource_type = models.CharField(_("resource type"), max_length=50, db_comment="资源类型")
    resource_id = models.CharField(
        _("resource ID"), max_length=100, null=True, blank=True, db_comment="资源ID"
    )
    resource_name = models.CharField(
        _("resource name"), max_length=200, null=True, blank=True, db_comment="资源名称"
    )
    operation_type = models.CharField(
        _("operation type"), max_length=20, choices=OperationType.choices,
        db_comment="操作类型: CREATE, READ, UPDATE, DELETE",
    )
    old_values = models.JSONField(_("old values"), null=True, blank=True, db_comment="修改前值")
    new_values = models.JSONField(_("new values"), null=True, blank=True, db_comment="修改后值")
    result = models.CharField(
        _("result"), max_length=20, choices=AuditResult.choices,
        db_comment="操作结果: SUCCESS, FAILURE",
    )
    error_message = TextField(_("error message"), null=True, blank=True, db_comment="错误信息")
    ip_address = models.CharField(_("IP address"), max_length=45, db_comment="IP地址")
    user_agent = TextField(_("user agent"), null=True, blank=True, db_comment="用户代理")
    session_id = models.CharField(
        _("session ID"), max_length=128, null=True, blank=True, db_comment="会话ID"
    )
    request_id = models.CharField(
        _("request ID"), max_length=64, null=True, blank=True, db_comment="请求ID"
    )
    extra_info = models.JSONField(_("extra info"), null=True, blank=True, db_comment="额外信息")

    class Meta:
        db_table = "audit_logs"
        db_table_comment = "操作审计表"
        verbose_name = _("audit log")
        verbose_name_plural = _("audit logs")
        permissions = [("export_audit", _("Export the audit trail"))]
        constraints = [
            TableUniqueConstraint(fields=["audit_uuid"], name="uk_audit_uuid"),
        ]
        indexes = [
            TableIndex(fields=["user"], name="idx_user_id"),
            TableIndex(fields=["username"], name="idx_username"),
            TableIndex(fields=["operation"], name="idx_operation"),
            TableIndex(fields=["resource_type", "resource_id"], name="idx_resource"),
            TableIndex(fields=["operation_type"], name="idx_operation_type"),
            TableIndex(fields=["result"], name="idx_result"),
            TableIndex(fields=["created_at"], name="idx_created"),
        ]

    def __str__(self):
        return f"{self.username or '-'} {self.operation} {self.resource_type}"


class AlertRule(TimestampedModel):
    """A condition that raises alert records when met (告警规则表, designed by us).

    Records refer to their rule by `alert_records.rule_name` = `alert_rules.name`, as the
    design does; a renamed or deleted rule leaves its past records intact.
    """

    id = UnsignedBigAutoField(primary_key=True, db_comment="规则ID")
    name = models.CharField(_("name"), max_length=100, db_comment="规则标识")
    display_name = models.CharField(_("display name"), max_length=200, db_comment="规则显示名")
    rule_type = models.CharField(
        _("rule type"), max_length=30, choices=RuleType.choices,
        db_comment="规则类型: instance_offline, account_status, task_failure_rate, "
        "metric_threshold, shard_rotation",
    )
    metric_name = models.CharField(
        _("metric"), max_length=50, null=True, blank=True, db_comment="指标名称"
    )
    comparison = models.CharField(
        _("comparison"),
        max_length=10,
        choices=Comparison.choices,
        default=Comparison.GT,
        db_default=Comparison.GT,
        db_comment="比较运算符: gt, gte, lt, lte, eq, ne",
    )
    threshold_value = models.DecimalField(
        _("threshold"), max_digits=15, decimal_places=4, null=True, blank=True,
        db_comment="阈值",
    )
    duration_seconds = models.IntegerField(
        _("for at least (s)"), default=0, db_default=0, db_comment="持续时间(秒)"
    )
    window_seconds = models.IntegerField(
        _("evaluation window (s)"), default=300, db_default=300, db_comment="统计窗口(秒)"
    )
    alert_level = models.CharField(
        _("level"),
        max_length=20,
        choices=AlertLevel.choices,
        default=AlertLevel.WARNING,
        db_default=AlertLevel.WARNING,
        db_comment="告警级别: INFO, WARNING, ERROR, CRITICAL",
    )
    is_enabled = models.BooleanField(
        _("enabled"), default=True, db_default=True, db_comment="是否启用"
    )
    notify_channels = models.JSONField(
        _("notification channels"), null=True, blank=True, db_comment="通知渠道"
    )
    cooldown_seconds = models.IntegerField(
        _("cooldown (s)"), default=600, db_default=600, db_comment="冷却时间(秒)"
    )
    description = TextField(_("description"), null=True, blank=True, db_comment="规则描述")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DB_SET_NULL,
        null=True,
        blank=True,
        db_index=False,
        db_column="created_by",
        related_name="created_alert_rules",
        verbose_name=_("created by"),
        db_comment="创建人",
    )

    class Meta:
        db_table = "alert_rules"
        db_table_comment = "告警规则表"
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")
        constraints = [
            TableUniqueConstraint(fields=["name"], name="uk_name"),
        ]
        indexes = [
            TableIndex(fields=["rule_type"], name="idx_rule_type"),
            TableIndex(fields=["alert_level"], name="idx_level"),
            TableIndex(fields=["is_enabled"], name="idx_enabled"),
            TableIndex(fields=["created_by"], name="idx_created_by"),
        ]

    def __str__(self):
        return self.display_name


#: What an alert's `source_type` names, as operators read it (unknown kinds show as stored).
ALERT_SOURCE_TYPES = {
    "instance": _("Instance"),
    "account": _("WeCom account"),
    "message_task": _("Messaging task"),
    "shard_model": _("Sharded table"),
    "host": _("Host"),
}


class AlertRecord(TimestampedModel):
    """One raised alert and its acknowledge/resolve trail (告警记录表, completed by us)."""

    INSTANCE_PATH = "instance"

    id = UnsignedBigAutoField(primary_key=True, db_comment="告警ID")
    alert_uuid = models.CharField(_("alert UUID"), max_length=36, db_comment="告警UUID")
    rule_name = models.CharField(_("rule"), max_length=100, db_comment="告警规则名称")
    alert_level = models.CharField(
        _("level"), max_length=20, choices=AlertLevel.choices,
        db_comment="告警级别: INFO, WARNING, ERROR, CRITICAL",
    )
    alert_title = models.CharField(_("title"), max_length=200, db_comment="告警标题")
    alert_message = TextField(_("message"), db_comment="告警内容")
    # Addition to the design (docs/schema.md): the title and message as their source sentences
    # and values, so each reader sees them in their language (wework.i18n.Text); the two
    # columns above hold them in the platform's language, for notifications and search.
    alert_i18n = models.JSONField(
        _("title and message (source)"), null=True, blank=True, editable=False,
        db_comment="告警标题与内容的原文与参数(按阅读者语言显示)",
    )
    metric_name = models.CharField(
        _("metric"), max_length=50, null=True, blank=True, db_comment="指标名称"
    )
    metric_value = models.DecimalField(
        _("value"), max_digits=15, decimal_places=4, null=True, blank=True, db_comment="指标值"
    )
    threshold_value = models.DecimalField(
        _("threshold"), max_digits=15, decimal_places=4, null=True, blank=True,
        db_comment="阈值",
    )
    instance = models.ForeignKey(
        "instances.WeworkInstance",
        on_delete=models.DB_SET_NULL,
        null=True,
        blank=True,
        db_index=False,
        related_name="alert_records",
        verbose_name=_("instance"),
        db_comment="实例ID",
    )
    source_type = models.CharField(_("source type"), max_length=50, db_comment="告警源类型")
    source_id = models.CharField(
        _("source ID"), max_length=100, null=True, blank=True, db_comment="告警源ID"
    )
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=AlertStatus.choices,
        default=AlertStatus.ACTIVE,
        db_default=AlertStatus.ACTIVE,
        db_comment="状态: ACTIVE, ACKNOWLEDGED, RESOLVED",
    )
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DB_SET_NULL,
        null=True,
        blank=True,
        db_index=False,
        db_column="acknowledged_by",
        related_name="acknowledged_alerts",
        verbose_name=_("acknowledged by"),
        db_comment="确认人",
    )
    acknowledged_at = DateTimeField(
        _("acknowledged at"), null=True, blank=True, db_comment="确认时间"
    )
    acknowledged_comment = TextField(
        _("acknowledge comment"), null=True, blank=True, db_comment="确认备注"
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DB_SET_NULL,
        null=True,
        blank=True,
        db_index=False,
        db_column="resolved_by",
        related_name="resolved_alerts",
        verbose_name=_("resolved by"),
        db_comment="解决人",
    )
    resolved_at = DateTimeField(_("resolved at"), null=True, blank=True, db_comment="解决时间")
    resolved_comment = TextField(
        _("resolve comment"), null=True, blank=True, db_comment="解决备注"
    )
    notification_sent = models.BooleanField(
        _("notification sent"), default=False, db_default=False, db_comment="是否已发送通知"
    )
    notification_sent_at = DateTimeField(
        _("notification sent at"), null=True, blank=True, db_comment="通知发送时间"
    )

    class Meta:
        db_table = "alert_records"
        db_table_comment = "告警记录表"
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        permissions = [("ack_alert", _("Acknowledge and resolve alerts"))]
        constraints = [
            TableUniqueConstraint(fields=["alert_uuid"], name="uk_alert_uuid"),
        ]
        indexes = [
            TableIndex(fields=["rule_name"], name="idx_rule"),
            TableIndex(fields=["alert_level"], name="idx_level"),
            TableIndex(fields=["status"], name="idx_status"),
            TableIndex(fields=["instance"], name="idx_instance"),
            TableIndex(fields=["source_type", "source_id"], name="idx_source"),
            TableIndex(fields=["acknowledged_by"], name="idx_acknowledged_by"),
            TableIndex(fields=["resolved_by"], name="idx_resolved_by"),
            TableIndex(fields=["created_at"], name="idx_created"),
        ]

    def __str__(self):
        return self.display_title

    @property
    def display_title(self) -> str:
        """The title in the reader's language (the stored one when it has no source)."""
        return render_data((self.alert_i18n or {}).get("title"), self.alert_title)

    @property
    def source_label(self) -> str:
        """"Instance 12", "WeCom account 7", ...: the source as operators read it."""
        kind = ALERT_SOURCE_TYPES.get(self.source_type, self.source_type)
        return f"{kind} {self.source_id}" if self.source_id else str(kind)

    @property
    def display_message(self) -> str:
        return render_data((self.alert_i18n or {}).get("message"), self.alert_message)
