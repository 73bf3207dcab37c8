"""The shard registry: one row per physical shard table, the single source of truth."""
from django.db import models
from django.utils.translation import gettext_lazy as _

from wework.db.fields import DateTimeField, UnsignedBigIntegerField
from wework.db.models import TableIndex


class ShardState(models.TextChoices):
    HOT = "hot", _("Hot")
    COLD = "cold", _("Cold")
    ARCHIVED = "archived", _("Archived (exported, table kept)")
    DROPPED = "dropped", _("Dropped (exported, table removed)")


class ShardTable(models.Model):
    """A physical shard table of a sharded model (not in the 20-table design; see docs/shards.md)."""

    model_label = models.CharField(_("model"), max_length=100, db_comment="模型")
    suffix = models.CharField(_("suffix"), max_length=40, db_comment="分表后缀")
    table_name = models.CharField(_("table name"), max_length=64, unique=True, db_comment="表名")
    strategy = models.CharField(_("sharded by"), max_length=10, db_comment="分表方式")
    period_start = DateTimeField(_("period start"), null=True, blank=True, db_comment="周期开始")
    period_end = DateTimeField(_("period end"), null=True, blank=True, db_comment="周期结束")
    instance_id = UnsignedBigIntegerField(
        _("instance id"), null=True, blank=True, db_comment="实例ID"
    )
    state = models.CharField(
        _("state"), max_length=10, choices=ShardState.choices, default=ShardState.HOT,
        db_comment="状态: hot, cold, archived, dropped",
    )
    created_by_tool = models.BooleanField(
        _("created by the shard tool"), default=True, db_comment="是否由分表工具创建"
    )
    schema_version = models.PositiveIntegerField(_("schema version"), default=1, db_comment="结构版本")
    schema_hash = models.CharField(_("schema hash"), max_length=64, blank=True, default="",
                                   db_comment="结构指纹")
    row_estimate = models.BigIntegerField(_("row estimate"), null=True, blank=True,
                                          db_comment="估计行数")
    rows_estimated_at = DateTimeField(_("rows estimated at"), null=True, blank=True,
                                      db_comment="行数估计时间")
    export_path = models.CharField(_("export file"), max_length=500, blank=True, default="",
                                   db_comment="导出文件")
    export_rows = models.BigIntegerField(_("exported rows"), null=True, blank=True,
                                         db_comment="导出行数")
    export_sha256 = models.CharField(_("export SHA-256"), max_length=64, blank=True, default="",
                                     db_comment="导出文件校验")
    export_host = models.CharField(_("export host"), max_length=255, blank=True, default="",
                                   db_comment="导出文件所在主机")
    exported_at = DateTimeField(_("exported at"), null=True, blank=True, db_comment="导出时间")
    restored_at = DateTimeField(_("restored at"), null=True, blank=True, db_comment="恢复时间")
    keep_until = DateTimeField(_("kept until"), null=True, blank=True,
                               db_comment="保留至(恢复的分表在此之前不删除)")
    dropped_at = DateTimeField(_("dropped at"), null=True, blank=True, db_comment="删除时间")
    created_at = DateTimeField(_("created at"), auto_now_add=True, db_comment="创建时间")
    updated_at = DateTimeField(_("updated at"), auto_now=True, db_comment="更新时间")

    class Meta:
        db_table = "shard_tables"
        db_table_comment = "分表登记表"
        verbose_name = _("shard table")
        verbose_name_plural = _("shard tables")
        ordering = ["model_label", "-period_start", "-instance_id"]
        indexes = [
            TableIndex(fields=["model_label", "period_start"], name="idx_model_period"),
            TableIndex(fields=["model_label", "instance_id"], name="idx_model_instance"),
            TableIndex(fields=["state"], name="idx_state"),
        ]
        permissions = [
            ("rotate_shardtable", _("Can rotate shard tables")),
            ("drop_shardtable", _("Can export and drop shard tables")),
        ]

    def __str__(self):
        return self.table_name


class ShardLock(models.Model):
    """A named lock row (the global rotation lock when Redis is not configured)."""

    name = models.CharField(_("name"), max_length=100, primary_key=True, db_comment="锁名")
    owner = models.CharField(_("owner"), max_length=100, db_comment="持有者")
    expires_at = DateTimeField(_("expires at"), db_comment="过期时间")

    class Meta:
        db_table = "shard_locks"
        db_table_comment = "分表工具锁"
        verbose_name = _("shard lock")
        verbose_name_plural = _("shard locks")

    def __str__(self):
        return self.name
