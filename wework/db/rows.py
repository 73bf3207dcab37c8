"""Rows of a list page built without `Model.__init__` (issue 13: the API lists' CPU).

A page of 51 messages read as model instances cost 1.10 ms of CPU, 0.28 ms of it in
`Model.from_db`: `__init__` sets each of the 26 fields through `setattr` and sends `pre_init`
and `post_init` for every row. `PlainRowIterable` builds the same instances as Django's
`ModelIterable` does, with the same converted values in the same `__dict__` and a `_state` of a
loaded row (`adding` False, `db`, the queryset's fetch mode), by filling `__dict__` directly:
0.82 ms a page (bench/README.md, "API lists with a token").

Only where nothing can tell the difference (`plain_rows()` checks it before the query runs):
the model keeps Django's `__init__` and `from_db`, no receiver listens to its `pre_init` or
`post_init`, and the query reads exactly the model's concrete columns (no `select_related`,
`only()`/`defer()`, annotations, extra selects, known related objects or peer tracking).
Anything else keeps Django's iterable. The rows are ordinary instances: relations load on
access, `save()` and `refresh_from_db()` work as on any loaded row.
"""
from __future__ import annotations

from django.db.models import Model, QuerySet, signals
from django.db.models.base import ModelState
from django.db.models.query import ModelIterable

_INIT = Model.__init__
_FROM_DB = Model.from_db.__func__


class PlainRowIterable(ModelIterable):
    """ModelIterable for the plain case `plain_rows()` allows: one instance a row, `__dict__`
    filled with the row's converted values in the model's column order."""

    def __iter__(self):
        queryset = self.queryset
        db = queryset.db
        compiler = queryset.query.get_compiler(using=db)
        results = compiler.execute_sql(chunked_fetch=self.chunked_fetch, chunk_size=self.chunk_size)
        model = compiler.klass_info["model"]
        names = [column[0].target.attname for column in compiler.select]
        fetch_mode = getattr(queryset, "_fetch_mode", None)
        new = model.__new__
        for row in compiler.results_iter(results):
            obj = new(model)
            state = obj._state = ModelState()
            state.adding = False
            state.db = db
            if fetch_mode is not None:
                state.fetch_mode = fetch_mode
            obj.__dict__.update(zip(names, row))
            yield obj


def _plain(queryset: QuerySet) -> bool:
    model = queryset.model
    query = queryset.query
    if model.__init__ is not _INIT or getattr(model.from_db, "__func__", None) is not _FROM_DB:
        return False
    if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
        return False
    if queryset._iterable_class is not ModelIterable or queryset._known_related_objects:
        return False
    if getattr(getattr(queryset, "_fetch_mode", None), "track_peers", False):
        return False
    if query.select_related or query.annotation_select or query.extra_select or query.values_select:
        return False
    deferred, defer = query.deferred_loading
    return not deferred and defer


def plain_rows(queryset: QuerySet) -> QuerySet:
    """`queryset` reading its rows with PlainRowIterable where nothing can tell the difference
    (see the module's docstring), else `queryset` unchanged."""
    if not _plain(queryset):
        return queryset
    clone = queryset._chain()
    clone._iterable_class = PlainRowIterable
    return clone
