"""Base viewsets every app's API builds on, so that permission and scoping rules live in one
place: `wework.api.permissions.PlatformPermission` checks model and object permissions, and
`get_queryset()` is narrowed to the rows the user may see (accounts/scoping.py).

Database routing (wework/routers.py): `list` and `retrieve` are pure reads and may be served by
a read replica (the user's own recent writes still read from the primary); every other action
reads the primary. `update`, `partial_update` and `destroy` lock the row (SELECT ... FOR
UPDATE) in their transaction before reading it, so that two concurrent changes of one row
apply one after the other instead of the second writing back what the first replaced.
"""
import functools

from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, viewsets

from accounts.scoping import model_perm, scope_queryset
from wework import routers, shards
from wework.api.filters import PlatformFilterBackend, no_filter_asked, query_errors, unknown_errors
from wework.api.lean import LeanListMixin
from wework.api.pagination import AfterIdPagination
from wework.api.permissions import PlatformPermission


def not_found_message(model):
    """The 404 detail for `model`, translated: "No such message task." / "未找到该群发任务。"."""
    return _("No such %(name)s.") % {"name": model._meta.verbose_name}


class ScopedQuerysetMixin(LeanListMixin):
    """Filters `get_queryset()` by the user's view (or change) permission and instance grants,
    and refuses creations outside the user's scope."""

    permission_classes = [PlatformPermission]
    # Actions whose GET/HEAD may read from a replica: pure reads whose result feeds no write.
    replica_read_actions = ("list", "retrieve")
    _lock_object_for_write = False

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        method = request.method.lower()
        if request.method in ("GET", "HEAD") and getattr(self, "action", None) in self.replica_read_actions:
            handler = getattr(self, method, None)
            if handler is not None:
                # dispatch() looks the handler up after initial(): this request's only.
                setattr(self, method, functools.partial(routers.read_only_call, handler, user=request.user))

    def get_queryset(self):
        qs = super().get_queryset()
        model = qs.model
        return scope_queryset(
            qs, self.request.user, model_perm(model, "view"), model_perm(model, "change")
        )

    def get_object(self):
        """The object, or a 404 in the user's language naming the model ("No such message
        task."): the same answer for a missing object and one outside the user's scope."""
        try:
            obj = super().get_object()
            if self._lock_object_for_write:
                # Lock the row, then read it again: the values the change starts from are the
                # latest committed ones, and no other writer changes them before this commits.
                type(obj)._base_manager.select_for_update().filter(pk=obj.pk).values_list("pk").first()
                obj = super().get_object()
            return obj
        except Http404:
            raise exceptions.NotFound(not_found_message(self.get_queryset().model)) from None

    def perform_create(self, serializer):
        with transaction.atomic():
            obj = serializer.save()
            if not self.request.user.has_perm(model_perm(type(obj), "add"), obj):
                raise exceptions.PermissionDenied(
                    _("You may not create objects on that instance.")
                )

    def perform_update(self, serializer):
        with transaction.atomic():
            obj = serializer.save()
            if not self.request.user.has_perm(model_perm(type(obj), "change"), obj):
                raise exceptions.PermissionDenied(
                    _("You may not move objects to that instance.")
                )


