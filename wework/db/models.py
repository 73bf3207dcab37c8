"""Shared model building blocks: design-named indexes, soft delete."""
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .fields import DateTimeField


def physical_name(name, table, connection):
    """The index name as created in the database.

    MySQL/MariaDB scope index names per table, so the design's names (`idx_status`) are used
    as they stand. SQLite (and PostgreSQL) scope them per database, so the table name is
    prefixed there; shard tables get their own names the same way.
    """
    if connection.vendor == "mysql":
        return name
    return f"{table}__{name}"


class TableIndex(models.Index):
    """An index named as in the design, unique per table rather than per database."""

    def create_sql(self, model, schema_editor, using="", **kwargs):
        return self._renamed(model, schema_editor, super().create_sql, using=using, **kwargs)

    def remove_sql(self, model, schema_editor, **kwargs):
        return self._renamed(model, schema_editor, super().remove_sql, **kwargs)

    def _renamed(self, model, schema_editor, method, **kwargs):
        logical = self.name
        self.name = physical_name(logical, model._meta.db_table, schema_editor.connection)
        try:
            return method(model, schema_editor, **kwargs)
        finally:
            self.name = logical


class TableUniqueConstraint(models.UniqueConstraint):
    """A unique key named as in the design, unique per table rather than per database."""

    def constraint_sql(self, model, schema_editor):
        return self._renamed(model, schema_editor, super().constraint_sql)

    def create_sql(self, model, schema_editor):
        return self._renamed(model, schema_editor, super().create_sql)

    def remove_sql(self, model, schema_editor):
        return self._renamed(model, schema_editor, super().remove_sql)

    def _renamed(self, model, schema_editor, method):
        logical = self.name
        self.name = physical_name(logical, model._meta.db_table, schema_editor.connection)
        try:
            return method(model, schema_editor)
        finally:
            self.name = logical


class SoftDeleteQuerySet(models.QuerySet):
    def delete(self):
        """Soft-delete every row of the queryset; `hard_delete()` removes them."""
        return self.update(deleted_at=timezone.now())

    def hard_delete(self):
        return super().delete()

    def restore(self):
        return self.update(deleted_at=None)

    def alive(self):
        return self.filter(deleted_at__isnull=True)

    def dead(self):
        return self.filter(deleted_at__isnull=False)


class SoftDeleteManager(models.Manager.from_queryset(SoftDeleteQuerySet)):
    """The default manager: hides soft-deleted rows."""

    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)


class AllObjectsManager(models.Manager.from_queryset(SoftDeleteQuerySet)):
    """Every row, deleted or not (admin "show deleted", restore, audits)."""


class SoftDeleteModel(models.Model):
    """Rows are marked with `deleted_at` instead of being removed."""

    deleted_at = DateTimeField(
        _("deleted at"), null=True, blank=True, db_comment="删除时间"
    )

    objects = SoftDeleteManager()
    all_objects = AllObjectsManager()

    class Meta:
        abstract = True
        # Related lookups and the admin's object fetch use the base manager, which must see
        # deleted rows too (a message still points at its deleted account).
        base_manager_name = "all_objects"

    @property
    def is_deleted(self):
        return self.deleted_at is not None

    def delete(self, using=None, keep_parents=False):
        self.deleted_at = timezone.now()
        self.save(update_fields=["deleted_at"])
        return 1, {self._meta.label: 1}

    def hard_delete(self, using=None, keep_parents=False):
        return super().delete(using=using, keep_parents=keep_parents)

    def restore(self):
        self.deleted_at = None
        self.save(update_fields=["deleted_at"])
