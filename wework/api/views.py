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
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, viewsets
from rest_framework.response import Response

from accounts.scoping import model_perm, scope_queryset
from wework import routers
from wework.api.pagination import KeysetPagination
from wework.api.permissions import PlatformPermission


def not_found_message(model):
    """The 404 detail for `model`, translated: "No such message task." / "未找到该群发任务。"."""
    return _("No such %(name)s.") % {"name": model._meta.verbose_name}


class ScopedQuerysetMixin:
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
# A month of messages, a day of logs, an instance's metrics: newest first by id, `?after=<id>`
# (the `next_after` of the previous page) and `?limit=` (as on every list), answered as
# `{"results": [...], "next_after": id|null}` plus what the list adds (its day). The views run
# their app's FilterSet with `validate_query(..., extra=KEYSET_PARAMS)`, so an unknown or
# misspelt parameter is a 400 there too.

KEYSET_PARAMS = ("after", "limit")


def keyset_page_params(request):
    """(after, limit) of a list over shards; a bad value is a 400 under its own name."""
    errors = {}
    raw_after = (request.query_params.get("after") or "").strip()
    after = None
    if raw_after:
        if raw_after.isdigit():
            after = int(raw_after)
        else:
            errors["after"] = [str(_("Not an id: pass the next_after of the previous page."))]
    try:
        limit = KeysetPagination().get_page_size(request)
    except exceptions.ValidationError as exc:
        errors.update(exc.detail)
        limit = None
    if errors:
        raise exceptions.ValidationError(errors)
    return after, limit


def keyset_response(results, next_after, **extra):
    return Response({**extra, "results": results, "next_after": next_after})
