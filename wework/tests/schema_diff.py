"""Compare the schema Django's migrations build with the design's DDL, on MySQL/MariaDB.

Used by `test_schema_conformance.py`:

1. `design_statements()` reads `seed_schema.sql` (spec folder: `$WEWORK_SPEC_DIR`, else
   `<repo>/../shared/spec/`), drops the truncated last statement (`alert_records`) and adds the
   completed DDL that `docs/schema.md` gives in ```sql blocks (alert_records, alert_rules).
2. `load_design()` loads it into a scratch database.
3. `snapshot()` reads tables, columns, keys, foreign keys and checks of a schema from
   information_schema; `compare()` lists every difference as a `Difference`.
4. `allowed_differences()` parses the table of deliberate differences in `docs/schema.md`;
   `unlisted()` / `stale()` give the differences not listed, and listed ones that no longer occur.
"""
import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DOC = REPO / "docs" / "schema.md"

# Tables the design defines (20, seed_schema.sql) plus the ones docs/schema.md adds DDL for.
KINDS = {
    "missing_table", "table_comment", "table_collation", "engine",
    "missing_column", "extra_column", "column_type", "nullable", "default", "comment", "extra",
    "collation", "column_order",
    "missing_key", "extra_key", "key_columns", "key_unique",
    "missing_fk", "extra_fk", "fk_target", "fk_delete_rule", "fk_update_rule",
    "missing_check", "extra_check", "check_clause",
}


class SpecMissing(RuntimeError):
    pass


def spec_dir():
    """The spec folder: $WEWORK_SPEC_DIR, else `<repo>/../shared/spec` (CI clones beside it)."""
    path = Path(os.environ.get("WEWORK_SPEC_DIR") or REPO.parent / "shared" / "spec")
    if not (path / "seed_schema.sql").is_file():
        raise SpecMissing(
            f"seed_schema.sql not found in {path} (set WEWORK_SPEC_DIR to the spec folder)."
        )
    return path


# --- The design's DDL --------------------------------------------------------------------------

_CREATE = re.compile(r"CREATE TABLE\s+`?(\w+)`?\s*\(", re.I)


def split_statements(sql):
    """`(complete, truncated)`: the `;`-terminated statements and an unterminated tail, if any."""
    sql = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    parts = sql.split(";")
    complete = [p.strip() for p in parts[:-1] if p.strip()]
    tail = parts[-1].strip()
    return complete, (tail or None)


def table_name(statement):
    match = _CREATE.search(statement)
    return match.group(1) if match else None


def quote_reserved(statement):
    """`groups` is reserved in MySQL 8.0.2+; the design uses it bare (gap 2, docs/schema.md)."""
    statement = re.sub(r"(CREATE TABLE\s+)groups(\s*\()", r"\1`groups`\2", statement)
    return re.sub(r"(REFERENCES\s+)groups(\s*\()", r"\1`groups`\2", statement)


def doc_ddl(doc_text):
    """The CREATE TABLE statements of the ```sql blocks in docs/schema.md, by table."""
    ddl = {}
    for block in re.findall(r"```sql\n(.*?)```", doc_text, re.S):
        for statement in split_statements(block)[0]:
            name = table_name(statement)
            if name:
                ddl[name] = statement
    return ddl


def _column_lines(statement):
    body = statement[statement.index("(") + 1:]
    lines = []
    for line in body.splitlines():
        line = line.strip().rstrip(",")
        if re.match(r"^\w+\s+[A-Z]", line) and not re.match(
            r"^(PRIMARY|UNIQUE|KEY|FOREIGN|CONSTRAINT|INDEX)\b", line
        ):
            lines.append(line)
    return lines


