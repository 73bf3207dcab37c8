"""Shared model building blocks: design-named indexes, creation/update times, soft delete."""
from django.db import models, transaction
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from wework import audit

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
    def audited_update(self, **changes):
        """`update()` that leaves the audit rows `save()` would (old and new values per row).

        `QuerySet.update()` fires no model signal, so the audit trail never hears of it: every
        bulk change of an audited model made for a person (admin actions, API, services) goes
        through here. Reads the rows before and after (two queries), so it is meant for the
        rows a person selected, not for high-volume synchronisation.
        """
        with transaction.atomic(using=self.db):
            # by primary key, so that any queryset works (joins, DISTINCT of admin searches)
            rows = self.model._base_manager.using(self.db).filter(
                pk__in=list(self.values_list("pk", flat=True)))
            before = list(rows.select_for_update().order_by("pk"))
            if not before:
                return 0
            count = rows.update(**changes)
            audit.record_rows_changed(self.model, before, list(rows.order_by("pk")))
        return count

    def delete(self):
        """Soft-delete every row of the queryset (audited); `hard_delete()` removes them."""
        return self.filter(deleted_at__isnull=True).audited_update(deleted_at=timezone.now())

    def hard_delete(self):
        return super().delete()

    def restore(self):
        """Undelete every deleted row of the queryset (audited); returns how many."""
        return self.filter(deleted_at__isnull=False).audited_update(deleted_at=None)

    def alive(self):
        return self.filter(deleted_at__isnull=True)


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


def created_at_field(verbose_name=_("created at"), db_comment="创建时间"):
    """The design's `created_at`: set once on insert (by the database too), not editable."""
    return DateTimeField(verbose_name, default=timezone.now, db_default=Now(), editable=False,
                         db_comment=db_comment)


def updated_at_field():
    """The design's `updated_at`: set on every save (and, on MySQL, by ON UPDATE)."""
    return DateTimeField(_("updated at"), auto_now=True, db_default=Now(), db_comment="更新时间")


class CreatedAtModel(models.Model):
    """Rows with the design's `created_at` column."""

    created_at = created_at_field()

    class Meta:
        abstract = True


class TimestampedModel(CreatedAtModel):
    """Rows with the design's `created_at` and `updated_at` columns."""

    updated_at = updated_at_field()

    class Meta:
        abstract = True
