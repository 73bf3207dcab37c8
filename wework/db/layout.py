"""Where each app's tables live: the design's logical databases (docs/schema.md, "Storage
layout").

The design splits the data into five logical databases, one per business module. Each is a
setting, `DATABASE_URL_<MODULE>`, defaulting to `DATABASE_URL`; modules with the same URL share
one database alias, so the default layout is one database (alias "default") and nothing changes.

| module | logical database | apps |
|---|---|---|
| accounts | user_db | accounts, and the platform's own tables: auth, contenttypes, sessions, admin, guardian, django_otp, shards (the central shard registry) |
| instances | instance_db | instances |
| contacts | contact_db | contacts, scrm (tags, segments, opt-outs and welcomes are per account and contact) |
| messaging | message_db | messaging |
| monitoring | monitor_db | monitoring |

A shard table lives on its base model's alias (its app label is the base's). Cross-module
references are constraint-free when the two modules are on different aliases (see
`cross_filter`, `select_across` and `wework.db.backends`).

This module is read by the settings (`build`), so it imports nothing from Django at module top.
"""
from __future__ import annotations

MODULES = ("accounts", "instances", "contacts", "messaging", "monitoring")

# The order the aliases are created and migrated in (DATABASES keeps it, and so do Django's
# test databases): the platform's tables and the shard registry first, then monitoring (where
# the other modules' migrations write their audit rows and logs), then the rest.
MIGRATION_ORDER = ("accounts", "monitoring", "instances", "contacts", "messaging")

# The logical database of the design, per module (docs only).
LOGICAL_NAMES = {"accounts": "user_db", "instances": "instance_db", "contacts": "contact_db",
                 "messaging": "message_db", "monitoring": "monitor_db"}

# Apps placed with a module other than their own label.
APP_MODULE = {
    "scrm": "contacts",
    "shards": "accounts",
    "auth": "accounts", "contenttypes": "accounts", "sessions": "accounts", "admin": "accounts",
    "guardian": "accounts", "django_otp": "accounts", "otp_totp": "accounts",
    "otp_static": "accounts", "wework": "accounts",
}


def module_of(app_label):
    """The module an app's tables belong to (unknown apps: accounts, with the platform)."""
    if app_label in MODULES:
        return app_label
    return APP_MODULE.get(app_label, "accounts")


def build(default_url, module_urls):
    """Aliases for the layout: ({alias: url}, {module: alias}).

    `module_urls`: {module: url or ""}; an empty URL is `default_url`. The alias of
    `default_url` is "default"; any other URL takes the name of the first module using it.
    """
    aliases = {"default": default_url}
    by_url = {default_url: "default"}
    module_alias = {}
    for module in MIGRATION_ORDER:
        url = module_urls.get(module) or default_url
        if url not in by_url:
            by_url[url] = module
            aliases[module] = url
        module_alias[module] = by_url[url]
    return aliases, {m: module_alias[m] for m in MODULES}


# --- lookups at run time (settings loaded) -----------------------------------------------------

def _module_aliases():
    from django.conf import settings

    return getattr(settings, "DATABASE_MODULE_ALIASES", None) or {m: "default" for m in MODULES}


def alias_for_app(app_label):
    return _module_aliases().get(module_of(app_label), "default")


def alias_for_model(model):
    return alias_for_app(model._meta.app_label)


def connection_for(app_label):
    """A proxy for the connection of an app's alias (like `django.db.connection` for
    "default"), for modules that run raw SQL on their own tables."""
    from django.db import connections

    return _AppConnection(connections, app_label)


def _app_connection_class():
    from django.utils.connection import ConnectionProxy

    class AppConnection(ConnectionProxy):
        """Resolves the app's alias at each use (the settings may change in tests)."""

        def __init__(self, connections, app_label):
            object.__setattr__(self, "_app_label", app_label)
            super().__init__(connections, "default")

        def __getattr__(self, item):
            return getattr(self._connections[alias_for_app(self._app_label)], item)

        def __setattr__(self, name, value):
            return setattr(self._connections[alias_for_app(self._app_label)], name, value)

        def __delattr__(self, name):
            return delattr(self._connections[alias_for_app(self._app_label)], name)

        def __eq__(self, other):
            return self._connections[alias_for_app(self._app_label)] == other

    return AppConnection


def _AppConnection(connections, app_label):
    global _app_connection
    if _app_connection is None:
        _app_connection = _app_connection_class()
    return _app_connection(connections, app_label)


_app_connection = None