def design_statements(doc_text=None):
    """`{table: CREATE TABLE ...}` for every table the design (with our completions) defines.

    The truncated `alert_records` is replaced by the completion in docs/schema.md, which must
    repeat the seed's surviving column lines verbatim (so the completion cannot drift from it).
    """
    seed = (spec_dir() / "seed_schema.sql").read_text(encoding="utf-8")
    complete, truncated = split_statements(seed)
    tables = {table_name(s): s for s in complete}
    doc_text = SCHEMA_DOC.read_text(encoding="utf-8") if doc_text is None else doc_text
    completions = doc_ddl(doc_text)
    if truncated:
        name = table_name(truncated)
        if name not in completions:
            raise AssertionError(
                f"seed_schema.sql ends inside CREATE TABLE {name}, and docs/schema.md gives no "
                "completed DDL for it in a ```sql block."
            )
        survived = _column_lines(truncated)
        completed = _column_lines(completions[name])
        # The last surviving line is cut mid-way: it must be a prefix of the completed line.
        for index, line in enumerate(survived):
            ours = completed[index] if index < len(completed) else ""
            ok = ours.startswith(line) if index == len(survived) - 1 else ours == line
            if not ok:
                raise AssertionError(
                    f"docs/schema.md's {name} does not continue the seed: seed has {line!r}, "
                    f"the completion has {ours!r}."
                )
    for name, statement in completions.items():
        if name in tables:
            raise AssertionError(f"docs/schema.md redefines {name}, which the seed defines whole.")
        tables[name] = statement
    return tables


# --- Loading and reading schemas ----------------------------------------------------------------


def connect(settings_dict, database=None):
    """A separate MySQLdb connection (DDL would commit the test's transaction)."""
    import MySQLdb

    kwargs = {"charset": "utf8mb4", "autocommit": True}
    if settings_dict.get("USER"):
        kwargs["user"] = settings_dict["USER"]
    if settings_dict.get("PASSWORD"):
        kwargs["password"] = settings_dict["PASSWORD"]
    host = settings_dict.get("HOST") or "127.0.0.1"
    if host.startswith("/"):
        kwargs["unix_socket"] = host
    else:
        kwargs["host"] = host
    if settings_dict.get("PORT"):
        kwargs["port"] = int(settings_dict["PORT"])
    if database:
        kwargs["database"] = database
    return MySQLdb.connect(**kwargs)


