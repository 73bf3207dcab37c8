"""Shard DDL on SQLite and MySQL/MariaDB: create (safely under concurrent writers), drop,
row estimates, the cold row format and schema sync (exports and restores: exports.py)."""
import hashlib
import logging
import threading
import time
from contextlib import contextmanager

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connections, transaction
from django.utils import timezone

from wework.db.backends import crosses_databases
from wework.db import galera
from wework.db.errors import error_code
from wework.db.layout import alias_for_app, alias_for_model

from . import builder, create_table
from .exceptions import ShardMissing
from .models import ShardState

log = logging.getLogger("wework.shards")

ER_TABLE_EXISTS = 1050
ER_NO_SUCH_TABLE = 1146


def is_missing_table_error(exc):
    """True when a database error says a table does not exist (MySQL 1146, SQLite text)."""
    if error_code(exc) == ER_NO_SUCH_TABLE:
        return True
    return "no such table" in str(exc).lower()

_known = {}  # table -> monotonic time it was last seen present (positive cache, short TTL)
_known_lock = threading.Lock()
KNOWN_TTL = 300


def alias_of_table(table):
    """The database alias of a shard table: its base model's (wework.db.layout); "default"
    for a table no shard configuration names."""
    from . import conf

    best = None
    for config in conf.all_configs().values():
        try:
            base = config.model
        except LookupError:
            continue
        prefix = base._meta.db_table + "_"
        if table.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, base)
    if best is None:
        return DEFAULT_DB_ALIAS
    return alias_for_model(best[1])


def _conn(using=None, table=None, model=None):
    """The connection of `using`, else of the model's or table's alias (per-module databases),
    else "default"."""
    if using is None and model is not None:
        using = alias_for_model(model)
    if using is None and table is not None:
        using = alias_of_table(table)
    return connections[using or DEFAULT_DB_ALIAS]


def registry_alias():
    """The alias of the central shard registry (`shard_tables`, `shard_locks`): the accounts
    module's database, with the platform's own tables (wework.db.layout)."""
    return alias_for_app("shards")


def read_schema(connection, read):
    """`read(cursor)`, again when it was aborted as a deadlock (1213), outside a transaction.

    On a Galera cluster a query on information_schema that opens tables (a join over
    key_column_usage and table_constraints, Django's `get_constraints`) holds a metadata lock on
    each of them while it reads, and a DDL on any of those tables, run by another connection
    in total-order isolation, brute-force aborts the query. A read changes nothing: it runs
    again. Inside a transaction the abort has rolled the whole transaction back already: the
    error goes to the caller.
    """
    attempts = 1 if connection.in_atomic_block or connection.vendor != "mysql" else create_table.DDL_ABORT_RETRIES
    for attempt in range(attempts):
        try:
            with connection.cursor() as cursor:
                return read(cursor)
        except DatabaseError as exc:
            if error_code(exc) != create_table.ER_LOCK_DEADLOCK or attempt == attempts - 1:
                raise
            log.warning("a schema read was aborted by another connection's DDL; reading again")
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def table_exists(table, connection=None):
    connection = connection or _conn(table=table)
    return read_schema(connection, lambda cursor: _table_exists(cursor, connection, table))


def _table_exists(cursor, connection, table):
    if connection.vendor == "mysql":
        cursor.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s",
            [table],
        )
    else:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = %s", [table])
    return cursor.fetchone() is not None


def remember(table):
    with _known_lock:
        _known[table] = time.monotonic()


def forget(table=None):
    with _known_lock:
        if table is None:
            _known.clear()
        else:
            _known.pop(table, None)


def is_known(table):
    with _known_lock:
        seen = _known.get(table)
    return seen is not None and time.monotonic() - seen < KNOWN_TTL


DDL_LOCK_WAIT_SECONDS = 30


