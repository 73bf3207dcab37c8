"""Queries that would join across databases, rewritten (a split layout only).

When the modules are on different databases (wework.db.layout), a join from one module's
table to another's cannot run: the other table is not on that connection. The platform's
services, admin pages, filtersets and API views were written for one database and join freely
(`select_related("account__instance")`, `filter(account__instance__in=...)`, admin searches on
`account__nickname`). `install()`, called at start-up in a split layout only, makes the ORM
rewrite those joins at one place instead of at each of them:

* a filter (`filter()`, `exclude()`, `Q` objects, admin searches and list filters, filtersets)
  whose relation path leaves the queryset's database is resolved on the other database first,
  into an `id IN (...)` list on the local column (`wework.db.layout.cross_filter`): one query
  per database crossed;
* `select_related()` of a path that leaves the database becomes `prefetch_related()` (a second
  query per page, on the other database); paths within the database stay joins.

Also: the rows of other modules that a delete collects (the admin's confirmation page) and
generic relations (django-guardian's object permissions) are read on their own databases.

Not rewritten (and not used by the platform across modules; `grep` in docs/schema.md, "Storage
layout"): ordering, `values()`, annotations and aggregates over another module's columns, and
`F()` expressions that cross modules. In the one-database layout nothing is patched.
"""
from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from django.db.models import Q
from django.db.models.query import QuerySet

from wework.db.layout import _split_path, alias_for_model, cross_filter, crossing

_django_filter_inplace = QuerySet._filter_or_exclude_inplace
_django_select_related = QuerySet.select_related


def _crosses(model, lookup):
    return crossing(model, lookup) is not None


def _rewrite_q(model, q):
    children = []
    changed = False
    for child in q.children:
        if isinstance(child, Q):
            new = _rewrite_q(model, child)
            changed = changed or new is not child
            children.append(new)
        elif isinstance(child, tuple) and len(child) == 2 and isinstance(child[0], str) and _crosses(model, child[0]):
            ((lookup, value),) = cross_filter(model, child[0], child[1]).items()
            children.append((lookup, value))
            changed = True
        else:
            children.append(child)
    if not changed:
        return q
    new = Q()
    new.connector = q.connector
    new.negated = q.negated
    new.children = children
    return new


def _filter_or_exclude_inplace(self, negate, args, kwargs):
    model = self.model
    if model is not None:
        args = tuple(_rewrite_q(model, a) if isinstance(a, Q) else a for a in args)
        rewritten = {}
        for lookup, value in kwargs.items():
            if _crosses(model, lookup):
                rewritten.update(cross_filter(model, lookup, value))
            else:
                rewritten[lookup] = value
        kwargs = rewritten
    return _django_filter_inplace(self, negate, args, kwargs)


def select_related(self, *fields):
    if self.model is None or not fields or fields == (None,):
        if not fields and self.model is not None:
            return self._chain()  # "every non-null relation" could join across: load lazily
        return _django_select_related(self, *fields)
    joined, fetched = [], []
    for path in fields:
        try:
            prefix, leaving, _rest = _split_path(self.model, path)
        except FieldDoesNotExist:
            joined.append(path)
            continue
        if leaving is None:
            joined.append(path)
        else:
            fetched.append(path)
            if prefix:
                joined.append(prefix)
    qs = _django_select_related(self, *joined) if joined else self._chain()
    if fetched:
        qs = qs.prefetch_related(*fetched)
    return qs


def _collector_related_objects(self, related_model, related_fields, objs):
    """Rows of another module that reference the rows being deleted: read on their own
    database, by id list (the admin's delete confirmation lists them)."""
    alias = alias_for_model(related_model)
    if alias == self.using:
        return _django_related_objects(self, related_model, related_fields, objs)
    pks = list(objs.values_list("pk", flat=True)) if isinstance(objs, QuerySet) else [o.pk for o in objs]
    predicate = Q.create([(f"{field.name}__in", pks) for field in related_fields], connector=Q.OR)
    return related_model._base_manager.using(alias).filter(predicate)


def _content_type_object(self, using=None, **kwargs):
    """A generic relation's object, read on its own database (not the referring row's)."""
    model = self.model_class()
    return model._base_manager.using(alias_for_model(model)).get(**kwargs)


def _gfk_content_type(self, obj=None, id=None, using=None, model=None):  # noqa: A002 - Django's signature
    from django.contrib.contenttypes.models import ContentType

    if obj is not None:
        return ContentType.objects.get_for_model(obj, for_concrete_model=self.for_concrete_model)
    if model is not None:
        return ContentType.objects.get_for_model(model, for_concrete_model=self.for_concrete_model)
    if id is not None:
        return ContentType.objects.get_for_id(id)
    return _django_gfk_content_type(self, obj=obj, id=id, using=using, model=model)


_django_related_objects = None
_django_gfk_content_type = None


def install():
    global _django_related_objects, _django_gfk_content_type
    from django.contrib.contenttypes.fields import GenericForeignKey
    from django.contrib.contenttypes.models import ContentType
    from django.db.models.deletion import Collector

    QuerySet._filter_or_exclude_inplace = _filter_or_exclude_inplace
    QuerySet.select_related = select_related
    # Deletes: rows of other modules that reference the deleted ones, on their database.
    _django_related_objects = Collector.related_objects
    Collector.related_objects = _collector_related_objects
    # Generic relations (django-guardian's object permissions): the object and its content
    # type on their own databases.
    ContentType.get_object_for_this_type = _content_type_object
    _django_gfk_content_type = GenericForeignKey.get_content_type
    GenericForeignKey.get_content_type = _gfk_content_type