def load_design(conn, database, statements, like_schema):
    """(Re)create `database` with `like_schema`'s charset and collation, load `statements`."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT default_character_set_name, default_collation_name "
            "FROM information_schema.schemata WHERE schema_name = %s",
            [like_schema],
        )
        charset, collation = cur.fetchone()
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET {charset} COLLATE {collation}")
        cur.execute(f"USE `{database}`")
        cur.execute("SET SESSION foreign_key_checks = 0")
        for name, statement in statements.items():
            try:
                cur.execute(quote_reserved(statement))
            except Exception as exc:
                raise AssertionError(f"The design's CREATE TABLE {name} does not load: {exc}") from exc
        cur.execute("SET SESSION foreign_key_checks = 1")


def drop_database(conn, database):
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")


def _rows(cur, sql, params):
    cur.execute(sql, params)
    names = [d[0].lower() for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def snapshot(conn, schema, tables):
    """Everything the comparison looks at, for `tables` of `schema`, from information_schema."""
    tables = sorted(tables)
    marks = ", ".join(["%s"] * len(tables))
    params = [schema, *tables]
    with conn.cursor() as cur:
        snap = {"tables": {}, "columns": {}, "keys": {}, "fks": {}, "checks": {}}
        for row in _rows(cur, "SELECT table_name, engine, table_collation, table_comment "
                              f"FROM information_schema.tables WHERE table_schema = %s "
                              f"AND table_name IN ({marks})", params):
            snap["tables"][row["table_name"]] = row
        for row in _rows(cur, "SELECT table_name, column_name, ordinal_position, column_type, "
                              "is_nullable, column_default, column_comment, extra, "
                              "collation_name FROM information_schema.columns "
                              f"WHERE table_schema = %s AND table_name IN ({marks})", params):
            snap["columns"][(row["table_name"], row["column_name"])] = row
        for row in _rows(cur, "SELECT table_name, index_name, non_unique, seq_in_index, "
                              "column_name FROM information_schema.statistics "
                              f"WHERE table_schema = %s AND table_name IN ({marks}) "
                              "ORDER BY table_name, index_name, seq_in_index", params):
            key = snap["keys"].setdefault(
                (row["table_name"], row["index_name"]),
                {"unique": not int(row["non_unique"]), "columns": []},
            )
            key["columns"].append(row["column_name"])
        for row in _rows(cur, "SELECT k.table_name, k.constraint_name, k.column_name, "
                              "k.referenced_table_name, k.referenced_column_name, "
                              "r.delete_rule, r.update_rule "
                              "FROM information_schema.key_column_usage k "
                              "JOIN information_schema.referential_constraints r "
                              "ON r.constraint_schema = k.constraint_schema "
                              "AND r.constraint_name = k.constraint_name "
                              "AND r.table_name = k.table_name "
                              f"WHERE k.table_schema = %s AND k.table_name IN ({marks}) "
                              "AND k.referenced_table_name IS NOT NULL", params):
            # Compared by column: the design leaves FK names to the server, Django hashes them.
            snap["fks"][(row["table_name"], row["column_name"])] = row
        for row in _rows(cur, "SELECT table_name, constraint_name, check_clause "
                              "FROM information_schema.check_constraints "
                              f"WHERE constraint_schema = %s AND table_name IN ({marks})", params):
            snap["checks"][(row["table_name"], row["constraint_name"])] = row
    return snap


# --- Comparing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    table: str
    item: str  # a column, key or check name, "-" for the table itself
    kind: str
    detail: str

    @property
    def ident(self):
        return (self.table, self.item, self.kind)

    def __str__(self):
        return f"| {self.table} | {self.item} | {self.kind} | {self.detail}"


def _norm_default(value):
    if value is None:
        return None
    value = str(value)
    if value.lower() in ("current_timestamp", "current_timestamp()"):
        return "current_timestamp()"
    return value


def _norm_extra(value):
    return re.sub(r"\s+", " ", (value or "").lower()).replace("default_generated", "").strip()


def compare(design, actual):
    """Every difference between the design schema and the migrated one, as `Difference`s."""
    diffs = []
    add = lambda *args: diffs.append(Difference(*args))  # noqa: E731
    for table, want in sorted(design["tables"].items()):
        have = actual["tables"].get(table)
        if have is None:
            add(table, "-", "missing_table", "the design's table is not created by migrations")
            continue
        for field, kind in (("table_comment", "table_comment"), ("engine", "engine"),
                            ("table_collation", "table_collation")):
            if want[field] != have[field]:
                add(table, "-", kind, f"design {want[field]!r}, migrated {have[field]!r}")
    present = set(actual["tables"]) & set(design["tables"])

    design_cols = {k: v for k, v in design["columns"].items() if k[0] in present}
    actual_cols = {k: v for k, v in actual["columns"].items() if k[0] in present}
    for (table, column), want in sorted(design_cols.items()):
        have = actual_cols.get((table, column))
        if have is None:
            add(table, column, "missing_column", f"design {want['column_type']}")
            continue
        checks = (
            ("column_type", want["column_type"], have["column_type"]),
            ("nullable", want["is_nullable"], have["is_nullable"]),
            ("default", _norm_default(want["column_default"]), _norm_default(have["column_default"])),
            ("comment", want["column_comment"], have["column_comment"]),
            ("extra", _norm_extra(want["extra"]), _norm_extra(have["extra"])),
            ("collation", want["collation_name"], have["collation_name"]),
        )
        for kind, a, b in checks:
            if a != b:
                add(table, column, kind, f"design {a!r}, migrated {b!r}")
    for (table, column), have in sorted(actual_cols.items()):
        if (table, column) not in design_cols:
            add(table, column, "extra_column", f"migrated {have['column_type']}, not in the design")
    for table in sorted(present):
        order_want = [c for (t, c), _ in sorted(design_cols.items(), key=lambda kv: kv[1]["ordinal_position"]) if t == table]
        order_have = [c for (t, c), _ in sorted(actual_cols.items(), key=lambda kv: kv[1]["ordinal_position"]) if t == table]
        common_want = [c for c in order_want if c in order_have]
        common_have = [c for c in order_have if c in order_want]
        if common_want != common_have:
            add(table, "*", "column_order", "columns in another order than the design's")

    design_keys = {k: v for k, v in design["keys"].items() if k[0] in present}
    actual_keys = {k: v for k, v in actual["keys"].items() if k[0] in present}
    for (table, name), want in sorted(design_keys.items()):
        have = actual_keys.get((table, name))
        if have is None:
            add(table, name, "missing_key", f"design {'UNIQUE ' if want['unique'] else ''}KEY ({', '.join(want['columns'])})")
            continue
        if want["columns"] != have["columns"]:
            add(table, name, "key_columns", f"design {want['columns']}, migrated {have['columns']}")
        if want["unique"] != have["unique"]:
            add(table, name, "key_unique", f"design unique={want['unique']}, migrated unique={have['unique']}")
    for (table, name), have in sorted(actual_keys.items()):
        if (table, name) not in design_keys:
            add(table, name, "extra_key", f"migrated {'UNIQUE ' if have['unique'] else ''}KEY ({', '.join(have['columns'])})")

    design_fks = {k: v for k, v in design["fks"].items() if k[0] in present}
    actual_fks = {k: v for k, v in actual["fks"].items() if k[0] in present}
    for (table, column), want in sorted(design_fks.items()):
        have = actual_fks.get((table, column))
        if have is None:
            add(table, column, "missing_fk", f"design REFERENCES {want['referenced_table_name']}({want['referenced_column_name']})")
            continue
        target = lambda r: f"{r['referenced_table_name']}({r['referenced_column_name']})"  # noqa: E731
        if target(want) != target(have):
            add(table, column, "fk_target", f"design {target(want)}, migrated {target(have)}")
        if want["delete_rule"] != have["delete_rule"]:
            add(table, column, "fk_delete_rule", f"design {want['delete_rule']}, migrated {have['delete_rule']}")
        if want["update_rule"] != have["update_rule"]:
            add(table, column, "fk_update_rule", f"design {want['update_rule']}, migrated {have['update_rule']}")
    for (table, column), have in sorted(actual_fks.items()):
        if (table, column) not in design_fks:
            add(table, column, "extra_fk", f"migrated REFERENCES {have['referenced_table_name']}({have['referenced_column_name']}) ON DELETE {have['delete_rule']}")

    design_checks = {k: v for k, v in design["checks"].items() if k[0] in present}
    actual_checks = {k: v for k, v in actual["checks"].items() if k[0] in present}
    for (table, name), want in sorted(design_checks.items()):
        have = actual_checks.get((table, name))
        if have is None:
            add(table, name, "missing_check", f"design CHECK ({want['check_clause']})")
        elif want["check_clause"] != have["check_clause"]:
            add(table, name, "check_clause", f"design {want['check_clause']!r}, migrated {have['check_clause']!r}")
    for (table, name), have in sorted(actual_checks.items()):
        if (table, name) not in design_checks:
            add(table, name, "extra_check", f"migrated CHECK ({have['check_clause']})")
    return diffs


# --- The list of deliberate differences in docs/schema.md ---------------------------------------


@dataclass(frozen=True)
class Allowed:
    table: str
    item: str
    kind: str
    reason: str
    line: int

    def matches(self, diff):
        return (
            self.kind == diff.kind
            and self.table in ("*", diff.table)
            and self.item in ("*", diff.item)
        )


def allowed_differences(doc_text=None):
    """Rows `| table | column-or-key | kind | reason |` under "## Deliberate differences".

    `*` matches any table or item. A row with an unknown kind or without a reason is an error.
    """
    doc_text = SCHEMA_DOC.read_text(encoding="utf-8") if doc_text is None else doc_text
    allowed, errors, inside = [], [], False
    for number, line in enumerate(doc_text.splitlines(), 1):
        if line.startswith("## "):
            inside = line.strip().lower().startswith("## deliberate differences")
            continue
        if not inside or not line.startswith("|"):
            continue
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or set(cells[0]) <= {"-", ":", " "} or cells[2] == "kind":
            continue
        table, item, kind, reason = cells[0], cells[1], cells[2], "|".join(cells[3:]).strip()
        if kind not in KINDS:
            errors.append(f"docs/schema.md:{number}: unknown kind {kind!r}")
        elif not reason:
            errors.append(f"docs/schema.md:{number}: no reason given for {table}.{item} {kind}")
        else:
            allowed.append(Allowed(table, item, kind, reason, number))
    if errors:
        raise AssertionError("\n".join(errors))
    return allowed


def unlisted(diffs, allowed):
    return [d for d in diffs if not any(a.matches(d) for a in allowed)]


def stale(diffs, allowed):
    return [a for a in allowed if not any(a.matches(d) for d in diffs)]