@contextmanager
def dedicated_connection(using=None):
    """A new connection of its own (MySQL/MariaDB): autocommit, no transaction, no locks, closed
    after the block.

    Shard DDL runs here rather than on the caller's connection: DDL commits implicitly, so the
    caller's transaction (when it has one) stays intact, and on a Galera cluster the connection
    that runs DDL in total-order isolation holds nothing else (no GET_LOCK, no transaction).
    """
    alias = _conn(using).alias
    other = connections.create_connection(alias)
    try:
        # A DDL that waits for a metadata lock held by the caller's own transaction would
        # wait forever (lock_wait_timeout defaults to a year): fail loudly instead.
        with other.cursor() as cursor:
            cursor.execute("SET SESSION lock_wait_timeout = %s", [DDL_LOCK_WAIT_SECONDS])
        yield other
    finally:
        other.close()


@contextmanager
def ddl_connection(using=None):
    """A connection where DDL does not commit the caller's work.

    MySQL/MariaDB commit implicitly on DDL: a dedicated connection is used (see
    `dedicated_connection`). SQLite's DDL is transactional and its writers are serialised, so
    the caller's own connection is used (the table then commits or rolls back with the
    caller's transaction).
    """
    connection = _conn(using)
    if connection.vendor == "mysql":
        with dedicated_connection(using) as other:
            yield other
    else:
        yield connection


@contextmanager
def named_lock(connection, name, timeout=60):
    """A cross-process lock for creating one table (MySQL GET_LOCK; SQLite: its write lock)."""
    if connection.vendor != "mysql":
        with transaction.atomic(using=connection.alias):
            yield
        return
    # GET_LOCK names are server-wide: the database name keeps databases apart.
    digest = hashlib.sha1(f"{connection.settings_dict['NAME']}:{name}".encode()).hexdigest()
    key = f"wework_shard:{digest}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, %s)", [key, timeout])
        got = cursor.fetchone()[0]
        if got != 1:
            cursor.execute("SELECT IS_USED_LOCK(%s), CONNECTION_ID()", [key])
            log.error("GET_LOCK %s returned %r; holder/me %r", key, got, cursor.fetchone())
            raise TimeoutError(f"Could not lock {name} for creation within {timeout} s.")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT RELEASE_LOCK(%s)", [key])


def run_schema(connection, operation):
    """Run `operation(editor)` with a schema editor that also works inside an atomic block.

    Django's SQLite schema editor refuses to open inside a transaction because *some* table
    rebuilds need foreign key checks off; creating and dropping tables and adding nullable columns
    do not, so the editor is driven by hand (its deferred SQL included).
    """
    editor = connection.schema_editor(atomic=False)
    editor.deferred_sql = []
    operation(editor)
    for sql in editor.deferred_sql:
        editor.execute(sql)


def missing_foreign_keys(model, connection):
    """FK fields of the model whose constraint is missing from its table."""
    if connection.vendor != "mysql":  # SQLite declares them inline in CREATE TABLE
        return []
    constraints = read_schema(
        connection, lambda cursor: connection.introspection.get_constraints(cursor, model._meta.db_table))
    present = {tuple(c["columns"]) for c in constraints.values() if c.get("foreign_key")}
    return [
        f for f in model._meta.local_fields
        if f.is_relation and f.db_constraint and (f.column,) not in present
        and not crosses_databases(model, f)
    ]


def _registry_upsert(connection, values):
    """Insert the registry row for a new table (or revive a dropped one) on `connection`."""
    ops = connection.ops
    now = ops.adapt_datetimefield_value(timezone.now())
    cols = dict(values)
    for key in ("period_start", "period_end"):
        if cols.get(key) is not None:
            cols[key] = ops.adapt_datetimefield_value(cols[key])
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, state FROM shard_tables WHERE table_name = %s", [cols["table_name"]])
        row = cursor.fetchone()
        if row is None:
            cols.update(created_at=now, updated_at=now)
            for key in ("export_path", "export_sha256", "export_host", "schema_hash"):
                cols.setdefault(key, "")
            names = ", ".join(connection.ops.quote_name(c) for c in cols)
            marks = ", ".join(["%s"] * len(cols))
            try:
                cursor.execute(f"INSERT INTO shard_tables ({names}) VALUES ({marks})", list(cols.values()))
            except IntegrityError:
                # Registered meanwhile by a writer on another Galera node (see create_shard).
                if connection.in_atomic_block:
                    raise
        elif row[1] == ShardState.DROPPED:
            cursor.execute(
                "UPDATE shard_tables SET state = %s, dropped_at = NULL, created_by_tool = %s, "
                "schema_hash = %s, updated_at = %s WHERE id = %s",
                [ShardState.HOT, True, cols.get("schema_hash", ""), now, row[0]],
            )


