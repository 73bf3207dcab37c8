"""Changelist rows rendered from a plan made once per changelist's columns (issue 13).

Django's `items_for_result` works out, for each cell of each row, what the column is (a
field, an admin method, a model attribute), which display function applies, the empty
value's translation, the cell's classes and the change link (a reverse() and the preserved
filters' URL parsing): 38 % of a large table's first page. Here that is decided once per
(admin class, model, columns, link columns); what depends on the request's language and
time zone (the dash, date formats, choice labels, boolean icons) once per page; and each
cell only reads its value and formats it the way Django does, with Django's own display
functions wherever the value's type decides.

The HTML is Django's, cell for cell (wework/tests/test_admin_rows.py compares both renderers
on every planned admin, in Chinese and English). What a plan does not know how to render
faster (model properties, relation paths, file and URL fields in a link...) goes through
Django's own `items_for_result` for that cell; changelists with editable columns, popups,
several link columns or lambda columns are rendered by Django entirely.

A page's cells are joined into one string per row: the result template prints a row's items
one after the other, so the HTML is the same, for 50 template variables instead of 550.
"""
from __future__ import annotations

import datetime

from django.conf import settings
from django.contrib.admin.templatetags.admin_list import (
    ResultList, _boolean_icon, _coerce_field_name, items_for_result,
)
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import (
    FieldIsAForeignKeyColumnName, _get_non_gfk_field, display_for_field, display_for_value,
)
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db import models
from django.db.models.constants import LOOKUP_SEP
from django.db.models.expressions import DatabaseDefault
from django.urls import NoReverseMatch
from django.utils import dateformat, formats, timezone
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString

class ChangeUrlsOnce:
    """A ChangeList mixin: the rows' change links from one reverse() a page (integer keys),
    the same path as reverse()'s."""

    _change_url = None

    def url_for_result(self, result):
        pk = getattr(result, self.pk_attname)
        if not isinstance(pk, int):
            return super().url_for_result(result)
        if self._change_url is None:
            self._change_url = split_around(super().url_for_result(result), f"/{pk}/", 1)
        head, tail = self._change_url
        return f"{head}{pk}{tail}"


def split_around(url, marker, keep):
    """(before, after) the last `marker` in `url`, keeping `keep` characters of each side."""
    at = url.rindex(marker)
    return url[:at + keep], url[at + len(marker) - keep:]


#: plans by (admin class, model, columns, link columns); shard models add a few a year
_PLANS: dict[tuple, RowPlan | None] = {}
_MAX_PLANS = 1024


def planned_results(cl):
    """The changelist's rows as Django's `results(cl)` would give them, or None when this
    changelist is for Django's renderer (not opted in, or a case the plan leaves to it)."""
    if not getattr(cl.model_admin, "planned_rows", False) or cl.formset or cl.is_popup:
        return None
    links = None if cl.list_display_links is None else tuple(cl.list_display_links)
    key = (type(cl.model_admin), cl.model, tuple(cl.list_display), links)
    try:
        plan = _PLANS[key]
    except KeyError:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        plan = _PLANS[key] = RowPlan.make(cl)
    if plan is None:
        return None
    return plan.render(cl)


class Page:
    """What a page's cells share: the active language's dash, formats and labels, and the
    preserved filters of the change links."""

    def __init__(self, cl):
        self.cl = cl
        self.empty = cl.model_admin.get_empty_value_display()
        self.grouping = settings.USE_THOUSAND_SEPARATOR
        self.datetime_format = formats.get_format("DATETIME_FORMAT")
        self.choices = {}  # by column index: {value: label}
        self.icons = {}
        self.link_suffix = None  # preserved filters, the same for every change link

    def number(self, value):
        if type(value) is int and not self.grouping:
            return str(value)  # what number_format gives an int without grouping
        return formats.number_format(value)

    def icon(self, value):
        try:
            return self.icons[value]
        except KeyError:
            icon = self.icons[value] = _boolean_icon(value)
            return icon
        except TypeError:
            return _boolean_icon(value)

    def change_link(self, result, text):
        cl = self.cl
        try:
            url = cl.url_for_result(result)
        except NoReverseMatch:
            return conditional_escape(text)
        if "?" in url or "#" in url or self.link_suffix is None:
            full = add_preserved_filters({"preserved_filters": cl.preserved_filters, "opts": cl.opts}, url)
            if "?" not in url and "#" not in url and full.startswith(url):
                self.link_suffix = full[len(url):]
        else:
            full = url + self.link_suffix
        return f'<a href="{conditional_escape(full)}">{conditional_escape(text)}</a>'


class Column:
    """One column: `text(page, result)` is what Django's cell shows before escaping, `classes`
    the cell's class attribute when it does not depend on the value."""

    link = False
    first_link = False

    def __init__(self, index, name, classes):
        self.index = index
        self.name = name
        self.classes = classes

    def cell(self, page, result):
        try:
            text, classes = self.text(page, result)
        except ObjectDoesNotExist:  # a relation's row is gone: Django shows the dash
            text, classes = page.empty, self.classes[:1]
        attr = f' class="{" ".join(classes)}"'
        if self.link:
            tag = "th" if self.first_link else "td"
            return f"<{tag}{attr}>{page.change_link(result, text)}</{tag}>"
        return f"<td{attr}>{conditional_escape(text)}</td>"


