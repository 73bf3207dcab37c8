"""Base viewsets every app's API builds on, so that permission and scoping rules live in one
place: `wework.api.permissions.PlatformPermission` checks model and object permissions, and
`get_queryset()` is narrowed to the rows the user may see (accounts/scoping.py)."""
from django.db import transaction
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, viewsets

from wework.api.permissions import PlatformPermission


def not_found_message(model):
    """The 404 detail for `model`, translated: "No such message task." / "未找到该群发任务。"."""
    return _("No such %(name)s.") % {"name": model._meta.verbose_name}


class ScopedQuerysetMixin:
    """Filters `get_queryset()` by the user's view (or change) permission and instance grants,
    and refuses creations outside the user's scope."""

    permission_classes = [PlatformPermission]

    def get_queryset(self):
        from accounts.scoping import model_perm, scope_queryset

        qs = super().get_queryset()
        model = qs.model
        return scope_queryset(
            qs, self.request.user, model_perm(model, "view"), model_perm(model, "change")
        )

    def get_object(self):
        """The object, or a 404 in the user's language naming the model ("No such message
        task."): the same answer for a missing object and one outside the user's scope."""
        try:
            return super().get_object()
        except Http404:
            raise exceptions.NotFound(not_found_message(self.get_queryset().model)) from None

    def perform_create(self, serializer):
        from accounts.scoping import model_perm

        with transaction.atomic():
            obj = serializer.save()
            if not self.request.user.has_perm(model_perm(type(obj), "add"), obj):
                raise exceptions.PermissionDenied(
                    _("You may not create objects on that instance.")
                )

    def perform_update(self, serializer):
        from accounts.scoping import model_perm

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