def create_shard(model, registry_values, using=None, cold=False):
    """Create the shard table of `model` unless it exists; upsert its registry row.

    Safe under concurrent writers: the existence check and CREATE run under a lock. Returns
    True when this call created the table. `cold`: created in SHARDING_COLD_ROW_FORMAT
    (MySQL/MariaDB; a restored shard), so that no ALTER TABLE has to rebuild it later.
    """
    using = using or alias_for_model(model)
    if _conn(using).vendor == "mysql":
        return _create_shard_mysql(model, registry_values, using, cold=cold)
    table = model._meta.db_table
    created = False
    # SQLite: in the caller's connection and transaction (its DDL is transactional).
    connection = _conn(using)
    with named_lock(connection, table):
        if not table_exists(table, connection):
            run_schema(connection, lambda editor: editor.create_model(model))
            created = True
            log.info("created shard table %s", table)
        values = dict(registry_values)
        values["schema_hash"] = builder.schema_fingerprint(model, connection)
        if registry_alias() == using:
            _registry_upsert(connection, values)
        else:
            # Per-module databases: the central registry is on another alias.
            _registry_upsert(_conn(registry_alias()), values)
    if connection.in_atomic_block:
        # The table and its registry row commit (or roll back) with the caller's work.
        transaction.on_commit(lambda: remember(table), using=connection.alias)
    else:
        remember(table)
    return created


def _create_shard_mysql(model, registry_values, using=None, cold=False):
    """MySQL/MariaDB, Galera included. Nothing here can abort or wait for another connection's
    transaction, the caller's own included:

    - the lock (GET_LOCK) is held by one dedicated connection and the DDL and the registry
      row are written by another (`dedicated_connection`): autocommit, holding nothing else,
      so the DDL commits none of the caller's work, and the DDL connection holds no lock that
      a Galera total-order DDL could conflict with;
    - the table is created by one CREATE TABLE with its keys, foreign keys, comments and
      aligned columns (`create_table`): no ALTER TABLE ever runs on a shard that someone may
      be using, nor on one whose foreign keys point at tables other transactions are writing
      (on Galera such an ALTER brute-force aborts them with 1213; on a single server it waits
      for them). The foreign keys are there from the start, also when the caller is inside a
      transaction (an inline FOREIGN KEY needs no lock on the parent its transaction wrote).
    """
    table = model._meta.db_table
    created = False
    with dedicated_connection(using) as lock_connection, named_lock(lock_connection, table):
        with dedicated_connection(using) as connection:
            if not table_exists(table, connection):
                try:
                    create_table.create(model, connection,
                                        options=cold_format_option() if cold else None)
                    created = True
                    log.info("created shard table %s", table)
                except DatabaseError as exc:
                    # GET_LOCK is per server: on a Galera cluster written through more than one
                    # node, another node's CREATE (replicated in total order) may come first.
                    if error_code(exc) != ER_TABLE_EXISTS:
                        raise
                    log.info("shard table %s was created by another writer", table)
            values = dict(registry_values)
            values["schema_hash"] = builder.schema_fingerprint(model, connection)
            for attempt in range(create_table.DDL_ABORT_RETRIES):
                try:
                    # Autocommit and idempotent (it reads the row first): run again when it
                    # lost a certification conflict to another node's upsert (1213).
                    if registry_alias() == using:
                        _registry_upsert(connection, values)
                    else:
                        # Per-module databases: the central registry is on another alias,
                        # written the same way (outside the caller's transaction).
                        with dedicated_connection(registry_alias()) as registry:
                            _registry_upsert(registry, values)
                    break
                except DatabaseError as exc:
                    if error_code(exc) != create_table.ER_LOCK_DEADLOCK or \
                            attempt == create_table.DDL_ABORT_RETRIES - 1:
                        raise
                    time.sleep(0.1 * (attempt + 1))
            visible_to_caller(table, using, creator=connection)
    remember(table)
    return created


