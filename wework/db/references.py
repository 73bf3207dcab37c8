"""Cross-module references when the modules are on different databases (wework.db.layout).

A foreign key from one module's table to another module's table has its FOREIGN KEY
constraint only while both are on one database. On separate databases the reference is
constraint-free (wework.db.backends), and the platform checks it instead: before a row is
written, each reference to another database must name an existing row, else the write is
refused with `MissingReference`, a domain error (400) with one sentence.

* `check_references(obj)`: every cross-database reference of one row (the `pre_save` receiver
  installed in a split layout runs it for inserts, and for the fields an update names);
* `check_ids(model, ids)`: a batch of ids at once, for the bulk paths (a broadcast's messages).

In the one-database layout the constraints do the refusing and nothing here runs.
"""
from __future__ import annotations

from functools import lru_cache

from django.utils.translation import gettext_lazy as _

from wework.db.layout import alias_for_model, is_split, module_of
from wework.errors import DomainError


class MissingReference(DomainError):
    status = 400
    code = "missing_reference"


@lru_cache(maxsize=None)
def cross_database_fields(model):
    """The forward foreign keys of `model` whose target is on another alias."""
    return tuple(
        f for f in model._meta.concrete_fields
        if f.is_relation and f.many_to_one and f.related_model is not None
        and alias_for_model(f.related_model) != alias_for_model(model)
    )


def _missing(target, ids):
    ids = {i for i in ids if i is not None}
    if not ids:
        return set()
    found = set(target._base_manager.using(alias_for_model(target))
                .filter(pk__in=ids).values_list("pk", flat=True))
    return ids - found


def _refuse(field, value):
    raise MissingReference(
        _("%(model)s %(id)s does not exist; the %(field)s of this row must name an existing one.")
        % {"model": field.related_model._meta.verbose_name, "id": value, "field": field.verbose_name},
        fields={field.name: [_("%(model)s %(id)s does not exist.")
                             % {"model": field.related_model._meta.verbose_name, "id": value}]},
    )


def check_references(obj, fields=None):
    """Refuse (MissingReference) when a cross-database reference of `obj` names no row."""
    if not is_split():
        return
    for field in cross_database_fields(type(obj)):
        if fields is not None and field.name not in fields and field.attname not in fields:
            continue
        value = getattr(obj, field.attname)
        if value is None:
            continue
        cached = field.get_cached_value(obj, default=None)
        if cached is not None and cached.pk == value and cached._state.db is not None:
            continue  # the row was loaded from its database (or just saved there)
        if _missing(field.related_model, [value]):
            _refuse(field, value)


def check_ids(model, field_name, ids):
    """Refuse when one of `ids` (values of `model.field_name`) names no row."""
    if not is_split():
        return
    field = model._meta.get_field(field_name)
    if field not in cross_database_fields(model):
        return
    missing = _missing(field.related_model, ids)
    if missing:
        _refuse(field, min(missing))


def _on_pre_save(sender, instance, raw=False, update_fields=None, **kwargs):
    if raw or module_of(sender._meta.app_label) is None:
        return
    if instance._state.adding:
        check_references(instance)
    elif update_fields:
        check_references(instance, fields=set(update_fields))


def install():
    """Connect the check to every save (called at start-up in a split layout)."""
    from django.db.models.signals import pre_save

    pre_save.connect(_on_pre_save, dispatch_uid="wework.db.references")
