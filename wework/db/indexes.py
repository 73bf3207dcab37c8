"""What the indexes of a model can serve: the orderings and equality lookups that walk an index
instead of reading (and sorting) every row of a table of millions (issue 13)."""
from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist


def index_leads(model) -> set[str]:
    """Names of the fields an index of `model` starts with (the primary key included): the
    orderings a large table can serve by walking an index instead of sorting every row."""
    names = {"pk", model._meta.pk.name}
    for field in model._meta.concrete_fields:
        if field.db_index or field.unique:
            names.update({field.name, field.attname})
    firsts = [index.fields[0] for index in model._meta.indexes if index.fields]
    firsts += [c.fields[0] for c in model._meta.constraints if getattr(c, "fields", None)]
    firsts += [fields[0] for fields in model._meta.unique_together if fields]
    for name in firsts:
        name = name.lstrip("-")
        names.add(name)
        try:
            names.add(model._meta.get_field(name).attname)
        except FieldDoesNotExist:
            pass
    return names


def index_pairs(model) -> set[tuple[str, str]]:
    """(first, second) column pairs of the multi-column indexes and unique constraints, by
    attname: `second = x` is served by the index once `first` is fixed too."""
    groups = [index.fields for index in model._meta.indexes]
    groups += [c.fields for c in model._meta.constraints if getattr(c, "fields", None)]
    groups += list(model._meta.unique_together)
    pairs = set()
    for fields in groups:
        if len(fields) >= 2:
            try:
                first, second = (model._meta.get_field(name.lstrip("-")).attname for name in fields[:2])
            except FieldDoesNotExist:
                continue
            pairs.add((first, second))
    return pairs
