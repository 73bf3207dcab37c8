"""What the indexes of a model can serve: the orderings and equality lookups that walk an index
instead of reading (and sorting) every row of a table of millions (issue 13)."""
from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from django.utils.translation import gettext_lazy as _


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


def index_columns(model) -> list[tuple[str, ...]]:
    """The columns (attnames) of each index, unique constraint and single-column key of
    `model`, in order."""
    groups = [index.fields for index in model._meta.indexes if index.fields]
    groups += [c.fields for c in model._meta.constraints if getattr(c, "fields", None)]
    groups += [tuple(fields) for fields in model._meta.unique_together]
    out = []
    for fields in groups:
        try:
            out.append(tuple(model._meta.get_field(name.lstrip("-")).attname for name in fields))
        except FieldDoesNotExist:
            continue
    out += [(name,) for name in index_leads(model)]
    return out


def ordering_served(model, columns) -> bool:
    """Whether `ORDER BY columns` (attnames, a trailing primary key allowed) walks an index of
    `model`: the columns are the beginning of one of its indexes."""
    pk = {"pk", model._meta.pk.attname, model._meta.pk.name}
    columns = tuple(columns)
    while len(columns) > 1 and columns[-1] in pk:
        columns = columns[:-1]
    return any(index[:len(columns)] == columns for index in index_columns(model))


#: Rows one search field contributes at most (the newest): the page is taken from these.
SEARCH_CAP = 1000

SEARCH_REFUSED = _("Search one value, exactly (names: their beginning) in %(fields)s: this table "
                   "holds millions of rows and only these columns are searched through an index.")


def describe_search(model, specs) -> str:
    """The search fields' names, for the sentences that explain or refuse a search."""
    return ", ".join(str(search_field(model, spec)[1].verbose_name) for spec in specs)


def search_field(model, spec: str):
    """(foreign key or None, field) of a search field: `=name`, `^name` or `^fk__name`."""
    name = spec.lstrip("=^")
    if "__" in name:
        head, tail = name.split("__", 1)
        relation = model._meta.get_field(head)
        return relation, relation.related_model._meta.get_field(tail)
    return None, model._meta.get_field(name)


def searchable_through_an_index(model, spec: str, scoped: set[str] = frozenset()) -> bool:
    """Whether search field `spec` is exact (`=`) or a prefix (`^`, LIKE 'x%') on a column an
    index starts with, or on an index's second column whose first is in `scoped` (what the
    caller's scope fixes: an account for (account, wxid)); `^fk__name`: on the related table."""
    if not spec.startswith(("=", "^")):
        return False
    try:
        relation, field = search_field(model, spec)
    except FieldDoesNotExist:
        return False
    owner = field.model if relation is not None else model
    if field.attname in index_leads(owner):
        return True
    return relation is None and any(second == field.attname and first in scoped
                                    for first, second in index_pairs(owner))


def _value_lookups(spec, field, term, scope):
    from django.core.exceptions import ValidationError

    target = field.target_field if field.is_relation else field
    try:
        value = target.to_python(term)
    except ValidationError:
        return None
    if isinstance(value, str) and getattr(target, "max_length", None) and len(value) > target.max_length:
        return None
    extra = scope(field.attname) if scope is not None else {}
    if extra is None:
        return None
    return {**extra, f"{field.attname}__istartswith" if spec.startswith("^") else field.attname: value}


def indexed_search(queryset, specs, term: str, scope=None, cap: int = SEARCH_CAP):
    """The rows of `queryset` that one indexed search field matches `term` on, or None when
    no field can take the term (too long, not a number for a number, words with spaces where
    no field is searched by its beginning, a
    field whose index needs what `scope(attname)` cannot fix: it answers None). Each field is
    asked on its own (its newest `cap` ids through its index): never an OR that no index
    serves. `^fk__name` looks the related rows up through their index first."""
    term = term.strip()
    if not term:
        return None
    words = any(ch.isspace() for ch in term)
    ids: set = set()
    searched = False
    for spec in specs:
        if words and not spec.startswith("^"):
            continue  # ids and codes have no spaces; a name's beginning may
        relation, field = search_field(queryset.model, spec)
        if relation is not None:
            lookups = _value_lookups(spec, field, term, None)
            if lookups is None:
                continue
            related = relation.related_model._default_manager.filter(**lookups)
            lookups = {f"{relation.attname}__in": list(related.order_by("-pk").values_list("pk", flat=True)[:cap])}
        else:
            lookups = _value_lookups(spec, field, term, scope)
            if lookups is None:
                continue
        searched = True
        ids.update(queryset.filter(**lookups).order_by("-pk").values_list("pk", flat=True)[:cap])
    return queryset.filter(pk__in=sorted(ids)) if searched else None
