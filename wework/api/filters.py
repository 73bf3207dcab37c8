"""The API's filter backend: a filter the API cannot apply is an HTTP 400, never ignored.

django-filter already refuses most bad values (a date that is not a date, an unknown choice);
two cases slipped through and answered 200 with the whole, unfiltered list:

- a value a widget maps to "no value": `?is_star=maybe` on a yes/no filter;
- a parameter that is not a filter of that list at all: `?created_after=...` on a list without
  such a filter, or a misspelt name.

`PlatformFilterBackend` (settings.REST_FRAMEWORK["DEFAULT_FILTER_BACKENDS"]) refuses both with
`{"<parameter>": ["<message>"]}`, like every other field error. Views that run a filterset by
hand (keyset-paged lists) call `validate_query(request, filterset, view)`.
"""
from django.utils.translation import gettext_lazy as _
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.widgets import SuffixedMultiWidget
from rest_framework import exceptions, filters as drf_filters

from wework.db.indexes import SEARCH_REFUSED, describe_search, index_leads, indexed_search

# Always accepted: DRF's format override.
COMMON_PARAMS = frozenset({"format"})


def filter_params(filterset):
    """The query parameter names the filterset reads (range filters read `<name>_<suffix>`)."""
    names = set()
    for name, field in filterset.form.fields.items():
        widget = field.widget
        if isinstance(widget, SuffixedMultiWidget):
            names.update(widget.suffixed(name, suffix) for suffix in widget.suffixes)
        else:
            names.add(name)
    return names


def view_params(view):
    """Parameters the view reads besides its filters: search, ordering, pagination."""
    names = set(COMMON_PARAMS)
    for backend in getattr(view, "filter_backends", ()) or ():
        if issubclass(backend, drf_filters.SearchFilter) and getattr(view, "search_fields", None):
            names.add(backend.search_param)
        if issubclass(backend, drf_filters.OrderingFilter):
            names.add(backend.ordering_param)
    paginator = getattr(view, "paginator", None)
    for attr in ("page_query_param", "page_size_query_param", "limit_query_param",
                 "offset_query_param", "cursor_query_param"):
        value = getattr(paginator, attr, None)
        if value:
            names.add(value)
    return names


def query_errors(query_params, filterset, allowed=(), check_unknown=True):
    """{parameter: [message]} for every parameter the list cannot apply (empty when all fit)."""
    errors = {}
    if not filterset.is_valid():
        errors.update({k: list(v) for k, v in filterset.errors.items()})
    cleaned = getattr(filterset.form, "cleaned_data", {}) or {}
    for name in filterset.form.fields:
        if name in errors or name not in query_params:
            continue
        raw = [v for v in query_params.getlist(name) if str(v).strip()]
        if raw and cleaned.get(name) in (None, "", [], ()):
            errors[name] = [str(_("“%(value)s” is not a valid value for this filter.")
                                % {"value": raw[0]})]
    if check_unknown:
        known = filter_params(filterset) | set(allowed)
        unknown = sorted(set(query_params) - known)
        if unknown:
            message = str(_("Not a filter of this list. It accepts: %(names)s.")
                          % {"names": ", ".join(sorted(known - COMMON_PARAMS))})
            for name in unknown:
                errors[name] = [message]
    return errors


def no_filter_asked(query_params, filterset_class, allowed) -> bool:
    """Whether the query names no filter of `filterset_class` (every parameter is one of
    `allowed`, the list's own: page, search, ordering, shard) so that the FilterSet would change
    nothing: its form is then neither built nor validated (issue 13, the request path of a
    list). A parameter that starts with a filter's name (`created_after` of a range) is a
    filter's."""
    names = tuple(filterset_class.base_filters)
    return all(param in allowed and not param.startswith(names) for param in query_params)


def unknown_errors(query_params, known):
    """{parameter: [message]} for the parameters outside `known` (empty when there are none)."""
    known = set(known) | COMMON_PARAMS
    unknown = sorted(set(query_params) - known)
    if not unknown:
        return {}
    message = str(_("Not a filter of this list. It accepts: %(names)s.")
                  % {"names": ", ".join(sorted(known - COMMON_PARAMS))})
    return {name: [message] for name in unknown}


def refuse_unknown(query_params, known):
    """400 for parameters outside `known` (lists that read a plain form, not a FilterSet)."""
    errors = unknown_errors(query_params, known)
    if errors:
        raise exceptions.ValidationError(errors)


def validate_query(request, filterset, view=None, extra=()):
    """Raise a 400 (ValidationError) unless every query parameter is a valid filter value."""
    allowed = set(extra) | (view_params(view) if view is not None else set(COMMON_PARAMS))
    errors = query_errors(request.query_params, filterset, allowed)
    if errors:
        raise exceptions.ValidationError(errors)