class FieldColumn(Column):
    """A concrete model field, by the field's type as display_for_field decides."""

    def __init__(self, index, name, classes, field):
        super().__init__(index, name, classes)
        self.field = field
        self.attname = name
        if field.name == "password":
            self.kind = "field"  # shown as its hash's summary by display_for_field
        elif getattr(field, "flatchoices", None):
            self.kind = "choices"
        elif isinstance(field, models.BooleanField):
            self.kind = "boolean"
        elif isinstance(field, models.DateTimeField):
            self.kind = "datetime"
        elif isinstance(field, (models.IntegerField, models.FloatField)) and not isinstance(
                field, models.DecimalField):
            self.kind = "number"
        else:
            self.kind = "field"  # display_for_field itself

    def text(self, page, result):
        value = getattr(result, self.attname)
        kind = self.kind
        if kind == "choices":
            labels = page.choices.get(self.index)
            if labels is None:
                labels = page.choices[self.index] = {v: str(label) for v, label in self.field.flatchoices}
            try:
                return labels.get(value, page.empty), self.classes
            except TypeError:  # an unhashable value: Django's own path
                return display_for_field(value, self.field, page.empty, self.link), self.classes
        if kind == "boolean":
            return page.icon(None if isinstance(value, DatabaseDefault) else value), self.classes
        if kind != "field" and (value in self.field.empty_values
                                or isinstance(value, DatabaseDefault)):
            return page.empty, self.classes
        if kind == "datetime":
            return dateformat.format(timezone.template_localtime(value), page.datetime_format), self.classes
        if kind == "number":
            return page.number(value), self.classes
        return display_for_field(value, self.field, page.empty, avoid_link=self.link), self.classes


class RelationColumn(Column):
    """A foreign key: the related object's str(), or the dash."""

    def text(self, page, result):
        value = getattr(result, self.name)
        return (page.empty if value is None else value), self.classes


class ValueColumn(Column):
    """The primary key as Django reaches it (auto-created fields: display_for_value)."""

    def text(self, page, result):
        value = getattr(result, self.name)
        if type(value) is int:
            return page.number(value), self.classes
        return display_for_value(value, page.empty), self.classes + _nowrap(value)


class CallableColumn(Column):
    """An admin method or a function of the row: display_for_value of what it returns."""

    def __init__(self, index, name, classes, function, bound):
        super().__init__(index, name, classes)
        self.function = function
        self.bound = bound  # a method of the admin: called with the row only
        self.boolean = getattr(function, "boolean", False)
        self.empty_value_display = getattr(function, "empty_value_display", None)

    def text(self, page, result):
        value = self.function(result)
        empty = page.empty if self.empty_value_display is None else self.empty_value_display
        return display_for_value(value, empty, self.boolean), self.classes + _nowrap(value)


class StockColumn(Column):
    """Anything else: Django's items_for_result for this one cell."""

    def __init__(self, index, name, classes):
        super().__init__(index, name, classes)

    def cell(self, page, result):
        one = _OneColumn(page.cl, self.name, self.link)
        return next(items_for_result(one, result, None))


class _OneColumn:
    """The changelist seen by items_for_result as if it showed this column alone."""

    def __init__(self, cl, name, link):
        self._cl = cl
        self.list_display = [name]
        self.list_display_links = [name] if link else None

    def __getattr__(self, attr):
        return getattr(self._cl, attr)


def _nowrap(value):
    return ["nowrap"] if isinstance(value, (datetime.date, datetime.time)) else []


class RowPlan:
    def __init__(self, columns):
        self.columns = columns

    @classmethod
    def make(cls, cl):
        """The plan of `cl`'s columns, or None when Django should render them."""
        admin = cl.model_admin
        columns, first = [], True
        for index, name in enumerate(cl.list_display):
            if callable(name) and getattr(name, "__name__", "") == "<lambda>":
                return None  # its class is numbered by position: left to Django
            link = _link_in_column(first, name, cl)
            if link and not first:
                return None  # a second link column is a <td>: left to Django
            column = _column(index, name, cl.model, admin)
            column.link, column.first_link = link, link and first
            if link:
                first = False
            columns.append(column)
        return cls(columns)

    def render(self, cl):
        page = Page(cl)
        columns = self.columns
        return [ResultList(None, [SafeString("".join([c.cell(page, row) for c in columns]))])
                for row in cl.result_list]


def _link_in_column(is_first, name, cl):
    """items_for_result's link_in_col."""
    if cl.list_display_links is None:
        return False
    if is_first and not cl.list_display_links:
        return True
    return name in cl.list_display_links


def _column(index, name, model, admin):
    classes = [f"field-{_coerce_field_name(name, index)}"]
    if callable(name):
        return CallableColumn(index, name, classes, name, bound=False)
    if name == "action_checkbox":
        return StockColumn(index, name, ["action-checkbox"])
    if LOOKUP_SEP in name:
        return StockColumn(index, name, classes)
    try:
        field = _get_non_gfk_field(model._meta, name)
    except (FieldDoesNotExist, FieldIsAForeignKeyColumnName):
        if hasattr(admin, name) and name != "__str__":
            method = getattr(admin, name)
            if callable(method):
                return CallableColumn(index, name, classes, method, bound=True)
        return StockColumn(index, name, classes)
    if field.auto_created:
        return ValueColumn(index, name, classes) if field.primary_key else StockColumn(index, name, classes)
    if isinstance(field.remote_field, models.ManyToOneRel):
        return RelationColumn(index, name, classes + ["nowrap"])
    if isinstance(field, (models.DateField, models.TimeField, models.ForeignKey)):
        classes = classes + ["nowrap"]
    return FieldColumn(index, name, classes, field)
