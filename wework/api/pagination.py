"""Every API list is paged by a cursor over an indexed column (newest first by id), never by
page number: a page costs O(page) whatever the table's size, and no page runs COUNT(*).

`?limit=` sets the page size (1-500, default 50; anything else is a 400 under `limit`), and
`next` / `previous` are the links to follow. Lists over shards (messages, system logs, instance
metrics) page by id with `?after=` and answer `next_after` (AfterIdPagination)."""
import datetime

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.pagination import BasePagination, Cursor, CursorPagination
from rest_framework.response import Response

from wework.api.filters import check_utc_range
from wework.db.rows import plain_rows
from wework.ids import fits_bigint

MAX_PAGE_SIZE = 500
LIMIT_ERROR = _("limit must be a whole number from 1 to %(max)d.")
AFTER_ERROR = _("Not an id: pass the next_after of the previous page.")


class KeysetPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = MAX_PAGE_SIZE

    def paginate_queryset(self, queryset, request, view=None):
        self.model = queryset.model  # decode_cursor reads the position as its ordering field's value
        # the page's rows without Model.__init__ where nothing can tell (wework/db/rows.py)
        return super().paginate_queryset(plain_rows(queryset), request, view)

    def decode_cursor(self, request):
        """DRF's, plus the position checked as a value of the ordering's first field before any
        query: a cursor someone edited (`p=abc` on the ids, `p=2**70`, a time whose UTC value
        is outside years 1-9999) is DRF's invalid cursor (404 "Invalid cursor"), like one that
        is not base64 at all, never a 500 at the query."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            position = self.position_value(cursor.position)
            if position is None:
                raise exceptions.NotFound(self.invalid_cursor_message)
            cursor = Cursor(offset=cursor.offset, reverse=cursor.reverse, position=position)
        return cursor

    def position_value(self, raw):
        """The cursor position `raw` as a value of the ordering field, or None when it is no
        value that field can hold (so that no query can fail on it)."""
        model = getattr(self, "model", None)
        name = self.ordering[0].lstrip("-")
        if model is None:
            return raw
        try:
            field = model._meta.pk if name == "pk" else model._meta.get_field(name)
        except FieldDoesNotExist:
            return raw  # an annotation or a lookup path: the query itself says what it takes
        field = getattr(field, "target_field", field)  # a foreign key orders by its id
        try:
            value = field.to_python(raw)
            if isinstance(value, int) and isinstance(field, models.IntegerField) and not fits_bigint(value):
                return None
            if isinstance(value, datetime.datetime):
                aware = value if timezone.is_aware(value) else timezone.make_aware(value)
                check_utc_range(aware)
        except (ValidationError, ValueError, TypeError, OverflowError):
            return None
        return raw

    def get_ordering(self, request, queryset, view):
        """The asked ordering (PlatformOrderingFilter allows only fields an index starts with),
        then the id: rows equal on the first field come in one fixed order, so the cursor's
        offset within them points at the same rows from one page to the next."""
        ordering = tuple(super().get_ordering(request, queryset, view))
        if not any(term.lstrip("-") in ("id", "pk") for term in ordering):
            ordering += ("-id" if ordering[-1].startswith("-") else "id",)
        return ordering

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [str(LIMIT_ERROR) % {"max": self.max_page_size}]})
        return size

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter.get("name") == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return parameters


class AfterIdPagination(BasePagination):
    """The page of a list over shards (`wework.api.views.ShardedListViewSet`): newest first by
    id, `?after=<id>` (the `next_after` of the previous page: the next page holds ids below it)
    and `?limit=` as above, answered `{"results": [...], "next_after": id|null}`. The view reads
    the rows (one keyset query per shard it walks); this class parses the two parameters and
    describes them and the answer to the OpenAPI schema. `extra_schema` names what a list adds
    to its answer (the system logs' `day`)."""

    after_query_param = "after"
    limit_query_param = "limit"
    extra_schema: dict = {}

    def __init__(self):
        self.next_after = None

    def page_params(self, request):
        """(after, limit); a bad value is a 400 under its own name (both at once)."""
        errors = {}
        raw_after = (request.query_params.get(self.after_query_param) or "").strip()
        after = None
        if raw_after:
            if raw_after.isdigit() and int(raw_after) < 2 ** 63:  # an id is a BIGINT
                after = int(raw_after)
            else:
                errors[self.after_query_param] = [str(AFTER_ERROR)]
        try:
            limit = KeysetPagination().get_page_size(request)
        except exceptions.ValidationError as exc:
            errors.update(exc.detail)
            limit = None
        if errors:
            raise exceptions.ValidationError(errors)
        return after, limit

    def get_paginated_response(self, data, **extra):
        return Response({**extra, "results": data, "next_after": self.next_after})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": [*self.extra_schema, "results", "next_after"],
            "properties": {
                **self.extra_schema,
                "results": schema,
                "next_after": {
                    "type": "integer", "nullable": True,
                    "description": "Pass it as `after` for the next page; null on the last one.",
                },
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": self.after_query_param, "required": False, "in": "query",
             "description": "The `next_after` of the previous page (ids below it, newest first).",
             "schema": {"type": "integer"}},
            {"name": self.limit_query_param, "required": False, "in": "query",
             "description": f"Rows per page, 1-{MAX_PAGE_SIZE} (default {KeysetPagination.page_size}).",
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}},
        ]
