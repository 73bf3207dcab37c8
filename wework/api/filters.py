"""The API's filter backend: a filter the API cannot apply is an HTTP 400, never ignored.

django-filter already refuses most bad values (a date that is not a date, an unknown choice);
two cases slipped through and answered 200 with the whole, unfiltered list:

- a value a widget maps to "no value": `?is_star=maybe` on a yes/no filter;
- a parameter that is not a filter of that list at all: `?created_after=...` on a list without
  such a filter, or a misspelt name.

`PlatformFilterBackend` (settings.REST_FRAMEWORK["DEFAULT_FILTER_BACKENDS"]) refuses both with
`{"<parameter>": ["<message>"]}`, like every other field error. Views that run a filterset by
hand (keyset-paged lists) call `validate_query(request, filterset, view)`.

Every app's FilterSet derives from `PlatformFilterSet` and declares its filters with the classes
below, so that a value the database cannot take is a field error there, not a 500 at the query:

- `IsoDateTimeFilter` / `DateTimeFilter`: a time whose UTC value falls outside years 1-9999
  (`0001-01-01T00:00:00+14:00`) is refused "Datetime value out of range." (DRF's sentence);
- `IdFilter` (a row's id as a number) and the model-choice filters of foreign keys: an integer
  outside a signed BIGINT (`2**70`) is "Select a valid choice" like an id of no row;
- `NumberFilter` on integer columns: the BIGINT range, Django's min/max sentences.
"""
import copy
import datetime

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _, gettext_noop
from django_filters import fields as filter_fields
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.widgets import SuffixedMultiWidget
from rest_framework import exceptions, filters as drf_filters

from wework.db.indexes import SEARCH_REFUSED, describe_search, index_leads, indexed_search
from wework.ids import BIGINT_MAX, BIGINT_MIN, fits_bigint

DATETIME_OVERFLOW = _("Datetime value out of range.")  # DRF's msgid: the same answer as bodies
INVALID_CHOICE = forms.ModelChoiceField.default_error_messages["invalid_choice"]


# --- values the database can take --------------------------------------------------------------
def check_utc_range(value):
    """`value` (an aware datetime) unless its UTC value is outside years 1-9999 (the database
    stores UTC: converting it would raise OverflowError); a ValidationError then."""
    if isinstance(value, datetime.datetime) and timezone.is_aware(value):
        try:
            value.astimezone(datetime.timezone.utc)
        except OverflowError:
            raise ValidationError(DATETIME_OVERFLOW, code="overflow") from None
    return value


def out_of_id_range(value) -> bool:
    """Whether `value` reads as a whole number outside a signed BIGINT (no row has that id)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return False  # not a number: the field's own check answers
    return not fits_bigint(number)


def _integer_key(queryset, to_field_name) -> bool:
    model = queryset.model
    field = model._meta.get_field(to_field_name) if to_field_name else model._meta.pk
    return isinstance(getattr(field, "target_field", field), models.IntegerField)


class UtcRangeDateTimeField(forms.DateTimeField):
    def to_python(self, value):
        return check_utc_range(super().to_python(value))


class UtcRangeIsoDateTimeField(filter_fields.IsoDateTimeField):
    def to_python(self, value):
        return check_utc_range(super().to_python(value))


class IdField(forms.IntegerField):
    """A row's id: a whole number; one outside a signed BIGINT is an invalid choice."""

    default_error_messages = {"invalid_choice": INVALID_CHOICE}

    def to_python(self, value):
        value = super().to_python(value)
        if value is not None and not fits_bigint(value):
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice",
                                  params={"value": value})
        return value


