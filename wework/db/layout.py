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


def primary_aliases():
    """The distinct primary aliases of the layout ("default" first)."""
    found = ["default"]
    for alias in _module_aliases().values():
        if alias not in found:
            found.append(alias)
    return found


def is_split():
    """True when the modules are on more than one database."""
    return len(set(_module_aliases().values())) > 1


def missing_modules():
    """Modules whose database does not have their tables yet (a split layout being migrated
    alias by alias): checked on each module's first model."""
    from django.apps import apps
    from django.db import connections

    missing, tables = [], {}
    for module in MODULES:
        models = list(apps.get_app_config(module).get_models())
        if not models:
            continue
        alias = alias_for_app(module)
        if alias not in tables:
            tables[alias] = set(connections[alias].introspection.table_names())
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


def cross_filter(model, lookup, value):
    """A filter dict equivalent to `{lookup: value}` on `model` that never joins to another
    database: the part of the path on another alias is resolved there first, into an
    `id IN (...)` list (one query per database crossed).

    `lookup` is a relation path plus an optional final lookup, e.g. "account__instance__in",
    "account__instance_id", "task__account__instance__in". In the one-database layout the
    filter is returned unchanged (joins are fine there).
    """
    if not is_split():
        return {lookup: value}
    parts = lookup.split("__")
    # The relation path is the longest prefix of relation fields.
    current, relations = model, []
    for name in parts:
        try:
            field = current._meta.get_field(name)
        except Exception:  # noqa: BLE001 - a lookup name ("in", "exact") ends the path
            break
        if not field.is_relation or field.related_model is None:
            break
        relations.append(name)
        current = field.related_model
    if not relations:
        return {lookup: value}
    path = "__".join(relations)
    tail = "__".join(parts[len(relations):]) or "exact"
    prefix, leaving, rest = _split_path(model, path)
    if leaving is None:
        return {lookup: value}
    target = leaving.related_model
    if not rest:
        # The last hop only compares the local column (`account__in=[ids]`, `account=obj`):
        # no join is needed.
        local = f"{prefix}__{leaving.name}" if prefix else leaving.name
        return {f"{local}__{tail}": value}
    inner = cross_filter(target, f"{rest}__{tail}", value)
    ids = list(target._base_manager.using(alias_for_model(target)).filter(**inner)
               .values_list(leaving.target_field.attname, flat=True))
    local = f"{prefix}__{leaving.name}" if prefix else leaving.name
    return {f"{local}__in": ids}


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
