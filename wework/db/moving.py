"""Moving one module's tables to another database (docs/schema.md, "Moving a module").

An existing deployment that starts with one database moves a module out (the messaging
module's month shards to their own server, say) and then sets `DATABASE_URL_<MODULE>` to the
new place. The move is made while the platform is stopped:

1. the plan: the module's tables (its apps' models, their many-to-many tables and every shard
   table of the registry that exists), the foreign keys that would cross the two databases
   (they are dropped: references across databases are constraint-free, see `references`), and
   the method;
2. `rename` when the target is a database of the same server: one `RENAME TABLE` statement moves
   every table at once (atomic, no row is copied); `copy` otherwise (or when asked): each table
   is created on the target from `SHOW CREATE TABLE`, its rows copied in keyset pages by primary
   key, and its `CHECKSUM TABLE` compared on both sides before anything is dropped;
3. the target's `django_migrations` receives the source's rows, so `migrate_all` on the new
   layout finds every migration applied.

Refused with a sentence (MoveError): a database other than MariaDB/MySQL, the accounts module
(it holds the platform's own tables: use scripts/backup for the whole database), a target that
already holds one of the tables, the source itself, and other connections still using the
source database (the platform is running) unless forced.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import MySQLdb
from django.apps import apps
from django.db import connections
from environ import Env

from wework.errors import DomainError

from .layout import MODULES, alias_for_app, module_of

PAGE_ROWS = 5_000


class MoveError(DomainError):
    code = "move_refused"


@dataclass
class Endpoint:
    """A database: how to connect, and its name."""

    host: str
    port: int
    user: str
    password: str
    name: str

    @classmethod
    def from_settings(cls, settings: dict) -> Endpoint:
        return cls(host=settings.get("HOST") or "127.0.0.1", port=int(settings.get("PORT") or 3306),
                   user=settings.get("USER") or "", password=settings.get("PASSWORD") or "",
                   name=settings["NAME"])

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        try:
            config = Env.db_url_config(url)
        except Exception as exc:  # django-environ raises several kinds for a bad URL
            raise MoveError(f"The target {url!r} is not a database URL ({exc}).") from exc
        if config.get("ENGINE") != "django.db.backends.mysql" or not config.get("NAME"):
            raise MoveError(f"The target {url!r} is not a MariaDB/MySQL database URL "
                            "(mysql://user:password@host:port/name).")
        return cls.from_settings(config)

    def same_server(self, other: Endpoint) -> bool:
        local = {"127.0.0.1", "localhost"}
        host_a = "localhost" if self.host in local else self.host
        host_b = "localhost" if other.host in local else other.host
        return (host_a, self.port) == (host_b, other.port)

    def connect(self, database: bool = True):
        conn = MySQLdb.connect(host=self.host, port=self.port, user=self.user, passwd=self.password,
                               db=self.name if database else "", charset="utf8mb4", autocommit=True)
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION max_statement_time = 0")  # copies and checksums take long
        return conn

    def __str__(self) -> str:
        return f"{self.host}:{self.port}/{self.name}"


@dataclass
class MovePlan:
    module: str
    source: Endpoint
    target: Endpoint
    method: str  # "rename" or "copy"
    tables: list[str]
    crossing_keys: list[tuple[str, str]]  # (table, constraint) dropped before the move
    other_connections: int
    notes: list[str] = field(default_factory=list)


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def module_tables(module: str, shard_tables: Iterable[str] = ()) -> list[str]:
    """The tables of `module`: its apps' concrete models, their auto-created many-to-many
    tables, and `shard_tables` (the caller's list of the module's shard tables)."""
    tables: list[str] = []
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if not meta.managed or meta.proxy or module_of(meta.app_label) != module:
            continue
        if meta.db_table not in tables:
            tables.append(meta.db_table)
    tables.extend(t for t in shard_tables if t not in tables)
    return tables


def plan(module: str, target_url: str, shard_tables: Iterable[str] = (), method: str | None = None) -> MovePlan:
    """What a move of `module` to `target_url` would do (nothing is changed)."""
    if module not in MODULES:
        raise MoveError(f"Unknown module {module!r}: one of {', '.join(MODULES)}.")
    if module == "accounts":
        raise MoveError("The accounts module holds the platform's own tables (users, permissions, the "
                        "shard registry): it stays with DATABASE_URL; move the other modules, or back "
                        "up and restore the whole database (scripts/backup).")
    app_label = next(m._meta.app_label for m in apps.get_models() if module_of(m._meta.app_label) == module)
    alias = alias_for_app(app_label)
    settings = connections[alias].settings_dict
    if connections[alias].vendor != "mysql":
        raise MoveError("Moving a module needs MariaDB/MySQL; the embedded SQLite database is one file "
                        "(copy it instead).")
    source = Endpoint.from_settings(settings)
    target = Endpoint.from_url(target_url)
    same = source.same_server(target)
    if same and source.name == target.name:
        raise MoveError(f"The module {module} is already in {target}.")
    if method not in (None, "rename", "copy"):
        raise MoveError(f"Unknown method {method!r}: rename or copy.")
    if method == "rename" and not same:
        raise MoveError(f"RENAME TABLE moves tables within one server only; {target} is on another server "
                        "(use the copy method).")
    chosen = method or ("rename" if same else "copy")

    # This process's own connections do not count as "the platform is running".
    connections.close_all()
    with source.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                       "AND table_type = 'BASE TABLE'", [source.name])
        present = {row[0] for row in cursor.fetchall()}
        tables = [t for t in module_tables(module, shard_tables) if t in present]
        if not tables:
            raise MoveError(f"No table of the module {module} was found in {source}.")
        crossing = _crossing_keys(cursor, source.name, set(tables))
        cursor.execute("SELECT COUNT(*) FROM information_schema.processlist "
                       "WHERE db = %s AND id <> CONNECTION_ID()", [source.name])
        others = int(cursor.fetchone()[0])
    try:
        with target.connect(database=False) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                           [target.name])
            clashing = sorted({row[0] for row in cursor.fetchall()} & set(tables))
    except MySQLdb.OperationalError as exc:
        raise MoveError(f"The target server {target.host}:{target.port} cannot be reached ({exc.args[-1]}).") from exc
    if clashing:
        raise MoveError(f"The target {target} already holds {len(clashing)} of the tables "
                        f"({', '.join(clashing[:5])}{'...' if len(clashing) > 5 else ''}): "
                        "move into an empty database.")
    return MovePlan(module=module, source=source, target=target, method=chosen, tables=tables,
                    crossing_keys=crossing, other_connections=others)


def _crossing_keys(cursor, schema: str, moving: set[str]) -> list[tuple[str, str]]:
    """Foreign keys between a moving table and one that stays (either direction)."""
    cursor.execute(
        "SELECT DISTINCT table_name, constraint_name, referenced_table_name "
        "FROM information_schema.key_column_usage WHERE table_schema = %s "
        "AND referenced_table_schema = %s AND referenced_table_name IS NOT NULL", [schema, schema])
    return sorted((table, name) for table, name, referenced in cursor.fetchall()
                  if (table in moving) != (referenced in moving))


def execute(move: MovePlan, *, force: bool = False, drop_source: bool = True,
            progress: Callable[[str], None] = lambda line: None) -> dict:
    """Make the move; returns {"tables": n, "rows": copied rows (copy), "dropped_keys": n}."""
    if move.other_connections and not force:
        raise MoveError(f"{move.other_connections} other connection(s) use the database {move.source}: "
                        "stop the platform's web, workers and beat first (or pass --force).")
    with move.target.connect(database=False) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {_q(move.target.name)} "
                       "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    with move.source.connect() as source:
        with source.cursor() as cursor:
            for table, constraint in move.crossing_keys:
                cursor.execute(f"ALTER TABLE {_q(table)} DROP FOREIGN KEY {_q(constraint)}")
            if move.crossing_keys:
                progress(f"{len(move.crossing_keys)} foreign keys across the two databases dropped")
        rows = 0
        if move.method == "rename":
            pairs = ", ".join(f"{_q(move.source.name)}.{_q(t)} TO {_q(move.target.name)}.{_q(t)}"
                              for t in move.tables)
            with source.cursor() as cursor:
                cursor.execute(f"RENAME TABLE {pairs}")
            progress(f"{len(move.tables)} tables renamed into {move.target}")
        else:
            with move.target.connect() as target:
                created: list[str] = []
                try:
                    for table in move.tables:
                        created.append(table)
                        rows += _copy_table(source, target, table)
                        progress(f"{table}: copied and checksummed")
                except BaseException:
                    # The source is whole; the partial copy goes, so that the move can run again.
                    with target.cursor() as cursor:
                        cursor.execute("SET SESSION foreign_key_checks = 0")
                        for table in created:
                            cursor.execute(f"DROP TABLE IF EXISTS {_q(table)}")
                    raise
                if drop_source:
                    with source.cursor() as cursor:
                        cursor.execute("SET SESSION foreign_key_checks = 0")
                        for table in move.tables:
                            cursor.execute(f"DROP TABLE {_q(table)}")
                    progress(f"{len(move.tables)} tables dropped in {move.source}")
        with move.target.connect() as target:
            _copy_migration_records(source, target)
    return {"tables": len(move.tables), "rows": rows, "dropped_keys": len(move.crossing_keys)}


def _primary_key(cursor, table: str) -> list[str]:
    cursor.execute(f"SHOW KEYS FROM {_q(table)} WHERE Key_name = 'PRIMARY'")
    return [row[4] for row in sorted(cursor.fetchall(), key=lambda r: r[3])]


def _copy_table(source, target, table: str) -> int:
    with source.cursor() as cursor:
        cursor.execute(f"SHOW CREATE TABLE {_q(table)}")
        ddl = cursor.fetchone()[1]
        key = _primary_key(cursor, table)
    if len(key) != 1:
        raise MoveError(f"The table {table} has no single-column primary key; it cannot be copied in pages.")
    # AUTO_INCREMENT carries over with the DDL; the rows keep their ids.
    with target.cursor() as cursor:
        cursor.execute("SET SESSION foreign_key_checks = 0")
        cursor.execute(ddl)
    pk = _q(key[0])
    copied, last = 0, None
    with source.cursor() as read, target.cursor() as write:
        while True:
            if last is None:
                read.execute(f"SELECT * FROM {_q(table)} ORDER BY {pk} LIMIT %s", [PAGE_ROWS])
            else:
                read.execute(f"SELECT * FROM {_q(table)} WHERE {pk} > %s ORDER BY {pk} LIMIT %s", [last, PAGE_ROWS])
            page = read.fetchall()
            if not page:
                break
            columns = [d[0] for d in read.description]
            at = columns.index(key[0])
            marks = ", ".join(["%s"] * len(columns))
            write.executemany(f"INSERT INTO {_q(table)} ({', '.join(_q(c) for c in columns)}) VALUES ({marks})",
                              page)
            copied += len(page)
            last = page[-1][at]
    with source.cursor() as a, target.cursor() as b:
        a.execute(f"CHECKSUM TABLE {_q(table)}")
        b.execute(f"CHECKSUM TABLE {_q(table)}")
        before, after = a.fetchone()[1], b.fetchone()[1]
    if before != after:
        raise MoveError(f"The copy of {table} does not match its source (checksum {after} against {before}); "
                        "the source is left as it was.")
    return copied


_CREATE = re.compile(r"^CREATE TABLE `django_migrations`", re.I)


def _copy_migration_records(source, target) -> None:
    """The target's django_migrations holds what the source's does: every migration counts as
    applied there (the moved apps' tables exist; the other apps' operations are not routed to
    it), as `migrate --database <alias>` would have recorded."""
    with source.cursor() as cursor:
        cursor.execute("SHOW CREATE TABLE `django_migrations`")
        ddl = cursor.fetchone()[1]
        cursor.execute("SELECT app, name, applied FROM django_migrations ORDER BY id")
        records = cursor.fetchall()
    with target.cursor() as cursor:
        cursor.execute(_CREATE.sub("CREATE TABLE IF NOT EXISTS `django_migrations`", ddl))
        cursor.execute("SELECT app, name FROM django_migrations")
        present = set(cursor.fetchall())
        cursor.executemany("INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)",
                           [r for r in records if (r[0], r[1]) not in present])
