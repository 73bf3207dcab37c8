"""Factories of every model, found by convention: the DjangoModelFactory subclasses of
`<app>/tests/factories.py` whose model is that model."""
from __future__ import annotations

import importlib
import inspect
from functools import cache

from django.db import models
from factory.django import DjangoModelFactory


@cache
def _factories(app_name: str) -> dict[type[models.Model], type[DjangoModelFactory]]:
    try:
        module = importlib.import_module(f"{app_name}.tests.factories")
    except ModuleNotFoundError:
        return {}
    found: dict[type[models.Model], type[DjangoModelFactory]] = {}
    for _name, obj in inspect.getmembers(module, inspect.isclass):
        if issubclass(obj, DjangoModelFactory) and obj is not DjangoModelFactory:
            model = obj._meta.get_model_class()
            if model is not None and obj.__module__ == module.__name__:
                found.setdefault(model, obj)
    return found


def factory_for(model: type[models.Model]) -> type[DjangoModelFactory] | None:
    """The factory of `model`, or None when its app's tests/factories.py has none."""
    return _factories(model._meta.app_config.name).get(model)


def make(model: type[models.Model], instance: models.Model | None = None, **kwargs):
    """One row of `model` (below `instance` when the model hangs below an instance), or None
    when the model has no factory. The instance model itself answers `instance`."""
    path = getattr(model, "INSTANCE_PATH", None)
    if path == "" and instance is not None:
        return instance
    factory = factory_for(model)
    if factory is None:
        return None
    if path and instance is not None:
        kwargs.setdefault(path, instance)
    return factory(**kwargs)
