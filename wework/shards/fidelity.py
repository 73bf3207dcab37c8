"""A shard table identical to its base table (MySQL/MariaDB).

The shard classes are built from the base model, but the base tables carry what Django's schema
editor does not write: `updated_at ... DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP`
(hand-written migrations), column precision and comments set by hand. The base table in the
database is therefore the reference: every column the shard shares with it gets the base's
definition word for word (from `SHOW CREATE TABLE`), the table comment is copied, and every key
of the base (by columns and uniqueness; names of Django's FK indexes differ per table) exists in
the shard. SQLite has no ON UPDATE, column comments or per-table key names: nothing to compare
there (Django's `auto_now` stamps ORM saves on both).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_COLUMN_LINE = re.compile(r"^\s*`((?:[^`]|``)+)`\s+(.*?),?\s*$")


@dataclass(frozen=True)
class Difference:
    table: str
    text: str  # one line for the operator
    sql: str  # the statement that repairs it
    params: tuple = ()

    def __str__(self):
        return f"{self.table}: {self.text}"


def _quote(connection, name):
    return connection.ops.quote_name(name)


def base_table_of(model):
    base = getattr(model, "_shard_base", None)
    return base._meta.db_table if base is not None else None


def _exists(cursor, table):
    cursor.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s",
        [table],
    )
    return cursor.fetchone() is not None


def column_definitions(cursor, connection, table):
    """{column: its definition as SHOW CREATE TABLE prints it, without the name}."""
    cursor.execute(f"SHOW CREATE TABLE {_quote(connection, table)}")
    text = cursor.fetchone()[1]
    result = {}
    for line in text.splitlines()[1:]:
        match = _COLUMN_LINE.match(line)
        if match:
            result[match.group(1).replace("``", "`")] = match.group(2)
    return result


def table_comment(cursor, table):
    cursor.execute(
        "SELECT table_comment FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s",
        [table],
    )
    row = cursor.fetchone()
    return row[0] if row else ""


def keys(cursor, table):
    """{(unique, (columns...)): index name} of a table, the primary key included."""
    cursor.execute(
        "SELECT index_name, non_unique, column_name, seq_in_index FROM information_schema.statistics "
        "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY index_name, seq_in_index",
        [table],
    )
    columns: dict[str, list[str]] = {}
    unique: dict[str, bool] = {}
    for name, non_unique, column, _seq in cursor.fetchall():
        columns.setdefault(name, []).append(column)
        unique[name] = not int(non_unique)
    return {(unique[name], tuple(cols)): name for name, cols in columns.items()}


def differences(model, connection, table=None):
    """What differs between a shard table and its base table, each with its repair.

    `table`: the physical table to compare, when it is not the model's own (a new shard is
    built and aligned under a scratch name before it gets its final one, see ddl.create_shard).
    """
    if connection.vendor != "mysql":
        return []
    base_table = base_table_of(model)
    table = table or model._meta.db_table
    if not base_table or base_table == table:
        return []
    found = []
    with connection.cursor() as cursor:
        if not _exists(cursor, base_table) or not _exists(cursor, table):
            return []
        base_columns = column_definitions(cursor, connection, base_table)
        shard_columns = column_definitions(cursor, connection, table)
        model_columns = {f.column for f in model._meta.local_fields}
        for column, definition in base_columns.items():
            if column not in shard_columns or column not in model_columns:
                continue  # a missing column is added from the model (ddl.sync_schema)
            if shard_columns[column] != definition:
                found.append(Difference(
                    table, f"column {column} is `{shard_columns[column]}`, the base has `{definition}`",
                    f"ALTER TABLE {_quote(connection, table)} MODIFY {_quote(connection, column)} {definition}",
                ))
        base_comment, shard_comment = table_comment(cursor, base_table), table_comment(cursor, table)
        if base_comment != shard_comment:
            found.append(Difference(
                table, f"table comment is {shard_comment!r}, the base has {base_comment!r}",
                f"ALTER TABLE {_quote(connection, table)} COMMENT = %s", (base_comment,),
            ))
        base_keys, shard_keys = keys(cursor, base_table), keys(cursor, table)
        shard_names = set(shard_keys.values())
        for (unique, columns), name in sorted(base_keys.items(), key=lambda kv: kv[1]):
            if (unique, columns) in shard_keys or name == "PRIMARY":
                continue
            if not set(columns) <= set(shard_columns):
                continue
            if unique and (False, columns) in shard_keys:
                text = f"key ({', '.join(columns)}) is not unique, the base's {name} is"
            else:
                text = f"missing the base's {'unique ' if unique else ''}key {name} ({', '.join(columns)})"
            new_name = name if name not in shard_names else f"{name}_b"
            cols = ", ".join(_quote(connection, c) for c in columns)
            found.append(Difference(
                table, text,
                f"ALTER TABLE {_quote(connection, table)} ADD {'UNIQUE ' if unique else ''}KEY "
                f"{_quote(connection, new_name)} ({cols})",
            ))
    return found


def align(model, connection, apply=True, table=None):
    """Report (and with apply=True repair) the differences; returns them as text lines.

    On a Galera cluster every repair is an ALTER TABLE replicated in total order, which
    brute-force aborts the open transactions touching the table or one of the tables its
    foreign keys point at: new shards are therefore aligned before anyone can use them (under
    a scratch name, `table`), and only `shards sync-schema` aligns tables in use."""
    found = differences(model, connection, table=table)
    if apply and found:
        with connection.cursor() as cursor:
            for difference in found:
                cursor.execute(difference.sql, list(difference.params) or None)
    return [str(d) for d in found]
