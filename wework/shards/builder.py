"""Shard model classes, built on demand from a base model in a private app registry.

A shard class has the base model's fields, managers, methods, indexes and constraints, with
`db_table` set to the shard table. It lives in its own `django.apps.registry.Apps()`, so it stays
out of migrations, content types, the admin registry and reverse accessors of the global models;
the base model is never mutated. Classes are cached per (base model, table name).
"""
import copy
import hashlib
import logging
import threading
import types
from functools import cached_property

from django.apps.registry import Apps
from django.db import models
from django.utils import timezone

from wework.db.fields import UnsignedBigIntegerField
from wework.db.models import TableIndex, TableUniqueConstraint

log = logging.getLogger("wework.shards")

_apps = Apps()
_cache = {}
_lock = threading.RLock()
MODULE = "wework.shards.dynamic"


def _register_target(target):
    meta = target._meta
    registered = _apps.all_models[meta.app_label].get(meta.model_name)
    if registered is not target:
        _apps.all_models[meta.app_label][meta.model_name] = target
        _apps.do_pending_operations(target)
        _apps.clear_cache()


def _clone_field(field, base, follows, time_field=None):
    """A fresh copy of a base field for a shard class; relations re-targeted as needed."""
    name, path, args, kwargs = field.deconstruct()
    if field.name == time_field and kwargs.pop("auto_now_add", False):
        # The shard key time is given by the writer (backfills keep their time, and the id
        # encodes the same time); new rows still default to now.
        kwargs["default"] = timezone.now
        kwargs.pop("editable", None)
    if not field.is_relation:
        return field.__class__(*args, **kwargs)
    target = field.remote_field.model
    if field.name in follows:
        kwargs["to"] = follows[field.name]
    elif target is base or getattr(target, "_shard_base", None) is base or _is_time_sharded(target):
        # A reference into a time-sharded table (messages.parent_message): the row may live in
        # any shard, so the shard keeps the plain id column (the id says which shard).
        return UnsignedBigIntegerField(
            field.verbose_name, null=field.null, blank=field.blank, db_column=field.column,
            db_index=field.db_index, db_comment=field.db_comment,
        ), field.attname
    else:
        _register_target(target)
        kwargs["to"] = target
    kwargs["related_name"] = "+"
    kwargs.pop("related_query_name", None)
    return field.__class__(*args, **kwargs)


def _is_time_sharded(model):
    from .conf import all_configs, resolve_label

    conf = all_configs().get(resolve_label(model))
    return bool(conf and conf.enabled and conf.is_time)


def _clone_index(index):
    path, args, kwargs = index.deconstruct()
    # Plain Index names are global on SQLite: TableIndex makes them unique per table.
    return TableIndex(*args, **kwargs)


def _clone_constraint(constraint, table):
    path, args, kwargs = constraint.deconstruct()
    if isinstance(constraint, models.UniqueConstraint):
        return TableUniqueConstraint(*args, **kwargs)
    kwargs["name"] = f"{table}__{constraint.name}"[:64]
    return constraint.__class__(*args, **kwargs)


_COPY_TYPES = (types.FunctionType, property, classmethod, staticmethod, cached_property)


def _methods(base):
    """The base's own methods and properties (not Django's descriptors), for the shard class."""
    attrs = {}
    for klass in reversed(base.__mro__):
        if klass in (models.Model, object) or not issubclass(klass, models.Model):
            continue
        for name, value in vars(klass).items():
            if name in ("Meta", "__module__", "__qualname__", "__dict__", "__weakref__", "__doc__"):
                continue
            if not isinstance(value, _COPY_TYPES):
                continue
            func = getattr(value, "fget", None) or getattr(value, "func", None) or value
            func = getattr(func, "__func__", func)
            code = getattr(func, "__code__", None)
            if code is not None and "__class__" in code.co_freevars:
                # Zero-argument super() is bound to the base class; it cannot run on a shard.
                log.debug("not copying %s.%s to shards (uses super())", base.__name__, name)
                continue
            attrs[name] = value
    return attrs


def build(base, table, suffix, follows=None, time_field=None):
    """The shard model class of `base` stored in `table` (cached)."""
    follows = follows or {}
    key = (base, table)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        meta = base._meta
        attrs = _methods(base)
        attrs["__module__"] = MODULE
        renamed = {}
        for field in meta.local_fields:
            clone = _clone_field(field, base, follows, time_field)
            if isinstance(clone, tuple):
                clone, attname = clone
                renamed[field.name] = attname
                attrs[attname] = clone
            else:
                attrs[field.name] = clone
        for manager in meta.managers:
            attrs[manager.name] = copy.copy(manager)
        options = {
            "db_table": table,
            "apps": _apps,
            "app_label": meta.app_label,
            "indexes": [_clone_index(i) for i in meta.indexes],
            "constraints": [_clone_constraint(c, table) for c in meta.constraints],
            "ordering": [o for o in meta.ordering if str(o).lstrip("-") not in renamed],
            "verbose_name": f"{meta.verbose_name} [{suffix}]",
            "verbose_name_plural": f"{meta.verbose_name_plural} [{suffix}]",
            "default_permissions": (),
            "unique_together": meta.unique_together,
        }
        if meta.db_table_comment:
            options["db_table_comment"] = meta.db_table_comment
        if meta.get_latest_by:
            options["get_latest_by"] = meta.get_latest_by
        if meta.base_manager_name:
            options["base_manager_name"] = meta.base_manager_name
        if meta.default_manager_name:
            options["default_manager_name"] = meta.default_manager_name
        attrs["Meta"] = type("Meta", (), options)
        attrs["_shard_base"] = base
        # Plain class attributes the platform reads from models (not methods, so _methods()
        # skips them): without INSTANCE_PATH, accounts.scoping treats a shard as a global model
        # and users with per-instance grants see none of its rows.
        if hasattr(base, "INSTANCE_PATH"):
            attrs["INSTANCE_PATH"] = base.INSTANCE_PATH
        attrs["_shard_table"] = table
        attrs["_shard_suffix"] = suffix
        name = f"{base.__name__}_{suffix}"
        # A rebuilt class (a test base model changed) replaces the old one in the private apps.
        _apps.all_models[meta.app_label].pop(name.lower(), None)
        model = type(name, (models.Model,), attrs)
        _cache[key] = model
        return model


def forget(table=None):
    """Drop cached classes (of one table, or all)."""
    with _lock:
        for key in [k for k in _cache if table is None or k[1] == table]:
            model = _cache.pop(key)
            _apps.all_models[model._meta.app_label].pop(model._meta.model_name, None)
        _apps.clear_cache()


def schema_fingerprint(model, connection):
    """A hash of the columns (name and type), indexes and constraints a model declares."""
    parts = []
    for field in model._meta.local_fields:
        parts.append(f"c:{field.column}:{field.db_type(connection)}:{field.null}")
    for index in model._meta.indexes:
        parts.append(f"i:{index.name}:{','.join(index.fields)}")
    for constraint in model._meta.constraints:
        parts.append(f"k:{constraint.name}")
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()
