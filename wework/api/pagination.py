"""Every API list is paged by a cursor over an indexed column (newest first by id), never by
page number: a page costs O(page) whatever the table's size, and no page runs COUNT(*).

`?limit=` sets the page size (1-500, default 50; anything else is a 400 under `limit`), and
`next` / `previous` are the links to follow. Lists over a shard (messages, system logs) page the
same way by id with `?after=` (their views say so)."""
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination

MAX_PAGE_SIZE = 500
LIMIT_ERROR = _("limit must be a whole number from 1 to %(max)d.")


class KeysetPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = MAX_PAGE_SIZE

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