def visible_to_caller(table, using, creator=None):
    """Make sure the caller's own connection sees `table`, created (or found) on a dedicated
    connection. On one server it does. On a Galera cluster the two connections can be on two
    nodes (see wework/db/galera.py), and the caller's node may apply the CREATE a moment
    later: the caller's next INSERT would fail with "table doesn't exist". A causal read waits
    for that node to apply it; it runs only when the table is missing there, so only then
    does it cost a cluster round trip."""
    connection = _conn(using)
    if table_exists(table, connection):
        return
    if galera.is_galera(connection):
        log.warning("shard table %s is not yet applied on this connection's Galera node (%s; "
                    "created through %s); waiting for the node to apply it", table,
                    galera.node_name(connection), galera.node_name(creator) if creator else "?")
        with galera.causal_reads(connection):
            if table_exists(table, connection):
                return
    raise ShardMissing(f"The shard {table} was created but this connection does not see it.")


def drop_table(model, using=None):
    table = model._meta.db_table
    connection = _conn(using, model=model)
    if table_exists(table, connection):
        if connection.vendor == "mysql":
            # One statement, run again when Galera aborted it (create_table.execute_ddl).
            with connection.cursor() as cursor:
                create_table.execute_ddl(cursor, f"DROP TABLE IF EXISTS {connection.ops.quote_name(table)}")
        else:
            run_schema(connection, lambda editor: editor.delete_model(model))
        log.info("dropped shard table %s", table)
    forget(table)
    builder.forget(table)


def referencing_tables(table, using=None):
    """Tables with a FOREIGN KEY pointing at `table` (MySQL/MariaDB; SQLite: none known)."""
    connection = _conn(using, table=table)
    if connection.vendor != "mysql":
        return []

    def read(cursor):
        # `table_schema = DATABASE()` keeps the scan in this database: without it the server
        # opens the tables of every database, and a Galera DDL in any of them (another
        # platform, another test worker) aborts this read with 1213.
        cursor.execute(
            "SELECT DISTINCT table_name FROM information_schema.key_column_usage "
            "WHERE table_schema = DATABASE() AND referenced_table_schema = DATABASE() "
            "AND referenced_table_name = %s",
            [table],
        )
        return [r[0] for r in cursor.fetchall()]

    return read_schema(connection, read)


def row_estimate(table, using=None):
    """Rows of a table: the InnoDB estimate on MySQL (no scan); an exact count on SQLite."""
    connection = _conn(using, table=table)
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(
                "SELECT table_rows FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s",
                [table],
            )
            row = cursor.fetchone()
            return int(row[0] or 0) if row else None
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
        return int(cursor.fetchone()[0])


COLD_ROW_FORMATS = {"COMPRESSED", "DYNAMIC", "COMPACT", "REDUNDANT", "PAGE_COMPRESSED"}


def row_format(table, using=None):
    """The table's row format on MySQL/MariaDB ('Compressed', 'Dynamic', ...); None elsewhere."""
    connection = _conn(using, table=table)
    if connection.vendor != "mysql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT row_format, create_options FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = %s", [table])
        row = cursor.fetchone()
    if not row:
        return None
    if "page_compressed" in (row[1] or "").lower():
        return "Page_compressed"
    return row[0]


