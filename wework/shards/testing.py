"""Test support: shard tables live outside migrations, so Django's flush between transactional
tests does not remove them (it only truncates the registry). `drop_shard_tables()` drops every
table whose name is a shard name of a configured model (or of `extra_bases`), and forgets the
shard layer's in-process caches."""
import re

from django.db import connections

from .create_table import execute_ddl


def _pattern(extra_bases=()):
    from .conf import all_configs

    bases = set(extra_bases)
    for conf in all_configs().values():
        try:
            bases.add(conf.model._meta.db_table)
        except LookupError:
            continue
    names = "|".join(sorted(re.escape(b) for b in bases))
    return re.compile(rf"^({names})_(\d+|\d{{4}}w\d{{2}})$")


def reset_caches():
    from . import builder, conf, ddl, visibility

    conf.reset()
    builder.forget()
    ddl.forget()
    visibility.invalidate_listing()


def drop_shard_tables(using=None, extra_bases=()):
    """Drop the shard tables on `using`, or on every primary alias (per-module databases)."""
    from wework.db.layout import primary_aliases

    pattern = _pattern(extra_bases)
    dropped = []
    for alias in [using] if using else primary_aliases():
        connection = connections[alias]
        with connection.cursor() as cursor:
            tables = [t for t in connection.introspection.table_names(cursor) if pattern.match(t)]
            # Children (group members) before the tables their foreign keys point at.
            tables.sort(key=lambda t: not t.startswith("group_members"))
            if connection.vendor == "mysql":
                cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            try:
                for table in tables:
                    # Run again when Galera aborted it (another worker's DDL), see create_table.
                    execute_ddl(cursor, f"DROP TABLE IF EXISTS {connection.ops.quote_name(table)}")
            finally:
                if connection.vendor == "mysql":
                    cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
        dropped.extend(tables)
    reset_caches()
    return dropped