class PlatformReadOnlyViewSet(ScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    """List and retrieve. Subclasses set `queryset`, `serializer_class`, `filterset_class`."""


class PlatformModelViewSet(ScopedQuerysetMixin, viewsets.ModelViewSet):
    """Full CRUD. Subclasses set `queryset`, `serializer_class`, `filterset_class`."""

    def update(self, request, *args, **kwargs):
        with transaction.atomic():
            self._lock_object_for_write = True
            return super().update(request, *args, **kwargs)

    def destroy(self, request, *args, **kwargs):
        with transaction.atomic():
            self._lock_object_for_write = True
            return super().destroy(request, *args, **kwargs)


# --- Lists over shards ----------------------------------------------------------------------
# A month of messages, a day of logs, an instance's metrics over weekly shards: tables of
# millions of rows, read one keyset page at a time (issues 11, 13). ShardedListViewSet is the
# one list over them: it resolves the shard(s) from the request, runs the app's FilterSet (or
# the form the admin shares) with unknown parameters refused, scopes the rows and reads
# `ORDER BY id DESC LIMIT n+1` per shard through `wework.shards.paginate` - no COUNT, no OFFSET,
# no join: the page costs O(page) whatever the shard's size. Paging: AfterIdPagination.

KEYSET_PARAMS = ("after", "limit")


class ShardedListViewSet(LeanListMixin, viewsets.GenericViewSet):
    """`list` over a sharded model. Subclasses set `base_model`, `serializer_class`, and
    `filterset_class` (a FilterSet of `base_model`) or `filter_form_class` (a Form whose
    `lookups()` gives a Q: the system logs share the admin's), and define
    `shard_scope(request)`: the keyword arguments of `shards.paginate` that choose the shards
    (`since`/`until` for time shards, `instance_id` for an instance's), raising a 400 or 404 for
    a bad or hidden choice, or None for one that cannot exist (an empty page); `shard_params` names the parameters it reads. They may narrow the
    rows (`row_scope(request)`: a Q on the shard's own columns, no join), map the filters
    otherwise (`page_arguments`) and add to the answer (`page_extra(request, scope)`)."""

    permission_classes = [PlatformPermission]
    pagination_class = AfterIdPagination
    # Named for the OpenAPI schema (the FilterSet's parameters); list() runs the FilterSet
    # itself: a shard model is not the FilterSet's model.
    filter_backends = [PlatformFilterBackend]
    base_model = None
    filterset_class = None
    filter_form_class = None
    shard_params: tuple = ()
    #: Columns, when the rows are read as dicts (then serialized like model rows).
    page_values = None

    def get_queryset(self):
        return self.base_model._default_manager.none()

    def shard_scope(self, request) -> dict:
        raise NotImplementedError

    def row_scope(self, request):
        return Q()

    def page_extra(self, request, scope) -> dict:
        return {}

    def read_filters(self, request):
        """(filters, after, limit): the bound, valid FilterSet (or form), or a 400 naming every
        bad or unknown parameter and a bad `after` or `limit` at once."""
        known = {*self.shard_params, *KEYSET_PARAMS}
        errors = {}
        if self.filterset_class is not None and no_filter_asked(request.query_params, self.filterset_class, known):
            filters = None  # nothing to filter: the FilterSet's form is not built
        elif self.filterset_class is not None:
            filters = self.filterset_class(request.query_params, queryset=self.get_queryset(),
                                           request=request)
            errors.update(query_errors(request.query_params, filters, known))
        else:
            filters = self.filter_form_class(request.query_params)
            errors.update(unknown_errors(request.query_params, {*filters.base_fields, *known}))
            if not filters.is_valid():
                errors.update({k: list(v) for k, v in filters.errors.items()})
        try:
            after, limit = self.paginator.page_params(request)
        except exceptions.ValidationError as exc:
            errors.update(exc.detail)
        if errors:
            raise exceptions.ValidationError(errors)
        return filters, after, limit

    def page_arguments(self, request, scope, filters) -> dict:
        """The arguments of `shards.paginate` besides the page: the shard choice, and the
        filters then the row scope applied to each shard's rows."""
        rows = self.row_scope(request)
        if filters is None:
            def apply(qs):
                return qs.filter(rows)
        elif self.filterset_class is not None:
            def apply(qs):
                return filters.filter_queryset(qs).filter(rows)
        else:
            def apply(qs):
                return qs.filter(filters.lookups()).filter(rows)
        return {**scope, "filters": apply}

    def list(self, request, *args, **kwargs):
        scope = self.shard_scope(request)
        filters, after, limit = self.read_filters(request)
        if scope is None:  # a shard that cannot exist (a month outside the supported years)
            page = shards.Page([], None)
        else:
            page = shards.paginate(self.base_model, after=after, limit=limit, values=self.page_values,
                                   **self.page_arguments(request, scope, filters))
        self.paginator.next_after = page.next_after
        data = self.get_serializer(page.items, many=True).data
        return self.paginator.get_paginated_response(data, **self.page_extra(request, scope))


def form_parameters(form_class, exclude=()):
    """OpenAPI query parameters of a filter form's fields (a list filtered by a Form)."""
    from django import forms
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import OpenApiParameter

    kinds = ((forms.IntegerField, OpenApiTypes.INT), (forms.DateField, OpenApiTypes.DATE),
             (forms.DateTimeField, OpenApiTypes.DATETIME))
    params = []
    for name, field in form_class.base_fields.items():
        if name in exclude:
            continue
        kind = next((k for cls, k in kinds if isinstance(field, cls)), OpenApiTypes.STR)
        enum = [value for value, _label in getattr(field, "choices", ()) if value != ""] or None
        params.append(OpenApiParameter(name, kind, enum=enum, description=str(field.label or "")))
    return params