def cold_format_option():
    """The table option of SHARDING_COLD_ROW_FORMAT (`ROW_FORMAT = COMPRESSED`), or None."""
    wanted = (getattr(settings, "SHARDING_COLD_ROW_FORMAT", "") or "").strip().upper()
    if not wanted:
        return None
    if wanted not in COLD_ROW_FORMATS:
        raise ValueError(f"SHARDING_COLD_ROW_FORMAT must be one of {', '.join(sorted(COLD_ROW_FORMATS))}.")
    return "PAGE_COMPRESSED = 1" if wanted == "PAGE_COMPRESSED" else f"ROW_FORMAT = {wanted}"


def to_cold_format(table, using=None):
    """Rebuild a table in SHARDING_COLD_ROW_FORMAT (MySQL/MariaDB); returns the format used.

    COMPRESSED (the default) is InnoDB's zlib-compressed pages: reads decompress pages in the
    buffer pool, the table stays queryable as before. The rebuild runs in place without
    blocking reads or writes when the server allows it (LOCK=NONE), else with the default lock.
    On a Galera cluster this ALTER TABLE brute-force aborts the open transactions that touch
    the table or the tables its foreign keys point at (see docs/shards.md, "Galera"): the
    rotation step that runs it is repeated when it is aborted itself, and a restored shard is
    created in the cold format directly (create_shard(cold=True)) instead.
    """
    connection = _conn(using, table=table)
    option = cold_format_option()
    if option is None or connection.vendor != "mysql":
        return None
    wanted = (getattr(settings, "SHARDING_COLD_ROW_FORMAT", "") or "").strip().upper()
    current = (row_format(table, using) or "").upper()
    if current == wanted:
        return current
    quoted = connection.ops.quote_name(table)
    with connection.cursor() as cursor:
        try:
            create_table.execute_ddl(cursor, f"ALTER TABLE {quoted} {option}, ALGORITHM = INPLACE, LOCK = NONE")
        except DatabaseError:
            create_table.execute_ddl(cursor, f"ALTER TABLE {quoted} {option}")
    log.info("rebuilt %s with %s", table, option)
    return wanted


def sync_schema(model, apply=True, using=None):
    """Add the model's missing columns, indexes and constraints to its table.

    Returns a list of human-readable changes (or, with apply=False, of what is missing). Columns
    present in the table but not in the model are reported and left alone.
    """
    from wework.db.models import physical_name

    connection = _conn(using, model=model)
    table = model._meta.db_table
    changes = []
    columns, existing = read_schema(connection, lambda cursor: (
        {c.name for c in connection.introspection.get_table_description(cursor, table)},
        set(connection.introspection.get_constraints(cursor, table)),
    ))
    missing_fields = [f for f in model._meta.local_fields if f.column not in columns]
    missing_indexes = [
        i for i in model._meta.indexes if physical_name(i.name, table, connection) not in existing
    ]
    missing_constraints = [
        c for c in model._meta.constraints
        if physical_name(c.name, table, connection) not in existing and c.name not in existing
    ]
    missing_fks = [f for f in missing_foreign_keys(model, connection) if f not in missing_fields]
    for field in missing_fields:
        changes.append(f"{table}: add column {field.column}")
    for field in missing_fks:
        changes.append(f"{table}: add foreign key {field.column}")
    for index in missing_indexes:
        changes.append(f"{table}: add index {index.name}")
    for constraint in missing_constraints:
        changes.append(f"{table}: add constraint {constraint.name}")
    model_columns = {f.column for f in model._meta.local_fields}
    for extra in sorted(columns - model_columns):
        changes.append(f"{table}: column {extra} is not in the model (left in place)")
    if apply and (missing_fields or missing_indexes or missing_constraints or missing_fks):
        with connection.schema_editor(atomic=connection.features.can_rollback_ddl) as editor:
            for field in missing_fields:
                editor.add_field(model, field)
            for index in missing_indexes:
                editor.add_index(model, index)
            for constraint in missing_constraints:
                editor.add_constraint(model, constraint)
            for field in missing_fks:
                editor.execute(editor._create_fk_sql(model, field, "_fk_%(to_table)s_%(to_column)s"))
        for change in changes:
            log.info("sync-schema %s", change)
    return changes