class BigIntegerNumberField(forms.DecimalField):
    """NumberFilter's field on an integer column: within a signed BIGINT."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.max_value is None:
            self.validators.append(MaxValueValidator(BIGINT_MAX))
        if self.min_value is None:
            self.validators.append(MinValueValidator(BIGINT_MIN))


class IdChoiceField(filter_fields.ModelChoiceField):
    def to_python(self, value):
        if (value not in self.empty_values and out_of_id_range(value)
                and _integer_key(self.queryset, self.to_field_name)):
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice",
                                  params={"value": value})
        return super().to_python(value)


class IdMultipleChoiceField(filter_fields.ModelMultipleChoiceField):
    def _check_values(self, value):
        if _integer_key(self.queryset, self.to_field_name):
            for item in value:
                if out_of_id_range(item):
                    raise ValidationError(self.error_messages["invalid_choice"],
                                          code="invalid_choice", params={"value": item})
        return super()._check_values(value)


def query_id(query_params, name, required_message=None):
    """The row id in query parameter `name` of a view that reads it by hand (no FilterSet):
    None when absent or blank (a 400 with `required_message` when given), a 400 under `name`
    when it is not a whole number ("Enter a whole number.", or `required_message`) or is outside
    a signed BIGINT (an invalid choice, as the id filters answer)."""
    raw = (query_params.get(name) or "").strip()
    if not raw.isascii() or not raw.isdigit():
        if not raw and not required_message:
            return None
        message = required_message or forms.IntegerField.default_error_messages["invalid"]
        raise exceptions.ValidationError({name: [str(message)]})
    value = int(raw)
    if not fits_bigint(value):
        raise exceptions.ValidationError({name: [str(INVALID_CHOICE)]})
    return value


# --- the filters every FilterSet declares with ----------------------------------------------------
class DateTimeFilter(django_filters.DateTimeFilter):
    field_class = UtcRangeDateTimeField


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcRangeIsoDateTimeField


class NumberFilter(django_filters.NumberFilter):
    """A number compared with an integer column (counts, sizes): within a signed BIGINT."""

    field_class = BigIntegerNumberField


class IdFilter(django_filters.NumberFilter):
    """A row's id given as a number (`account`, `task` on tables that hold no foreign key)."""

    field_class = IdField


class ModelChoiceFilter(django_filters.ModelChoiceFilter):
    field_class = IdChoiceField


class ModelMultipleChoiceFilter(django_filters.ModelMultipleChoiceFilter):
    field_class = IdMultipleChoiceField


def _filter_defaults():
    replace = {
        django_filters.DateTimeFilter: DateTimeFilter,
        django_filters.IsoDateTimeFilter: IsoDateTimeFilter,
        django_filters.ModelChoiceFilter: ModelChoiceFilter,
        django_filters.ModelMultipleChoiceFilter: ModelMultipleChoiceFilter,
    }
    defaults = copy.deepcopy(django_filters.FilterSet.FILTER_DEFAULTS)
    for db_field, spec in defaults.items():
        if spec["filter_class"] in replace:
            spec["filter_class"] = replace[spec["filter_class"]]
        elif spec["filter_class"] is django_filters.NumberFilter and issubclass(db_field, models.IntegerField):
            spec["filter_class"] = IdFilter if issubclass(db_field, models.AutoField) else NumberFilter
    return defaults


class PlatformFilterSet(django_filters.FilterSet):
    """The base of every app's FilterSet: filters generated from `Meta.fields` are the classes
    above (times within the database's range, ids within a BIGINT)."""

    FILTER_DEFAULTS = _filter_defaults()

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


# Django's message for a NUL in a field (a search, a filter, a body): Django's own zh_Hans
# catalogue says 不允许是用空字符串 ("empty strings are not allowed"), so ours translates it.
gettext_noop("Null characters are not allowed.")

class PlatformSearchFilter(drf_filters.SearchFilter):
    """DRF's search (`?search=`, icontains ORed over the fields), except on lists of tables of
    millions (`large_table = True` on the view: the instance shards, audit logs): there each
    search field is exact (`=`) or a prefix (`^`) on an index and is asked on its own
    (wework.db.indexes.indexed_search; the view's `indexed_search_scope(attname)` fixes an
    index's first column), and a term no field can take is a 400 under `search` saying which
    fields are searched, instead of a scan of every row."""

    def get_search_terms(self, request):
        # DRF checks the term with a CharField (no NUL) and raises its messages as a bare
        # list: name the parameter, as every other field error does.
        try:
            return super().get_search_terms(request)
        except exceptions.ValidationError as exc:
            raise exceptions.ValidationError({self.search_param: exc.detail}) from None

    def filter_queryset(self, request, queryset, view):
        if not getattr(view, "large_table", False):
            return super().filter_queryset(request, queryset, view)
        self.get_search_terms(request)  # the term's checks (no NUL) as on every other list
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
