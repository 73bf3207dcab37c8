"""Base viewsets every app's API builds on, so that permission and scoping rules live in one
place (see accounts/ for the permission classes and the object scoping they apply)."""
from rest_framework import viewsets


class PlatformReadOnlyViewSet(viewsets.ReadOnlyModelViewSet):
    """List and retrieve. Subclasses set `queryset`, `serializer_class`, `filterset_class`."""


class PlatformModelViewSet(viewsets.ModelViewSet):
    """Full CRUD. Subclasses set `queryset`, `serializer_class`, `filterset_class`."""
