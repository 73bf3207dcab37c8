"""No list sorts by another module's column (docs/schema.md, "Storage layout").

Filters that cross modules are rewritten into id lists (wework.db.crossdb), but an ORDER BY, a
`values()` or an aggregate over another module's column cannot be: on per-module databases it
would join two databases. The platform's lists order by their own columns; this test pins it
for every admin (its ordering, sortable columns and date hierarchy), every model's default
ordering and every API list's ordering fields, on any layout."""
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver

from messaging.models import Message

from wework.db.layout import module_of


def _crosses(model, path):
    """The relation of `path` (an ORM path, maybe with a leading "-") that leaves `model`'s
    module, or None."""
    current = model
    parts = path.lstrip("-?").split("__")
    for index, name in enumerate(parts):
        try:
            field = current._meta.get_field(name)
        except Exception:  # noqa: BLE001 - a transform or an annotation: not a relation
            return None
        if not field.is_relation or field.related_model is None:
            return None
        if module_of(field.related_model._meta.app_label) != module_of(model._meta.app_label):
            if index == len(parts) - 1 and field.concrete and not field.related_model._meta.ordering:
                return None  # the local key column itself (Django joins only for the target's ordering)
            return f"{model._meta.label}.{path} crosses to {field.related_model._meta.label}"
        current = field.related_model
    return None


def _admin_orderings(model_admin):
    yield from model_admin.ordering or ()
    if model_admin.date_hierarchy:
        yield model_admin.date_hierarchy
    for item in model_admin.list_display:
        column = getattr(model_admin, item, None) if isinstance(item, str) else item
        order = getattr(column, "admin_order_field", None)
        if isinstance(order, str):
            yield order
        elif isinstance(item, str) and column is None:
            yield item  # a model field (or a path) sorted by itself


def test_admin_lists_and_default_orderings_stay_in_their_module():
    problems = []
    for model, model_admin in admin.site._registry.items():
        for path in _admin_orderings(model_admin):
            found = _crosses(model, path)
            if found:
                problems.append(f"admin {type(model_admin).__name__}: {found}")
        for path in model._meta.ordering or ():
            if isinstance(path, str) and (found := _crosses(model, path)):
                problems.append(f"Meta.ordering: {found}")
    assert problems == []


def _views(resolver):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(pattern)
        elif isinstance(pattern, URLPattern):
            view = getattr(pattern.callback, "cls", None)
            if view is not None:
                yield view


def test_api_ordering_fields_stay_in_their_module():
    problems, checked = [], 0
    for view in set(_views(get_resolver())):
        queryset = getattr(view, "queryset", None)
        fields = getattr(view, "ordering_fields", None)
        if queryset is None or not isinstance(fields, (list, tuple)):
            continue
        checked += 1
        for path in fields:
            if found := _crosses(queryset.model, path):
                problems.append(f"{view.__name__}: {found}")
    assert checked >= 10  # the walk found the API's lists
    assert problems == []


def test_the_walk_tells_a_crossing_path_from_a_local_column():
    assert _crosses(Message, "-account__nickname") == ("messaging.Message.-account__nickname crosses to "
                                                       "contacts.WeworkAccount")
    assert _crosses(Message, "account") is None  # messages.account_id itself
    assert _crosses(Message, "-created_at") is None
