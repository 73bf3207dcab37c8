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
  Each field is asked on its own (wework.db.indexes.indexed_search), never an OR that no
  index serves. A term no field can take (too long, not a number for a number, words with spaces for exact fields) is refused
  with a sentence naming the fields.
- renders its rows from a plan made once per columns (wework/admin_rows.py), Django's HTML.
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.options import ShowFacets
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist
from django.db.models import prefetch_related_objects
from django.utils.functional import lazy
from django.utils.translation import gettext, gettext_lazy as _

from wework.admin_rows import ChangeUrlsOnce
from wework.db.indexes import (
    SEARCH_REFUSED, describe_search, index_leads, indexed_search, searchable_through_an_index,
)

SEARCH_HELP = _("One value, exactly (names: their beginning): %(fields)s.")


class IndexedChangeList(ChangeUrlsOnce, ChangeList):
    """See the module docstring: indexed orderings, relations after the page; change links
    from one reverse() a page."""

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
    #: A table that stays small (the shard registry, roles): its default order needs no index
    #: (tests/test_admin_list_queries.py holds every other changelist to an indexed order).
    small_table = False
    #: Relations a large table's columns show, loaded after the page (one query each).
    page_prefetch: tuple[str, ...] = ()

    @property
    def planned_rows(self) -> bool:
        """Rows rendered from a plan made once (wework/admin_rows.py): the large tables."""
        return self.large_table

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
        return describe_search(self.model, self.search_fields)

    def get_search_results(self, request, queryset, search_term):
        if not self.large_table:
            return super().get_search_results(request, queryset, search_term)
        if not search_term.strip():
            return queryset, False
        found = indexed_search(queryset, self.get_search_fields(request), search_term,
                               lambda attname: self.indexed_search_scope(request, attname))
        if found is None:
            self.message_user(request, gettext(SEARCH_REFUSED) % {"fields": self.search_description()},
                              messages.WARNING)
            return queryset.none(), False
        return found, False


def admin_searchable(model_admin: admin.ModelAdmin, spec: str, scoped: set[str]) -> bool:
    """wework.db.indexes.searchable_through_an_index for an admin's model (tests)."""
    return searchable_through_an_index(model_admin.model, spec, scoped)
