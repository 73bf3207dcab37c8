"""A new shard table in one CREATE TABLE statement (MySQL/MariaDB).

Django's schema editor creates a table with a CREATE TABLE followed by ALTER TABLE ... COMMENT,
CREATE INDEX and ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY, and the shard layer then aligns
the table with its base (`fidelity.align`: more ALTER TABLEs). On a Galera cluster every one of
those statements runs in total-order isolation (TOI), and an ALTER TABLE (CREATE INDEX and ADD
FOREIGN KEY included) of a table with foreign keys brute-force aborts every open transaction on
the node that holds a metadata lock on the table *or on a table its foreign keys point at*: a
request that had just inserted a user, an account or an instance failed with 1213 (on a single
MariaDB server the same ALTER waits for that transaction instead). A CREATE TABLE that declares
its foreign keys inline aborts nobody, and nobody can hold a lock on a table that does not exist
yet.

So the shard is built and aligned under a scratch name first, without its foreign keys (nobody
knows that name, and a table without foreign keys locks no other table), its definition is read
back with SHOW CREATE TABLE, the scratch table is dropped, and the shard is created under its
own name by one CREATE TABLE with the foreign keys added inline. The result is the table the
schema editor and `fidelity.align` would have made, foreign keys included, and it appears
complete: no writer ever meets a half-aligned shard.
"""
from __future__ import annotations

import logging
import re
import time
import uuid

from django.db import DatabaseError
from django.db.backends.ddl_references import Statement

from wework.db.errors import error_code

from . import fidelity

log = logging.getLogger("wework.shards")

ER_LOCK_DEADLOCK = 1213
DDL_ABORT_RETRIES = 3

#: Django's `ALTER TABLE t ADD CONSTRAINT name FOREIGN KEY ...`: the clause after ADD.
_ADD_CONSTRAINT = re.compile(r"^ALTER TABLE \S+ ADD (CONSTRAINT .+)$", re.S)


def execute_ddl(cursor, sql, params=None):
    """Run one DDL statement; again when it was aborted as a deadlock (1213). On a Galera
    cluster a DDL statement in total-order isolation can lose to another one or to a
    replicated write (the DDL of another worker, InnoDB's statistics rows they share); a DDL
    statement that failed changed nothing (MariaDB's DDL is atomic), so running it again is
    safe, and one that did run before its error was reported fails again with a clear error
    (table exists, unknown table) that the callers handle."""
    for attempt in range(DDL_ABORT_RETRIES):
        try:
            return cursor.execute(sql, params)
        except DatabaseError as exc:
            if error_code(exc) != ER_LOCK_DEADLOCK or attempt == DDL_ABORT_RETRIES - 1:
                raise
            log.warning("DDL aborted as a deadlock; running it again: %s", sql[:120])
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def scratch_name(table):
    """A name nobody else uses, within MySQL's 64 characters; never a shard name (the shard
    patterns end with the period or instance suffix)."""
    return f"{table[:44]}__new_{uuid.uuid4().hex[:12]}"


def statements(model, connection):
    """(statements without foreign keys, inline FOREIGN KEY clauses) of the model's table."""
    editor = connection.schema_editor(collect_sql=True, atomic=False)
    editor.deferred_sql = []
    editor.create_model(model)
    plain = [sql.rstrip().rstrip(";") for sql in editor.collected_sql]
    foreign_keys = []
    for sql in editor.deferred_sql:
        if isinstance(sql, Statement) and sql.template == editor.sql_create_fk:
            match = _ADD_CONSTRAINT.match(str(sql))
            if match is None:  # a template this module does not know: refuse, never guess
                raise ValueError(f"Unexpected foreign key statement: {sql}")
            foreign_keys.append(match.group(1))
        else:
            plain.append(str(sql))
    return plain, foreign_keys


def definition(model, connection, options=None):
    """The complete CREATE TABLE statement of the model's shard, aligned with its base table;
    `options`: table options to add (`ROW_FORMAT = COMPRESSED`)."""
    table = model._meta.db_table
    quote = connection.ops.quote_name
    scratch = scratch_name(table)
    plain, foreign_keys = statements(model, connection)
    with connection.cursor() as cursor:
        try:
            for sql in plain:
                execute_ddl(cursor, sql.replace(quote(table), quote(scratch)))
            for difference in fidelity.differences(model, connection, table=scratch):
                execute_ddl(cursor, difference.sql, list(difference.params) or None)
            if options:
                execute_ddl(cursor, f"ALTER TABLE {quote(scratch)} {options}")
            cursor.execute(f"SHOW CREATE TABLE {quote(scratch)}")
            text = cursor.fetchone()[1]
        finally:
            execute_ddl(cursor, f"DROP TABLE IF EXISTS {quote(scratch)}")
    head = f"CREATE TABLE {quote(scratch)} "
    if not text.startswith(head):
        raise ValueError(f"Unexpected SHOW CREATE TABLE output for {scratch}: {text[:80]}")
    text = f"CREATE TABLE {quote(table)} " + text[len(head):]
    if foreign_keys:
        columns, options = text.rsplit("\n)", 1)
        text = columns + ",\n  " + ",\n  ".join(foreign_keys) + "\n)" + options
    return text


def create(model, connection, options=None):
    """Create the model's shard table in one statement (ER_TABLE_EXISTS when it exists)."""
    sql = definition(model, connection, options=options)
    with connection.cursor() as cursor:
        execute_ddl(cursor, sql)
