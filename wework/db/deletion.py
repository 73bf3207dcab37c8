"""Delete rules across databases (per-module databases, docs/schema.md "Storage layout").

On one database, a reference between modules is a FOREIGN KEY and the database applies its
rule when the referenced row is deleted: `DB_CASCADE` deletes the referencing rows, `DB_SET_NULL`
empties the column, and `DO_NOTHING` (with its constraint) refuses the delete. When the two
modules are on different databases there is no such key (wework.db.backends leaves it out), so
`install()` (a split layout only) makes Django's deletion collector apply the same rules:

- at collection (every delete path: `Model.delete()`, `QuerySet.delete()`, the admin's
  confirmation page), a row still referenced by a `DO_NOTHING` reference of another database
  is refused with ProtectedError, which the admin shows as "cannot delete" and the API answers
  with a sentence;
- at deletion, inside one transaction over every database, after the rows are deleted on their
  own database, the referencing rows on the other databases are deleted (`DB_CASCADE`, by a
  collector on their database, whose own rules then apply) or emptied (`DB_SET_NULL`).

Rows that became orphans some other way (raw SQL, a restore) are found by the orphan report
(wework.db.orphans, `manage.py orphans`).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache

from django.apps import apps
from django.db import models, transaction
from django.db.models.deletion import DB_CASCADE, DB_SET_NULL, DO_NOTHING, Collector, ProtectedError
from django.utils.translation import gettext as _

from wework import shards

from .layout import alias_for_model

CASCADE, SET_NULL, REFUSE = "cascade", "set_null", "refuse"
RULES = {DB_CASCADE: CASCADE, DB_SET_NULL: SET_NULL, DO_NOTHING: REFUSE}


@dataclass(frozen=True)
class Reference:
    """`model.field` points at `target`, and deleting a target row does `rule` to it."""

    model: type[models.Model]
    field: models.ForeignKey
    target: type[models.Model]
    rule: str

    @property
    def alias(self) -> str:
        return alias_for_model(self.model)

    def referencing(self, target_ids):
        return self.model._base_manager.using(self.alias).filter(**{f"{self.field.attname}__in": list(target_ids)})

    def tables(self) -> list[type[models.Model]]:
        """The referencing model, and its shard tables when it is sharded (`messages` rows live
        in `messages_YYYYMM`, each with its own FOREIGN KEY on one database)."""
        found = [self.model]
        if shards.is_sharded(self.model):
            found.extend(m for m in shards.shard_models(self.model) if m._meta.db_table != self.model._meta.db_table)
        return found

    def per_table(self) -> list[Reference]:
        """This reference once per table of `tables()` (one query each: shards walked in turn)."""
        return [self if m is self.model else Reference(m, self.field, self.target, self.rule) for m in self.tables()]

    def __str__(self) -> str:
        return f"{self.model._meta.db_table}.{self.field.column} -> {self.target._meta.db_table}"


def references_between_databases(include_same: bool = False) -> list[Reference]:
    """Every foreign key of an installed model whose target is on another database (with
    `include_same`, every one between two modules, wherever they are)."""
    from .layout import module_of

    found = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if not isinstance(field, models.ForeignKey) or not field.db_constraint:
                continue
            target = field.related_model._meta.concrete_model
            if module_of(model._meta.app_label) == module_of(target._meta.app_label):
                continue
            if not include_same and alias_for_model(model) == alias_for_model(target):
                continue
            rule = RULES.get(field.remote_field.on_delete)
            if rule is not None:
                found.append(Reference(model, field, target, rule))
    return found


@cache
def _by_target() -> dict[type[models.Model], list[Reference]]:
    grouped: dict[type[models.Model], list[Reference]] = defaultdict(list)
    for reference in references_between_databases():
        grouped[reference.target].append(reference)
    return dict(grouped)


def _ids(objs) -> list:
    if isinstance(objs, models.QuerySet):
        return list(objs.values_list("pk", flat=True))
    return [obj.pk for obj in objs]


def refuse_if_referenced(model: type[models.Model], ids) -> None:
    """ProtectedError when a `DO_NOTHING` reference of another database names one of `ids`."""
    for reference in _by_target().get(model._meta.concrete_model, ()):
        if reference.rule != REFUSE or not ids:
            continue
        blocking: list = []
        for table in reference.per_table():
            blocking = list(table.referencing(ids)[:5])
            if blocking:
                break
        if blocking:
            raise ProtectedError(
                _("Cannot delete: %(model)s rows of another module still refer to it (%(column)s).") % {
                    "model": reference.model._meta.verbose_name, "column": str(reference)},
                blocking)


def remove(queryset) -> int:
    """Delete the rows of `queryset` as the database's cascade would: for good, soft-delete
    models included (their `delete()` only marks them), with the deletion rules of their own
    database; returns the rows deleted."""
    collector = Collector(using=queryset.db)
    collector.collect(queryset)
    return collector.delete()[0]


def apply_rules(model: type[models.Model], ids) -> int:
    """After rows of `model` with `ids` were deleted: cascade or empty the references of the
    other databases; returns the rows changed there."""
    changed = 0
    for reference in _by_target().get(model._meta.concrete_model, ()):
        if not ids:
            break
        for table in reference.per_table():
            if reference.rule == CASCADE:
                changed += remove(table.referencing(ids))
            elif reference.rule == SET_NULL:
                changed += table.referencing(ids).update(**{reference.field.name: None})
    return changed


_django_collect = Collector.collect
_django_delete = Collector.delete


def _collect(self, objs, *args, **kwargs):
    result = _django_collect(self, objs, *args, **kwargs)
    model = objs.model if isinstance(objs, models.QuerySet) else next((type(o) for o in objs), None)
    if model is not None and _by_target().get(model._meta.concrete_model):
        refuse_if_referenced(model, _ids(objs))
    return result


def _delete(self):
    pending = []
    for model, instances in self.data.items():
        if _by_target().get(model._meta.concrete_model):
            pending.append((model, [obj.pk for obj in instances]))
    for qs in self.fast_deletes:
        if _by_target().get(qs.model._meta.concrete_model):
            pending.append((qs.model, _ids(qs)))
    if not pending:
        return _django_delete(self)
    with transaction.atomic():  # every database (wework.db.transactions)
        count, per_model = _django_delete(self)
        for model, ids in pending:
            apply_rules(model, ids)
    return count, per_model


def install() -> None:
    Collector.collect = _collect
    Collector.delete = _delete
