"""Changelists of tables of millions of rows (shards, receivers, audit logs, metrics): a page
costs O(page) whatever the table's size (issue 13).

An admin with `large_table = True` (every ShardedModelAdmin, and the big unsharded tables):
- sorts only by columns an index starts with: the other column headers are not links, and a
  `?o=` naming them is dropped; ties are broken by id in the same direction, so that the page
  walks one index;
- never joins a relation into the page: `page_prefetch` names the relations its columns show,
  loaded after the page by id (a join lets the server start from the small table and sort the
  whole big one);
- counts nothing: no facet counts, no full count, the paginator's count is capped
  (wework.admin.EstimatedCountPaginator);
- searches one value through an index: each search field is exact (`=field`) or a prefix
  (`^field`, LIKE 'x%') on a column an index starts with, or on the second column of an index
  whose first column `indexed_search_scope` fixes (an account's contacts: (account, wxid)).
  Each field is asked on its own (newest SEARCH_CAP ids), never an OR that no index serves. A
  term no field can take (words with spaces, too long, not a number for a number) is refused
  with a sentence naming the fields.
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.options import ShowFacets
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import prefetch_related_objects
from django.utils.functional import lazy
from django.utils.translation import gettext, gettext_lazy as _

from wework.db.indexes import index_leads, index_pairs

#: Rows one search field contributes at most (the newest): the page is taken from these.
SEARCH_CAP = 1000

SEARCH_HELP = _("One value, exactly (names: their beginning): %(fields)s.")
SEARCH_REFUSED = _("Search one value, exactly (names: their beginning) in %(fields)s: this table "
                   "holds millions of rows and only these columns are searched through an index.")


class IndexedChangeList(ChangeList):
    """See the module docstring: indexed orderings, relations after the page."""

    def get_ordering(self, request, queryset):
        allowed = self.model_admin.indexed_orderings()
        terms = [o for o in super().get_ordering(request, queryset)
                 if isinstance(o, str) and o.lstrip("-") in allowed]
        fields = [o for o in terms if o.lstrip("-") not in ("pk", "id")]
        if fields:
            return [*fields, "-pk" if fields[-1].startswith("-") else "pk"]
        return [next((o for o in terms), "-pk")]

    def apply_select_related(self, qs):
        return qs  # relations: page_prefetch, after the page

    def get_results(self, request):
        super().get_results(request)
        related = self.model_admin.page_prefetch
        if related:
            rows = list(self.result_list)
            prefetch_related_objects(rows, *related)
            self.result_list = rows


class LargeTableAdminMixin:
    large_table = False
    #: Relations a large table's columns show, loaded after the page (one query each).
    page_prefetch: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.large_table:
            self.show_facets = ShowFacets.NEVER
            self.show_full_result_count = False
            if self.search_fields and self.search_help_text is None:
                self.search_help_text = lazy(
                    lambda: gettext(SEARCH_HELP) % {"fields": self.search_description()}, str)()

    # --- ordering -----------------------------------------------------------------------------

    def indexed_orderings(self) -> set[str]:
        return index_leads(self.model)

    def _ordering_field(self, item) -> str | None:
        if callable(item):
            attr = item
        elif hasattr(self, item):
            attr = getattr(self, item)
        else:
            try:
                return self.model._meta.get_field(item).name
            except FieldDoesNotExist:
                attr = getattr(self.model, item, None)
        order = getattr(attr, "admin_order_field", None)
        return order.lstrip("-") if isinstance(order, str) else None

    def get_sortable_by(self, request):
        sortable = super().get_sortable_by(request)
        if not self.large_table:
            return sortable
        leads = self.indexed_orderings()
        return [item for item in sortable if self._ordering_field(item) in leads]

    def get_changelist(self, request, **kwargs):
        return IndexedChangeList if self.large_table else super().get_changelist(request, **kwargs)

    # --- search -------------------------------------------------------------------------------

    def indexed_search_scope(self, request, attname: str) -> dict | None:
        """Lookups that `attname = value` needs for an index to serve it (the first column of
        its index); {} when it needs none; None when it cannot be searched now."""
        return {}

    def search_description(self) -> str:
        return ", ".join(str(search_field(self.model, spec)[1].verbose_name) for spec in self.search_fields)

    def indexed_search_lookups(self, request, spec: str, term: str, model=None) -> dict | None:
        """The lookups of one search field for `term` on `model` (the shard's), or None when the
        field cannot take it. `^relation__field` looks the related rows up first through their
        own index (newest SEARCH_CAP), then takes this table's rows by the foreign key."""
        model = model or self.model
        relation, field = search_field(model, spec)
        if relation is not None:
            lookups = self._value_lookups(request, spec, field, term, scoped=False)
            if lookups is None:
                return None
            related = relation.related_model._default_manager.filter(**lookups)
            ids = list(related.order_by("-pk").values_list("pk", flat=True)[:SEARCH_CAP])
            return {f"{relation.attname}__in": ids}
        return self._value_lookups(request, spec, field, term)

    def _value_lookups(self, request, spec, field, term, scoped=True):
        target = field.target_field if field.is_relation else field
        try:
            value = target.to_python(term)
        except ValidationError:
            return None
        if isinstance(value, str) and getattr(target, "max_length", None) and len(value) > target.max_length:
            return None
        scope = self.indexed_search_scope(request, field.attname) if scoped else {}
        if scope is None:
            return None
        return {**scope, f"{field.attname}__istartswith" if spec.startswith("^") else field.attname: value}

    def get_search_results(self, request, queryset, search_term):
        if not self.large_table:
            return super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if not term:
            return queryset, False
        ids: set = set()
        searched = False
        if not any(ch.isspace() for ch in term):
            for spec in self.get_search_fields(request):
                lookups = self.indexed_search_lookups(request, spec, term, queryset.model)
                if lookups is None:
                    continue
                searched = True
                ids.update(queryset.filter(**lookups).order_by("-pk").values_list("pk", flat=True)[:SEARCH_CAP])
        if not searched:
            self.message_user(request, gettext(SEARCH_REFUSED) % {"fields": self.search_description()},
                              messages.WARNING)
            return queryset.none(), False
        return queryset.filter(pk__in=sorted(ids)), False


def searchable_through_an_index(model_admin: admin.ModelAdmin, spec: str, scoped: set[str]) -> bool:
    """Whether a large table's search field `spec` is exact or a prefix on a column an index
    starts with, or on an index's second column whose first is in `scoped` (what
    indexed_search_scope fixes). For the tests and the system check."""
    if not spec.startswith(("=", "^")):
        return False
    try:
        relation, field = search_field(model_admin.model, spec)
    except FieldDoesNotExist:
        return False
    model = field.model if relation is not None else model_admin.model
    if field.attname in index_leads(model):
        return True
    return relation is None and any(second == field.attname and first in scoped
                                    for first, second in index_pairs(model))


def search_field(model, spec: str):
    """(foreign key or None, field) of a search field: `=name`, `^name` or `^fk__name`."""
    name = spec.lstrip("=^")
    if "__" in name:
        head, tail = name.split("__", 1)
        relation = model._meta.get_field(head)
        return relation, relation.related_model._meta.get_field(tail)
    return None, model._meta.get_field(name)