class PlatformFilterBackend(DjangoFilterBackend):
    """DjangoFilterBackend that answers 400 for values it would ignore and, on lists, for
    parameters that are no filter of the list (see the module docstring)."""

    def filter_queryset(self, request, queryset, view):
        is_list = getattr(view, "action", "list") == "list"
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None and no_filter_asked(request.query_params, filterset_class,
                                                           view_params(view)):
            return queryset
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            unknown = sorted(set(request.query_params) - view_params(view)) if is_list else []
            if unknown:
                message = str(_("This list has no filters."))
                raise exceptions.ValidationError({name: [message] for name in unknown})
            return queryset
        errors = query_errors(request.query_params, filterset, view_params(view), check_unknown=is_list)
        if errors:
            raise exceptions.ValidationError(errors)
        return filterset.qs


class PlatformSearchFilter(drf_filters.SearchFilter):
    """DRF's search (`?search=`, icontains ORed over the fields), except on lists of tables of
    millions (`large_table = True` on the view: the instance shards, audit logs): there each
    search field is exact (`=`) or a prefix (`^`) on an index and is asked on its own
    (wework.db.indexes.indexed_search; the view's `indexed_search_scope(attname)` fixes an
    index's first column), and a term no field can take is a 400 under `search` saying which
    fields are searched, instead of a scan of every row."""

    def filter_queryset(self, request, queryset, view):
        if not getattr(view, "large_table", False):
            return super().filter_queryset(request, queryset, view)
        term = request.query_params.get(self.search_param, "")
        if not term.strip():
            return queryset
        specs = self.get_search_fields(view, request) or ()
        found = indexed_search(queryset, specs, term, getattr(view, "indexed_search_scope", None))
        if found is None:
            raise exceptions.ValidationError({self.search_param: [
                str(SEARCH_REFUSED) % {"fields": describe_search(queryset.model, specs)}]})
        return found

    def get_schema_operation_parameters(self, view):
        """Declared to the schema only on lists that search (others refuse `?search=`)."""
        if not getattr(view, "search_fields", None):
            return []
        return super().get_schema_operation_parameters(view)


class PlatformOrderingFilter(drf_filters.OrderingFilter):
    """DRF's OrderingFilter drops unknown fields silently (the list comes back in its default
    order, which looks like an answer); here they are a 400 naming the fields it accepts.

    A list orders only by fields an index starts with (issue 13): on a table of millions, any
    other ordering sorts the whole table for every page. Such a field is a 400 with that reason,
    unless the view says its table stays small (`small_table = True`: templates, instances)."""

    def get_valid_fields(self, queryset, view, context=None):
        fields = super().get_valid_fields(queryset, view, context)
        if getattr(view, "small_table", False):
            return fields
        leads = index_leads(queryset.model)
        return [item for item in fields if item[0] in leads]

    def get_ordering(self, request, queryset, view):
        params = request.query_params.get(self.ordering_param)
        if params:
            terms = [term.strip() for term in params.split(",") if term.strip()]
            valid = {item[0] for item in self.get_valid_fields(queryset, view, {"request": request})}
            declared = {item[0] for item in super().get_valid_fields(queryset, view, {"request": request})}
            unknown = [t for t in terms if t.lstrip("-") not in valid]
            if unknown:
                names = ", ".join(sorted(valid)) or "-"
                unindexed = [t for t in unknown if t.lstrip("-") in declared]
                if unindexed:
                    message = _("Cannot order by %(fields)s: no index starts with it, so every page "
                                "would sort the whole table. It accepts: %(names)s.")
                    fields = unindexed
                else:
                    message = _("Cannot order by %(fields)s. It accepts: %(names)s.")
                    fields = unknown
                raise exceptions.ValidationError({self.ordering_param: [str(
                    message % {"fields": ", ".join(fields), "names": names})]})
        return super().get_ordering(request, queryset, view)

    def get_schema_operation_parameters(self, view):
        """The fields it accepts, as an enum (anything else is a 400)."""
        return _with_ordering_enum(self, view, super().get_schema_operation_parameters(view))


def _ordering_terms(backend, view):
    try:
        queryset = view.get_queryset()
    except Exception:  # noqa: BLE001 - a view that needs a real request: its declared fields
        queryset = getattr(view, "queryset", None)
    if queryset is None:
        return None
    try:
        fields = backend.get_valid_fields(queryset, view, {"request": getattr(view, "request", None)})
    except Exception:  # noqa: BLE001 - the schema keeps DRF's free-text parameter
        return None
    names = sorted(item[0] for item in fields)
    return [term for name in names for term in (name, f"-{name}")]


def _with_ordering_enum(backend, view, parameters):
    terms = _ordering_terms(backend, view)
    for parameter in parameters:
        if parameter.get("name") == backend.ordering_param and terms:
            parameter["schema"] = {"type": "string", "enum": terms}
            parameter["description"] = str(_("One field to order by (a leading - for descending)."))
    return parameters