def primary_aliases():
    """The distinct primary aliases of the layout, in MIGRATION_ORDER ("default" first)."""
    aliases = _module_aliases()
    found = ["default"]
    for module in MIGRATION_ORDER:
        alias = aliases.get(module, "default")
        if alias not in found:
            found.append(alias)
    return found


def is_split():
    """True when the modules are on more than one database."""
    return len(set(_module_aliases().values())) > 1


def content_type_of(obj):
    """The ContentType of a model or object, read on the content types' own database."""
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(obj)


def missing_modules():
    """Modules whose database does not have their tables yet (a split layout being migrated
    alias by alias): checked on each module's first model."""
    from django.apps import apps
    from django.db import DatabaseError, connections

    missing, tables = [], {}
    for module in MODULES:
        models = list(apps.get_app_config(module).get_models())
        if not models:
            continue
        alias = alias_for_app(module)
        if alias not in tables:
            try:
                tables[alias] = set(connections[alias].introspection.table_names())
            except DatabaseError:  # its database is not created yet (test setup, a new server)
                tables[alias] = set()
        if models[0]._meta.db_table not in tables[alias]:
            missing.append(module)
    return missing


def same_database(model_a, model_b):
    return alias_for_model(model_a) == alias_for_model(model_b)


# --- queries that cross modules ----------------------------------------------------------------

def _split_path(model, path):
    """Walk `path` (an ORM path of relations, e.g. "account__instance") from `model`; return
    (joinable prefix, the field that leaves the model's database or None, the rest)."""
    parts = path.split("__") if path else []
    current = model
    for index, name in enumerate(parts):
        field = current._meta.get_field(name)
        if not field.is_relation or field.related_model is None:
            return path, None, ""
        target = field.related_model
        if not same_database(model, target):
            return "__".join(parts[:index]), field, "__".join(parts[index + 1:])
        current = target
    return path, None, ""


def _is_field(model, name):
    from django.core.exceptions import FieldDoesNotExist

    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def crossing(model, lookup):
    """(index, field) of the relation where `lookup` leaves the model's database and goes on
    to a column or relation of the other side, else None. `account__in=[...]`,
    `account=obj`, `account__isnull`, `account__pk`: the local column, no crossing."""
    parts = lookup.split("__")
    current = model
    for index, name in enumerate(parts):
        if not _is_field(current, name):
            return None
        field = current._meta.get_field(name)
        if not field.is_relation or field.related_model is None:
            return None
        target = field.related_model
        if not same_database(model, target):
            rest = parts[index + 1:]
            if not rest or not _is_field(target, rest[0]):
                return None
            if field.concrete and rest[0] in (field.target_field.name, field.target_field.attname):
                return None  # the referenced key itself: Django compares the local column
            return index, field
        current = target
    return None


def cross_filter(model, lookup, value):
    """A filter dict equivalent to `{lookup: value}` on `model` that never joins to another
    database: the part of the path on another alias is resolved there first, into an
    `id IN (...)` list on the local column (one query per database crossed).

    E.g. on messages: `account__instance__in=[1, 2]` becomes `account__in=[ids of the accounts
    of instances 1 and 2]`, `account__nickname__icontains="x"` the same with the accounts
    whose nickname matches. In the one-database layout the filter is returned unchanged.
    """
    if not is_split():
        return {lookup: value}
    found = crossing(model, lookup)
    if found is None:
        return {lookup: value}
    index, field = found
    parts = lookup.split("__")
    target = field.related_model
    inner = cross_filter(target, "__".join(parts[index + 1:]), value)
    manager = target._base_manager.using(alias_for_model(target))
    if field.concrete:  # forward: keep the rows whose reference is among the matching rows
        ids = manager.filter(**inner).values_list(field.target_field.attname, flat=True)
        local = "__".join(parts[:index + 1])
    else:  # reverse (instance -> its accounts): the rows the matching rows point at
        ids = manager.filter(**inner).values_list(field.field.attname, flat=True)
        local = "__".join([*parts[:index], "pk"])
    return {f"{local}__in": sorted({i for i in ids if i is not None})}


def select_across(qs, *paths):
    """`qs.select_related(*paths)` for the paths within the queryset's database, and
    `prefetch_related` (a second query on the other database) for those that cross it."""
    if not is_split():
        return qs.select_related(*paths)
    joined, fetched = [], []
    for path in paths:
        prefix, leaving, _rest = _split_path(qs.model, path)
        if leaving is None:
            joined.append(path)
        else:
            fetched.append(path)
            if prefix:
                joined.append(prefix)
    if joined:
        qs = qs.select_related(*joined)
    if fetched:
        qs = qs.prefetch_related(*fetched)
    return qs
