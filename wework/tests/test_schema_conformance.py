"""The schema the migrations build equals the design's DDL, except for listed differences.

On MySQL/MariaDB: the test database (migrated by pytest-django) is compared, through
information_schema, with a scratch database loaded from `../shared/spec/seed_schema.sql` (plus
the completed `alert_records` and our `alert_rules` from docs/schema.md). Every difference must
be listed in docs/schema.md under "Deliberate differences" with its reason; a listed difference
that no longer occurs fails too, so the list stays true.

Skipped on SQLite unless REQUIRE_SERVICES is set (then conftest refuses SQLite, and a missing
spec folder fails instead of skipping).
"""
import os

import pytest
from django.apps import apps
from django.db import connections

from wework.db.layout import alias_for_model, is_split, primary_aliases

from . import schema_diff

REQUIRED = os.environ.get("REQUIRE_SERVICES") in ("1", "true", "yes")


def _skip_or_fail(reason):
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def schemas(django_db_setup, django_db_blocker):
    """`(design snapshot, migrated snapshot, conn, names)`; the scratch database is dropped after."""
    connection = connections["default"]
    if connection.vendor != "mysql":
        _skip_or_fail("the schema conformance test needs MySQL/MariaDB (DATABASE_URL)")
    try:
        statements = schema_diff.design_statements()
    except schema_diff.SpecMissing as exc:
        _skip_or_fail(str(exc))
    settings_dict = connection.settings_dict
    migrated = settings_dict["NAME"]
    scratch = f"{migrated}_design"[:64]
    with django_db_blocker.unblock():
        conn = schema_diff.connect(settings_dict)
        try:
            schema_diff.load_design(conn, scratch, statements, like_schema=migrated)
            tables = set(statements)
            design = schema_diff.snapshot(conn, scratch, tables)
            actual = _migrated_snapshot(conn, tables)
            if is_split():
                design = _without_cross_database_keys(design)
            yield design, actual, conn, scratch, statements
        finally:
            schema_diff.drop_database(conn, scratch)
            conn.close()


def _migrated_snapshot(conn, tables):
    """The migrated tables, each read on its module's database (per-module layout: the
    aliases are schemas of one server in the tests; one schema, "default", otherwise)."""
    merged = None
    for alias in primary_aliases():
        snap = schema_diff.snapshot(conn, connections[alias].settings_dict["NAME"], tables)
        if merged is None:
            merged = snap
        else:
            for part, values in snap.items():
                merged[part].update(values)
    return merged


def _table_aliases():
    return {model._meta.db_table: alias_for_model(model) for model in apps.get_models()}


def _without_cross_database_keys(design):
    """The design's foreign keys between modules on different databases are left out by the
    per-module layout (docs/schema.md, "Storage layout", item 5: constraint-free references
    checked by the services); the keys within a database are still compared."""
    where = _table_aliases()
    fks = {key: fk for key, fk in design["fks"].items()
           if where.get(key[0]) == where.get(fk["referenced_table_name"])}
    assert len(fks) < len(design["fks"])  # the layout is split: some keys do cross
    return {**design, "fks": fks}


@pytest.mark.mysql
def test_design_tables_are_all_loaded(schemas):
    design, _actual, _conn, _scratch, statements = schemas
    assert len(statements) >= 21, sorted(statements)  # 20 design tables + alert_rules
    assert set(design["tables"]) == set(statements)
    assert {"users", "groups", "alert_records", "alert_rules"} <= set(design["tables"])
    # alert_records is complete: the flag, the timestamps and the keys of our completion.
    assert ("alert_records", "notification_sent") in design["columns"]
    assert ("alert_records", "uk_alert_uuid") in design["keys"]
    if not is_split():  # alert_records -> wework_instances crosses modules
        assert design["fks"][("alert_records", "instance_id")]["delete_rule"] == "SET NULL"


@pytest.mark.mysql
def test_migrated_schema_matches_design(schemas):
    design, actual, *_ = schemas
    diffs = schema_diff.compare(design, actual)
    allowed = schema_diff.allowed_differences()
    missing = schema_diff.unlisted(diffs, allowed)
    assert not missing, (
        "The migrated schema differs from the design where docs/schema.md does not list it as "
        "deliberate (fix the model, or add a row `| table | item | kind | reason |` under "
        "'## Deliberate differences'):\n" + "\n".join(str(d) for d in missing)
    )
    outdated = schema_diff.stale(diffs, allowed)
    assert not outdated, (
        "docs/schema.md lists differences that no longer occur (remove these rows):\n"
        + "\n".join(f"line {a.line}: | {a.table} | {a.item} | {a.kind} |" for a in outdated)
    )


@pytest.mark.mysql
def test_an_unlisted_difference_fails(schemas):
    """The comparison is not vacuous: a change injected into the design is found and unlisted."""
    design, actual, conn, scratch, _ = schemas
    with conn.cursor() as cur:
        cur.execute(f"USE `{scratch}`")
        cur.execute("ALTER TABLE wework_instances MODIFY name varchar(99) NOT NULL COMMENT '实例名称'")
        cur.execute("ALTER TABLE messages ADD KEY idx_injected (chat_wxid)")
        cur.execute("ALTER TABLE contacts MODIFY nickname varchar(100) DEFAULT NULL COMMENT '别的'")
    try:
        injected = schema_diff.snapshot(conn, scratch, set(design["tables"]))
        allowed = schema_diff.allowed_differences()
        found = {d.ident for d in schema_diff.unlisted(schema_diff.compare(injected, actual), allowed)}
        assert ("wework_instances", "name", "column_type") in found
        assert ("messages", "idx_injected", "missing_key") in found
        assert ("contacts", "nickname", "comment") in found
        # ...and the untouched design gives none of them.
        clean = {d.ident for d in schema_diff.unlisted(schema_diff.compare(design, actual), allowed)}
        assert not clean & {("wework_instances", "name", "column_type"),
                            ("messages", "idx_injected", "missing_key"),
                            ("contacts", "nickname", "comment")}
    finally:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE wework_instances MODIFY name varchar(100) NOT NULL COMMENT '实例名称'")
            cur.execute("ALTER TABLE messages DROP KEY idx_injected")
            cur.execute("ALTER TABLE contacts MODIFY nickname varchar(100) DEFAULT NULL COMMENT '昵称'")


@pytest.mark.mysql
def test_a_dropped_foreign_key_and_column_are_found(schemas):
    design, actual, *_ = schemas
    broken = {part: dict(values) for part, values in actual.items()}
    del broken["fks"][("group_members", "group_id")]
    del broken["columns"][("messages", "chat_type")]
    found = {d.ident for d in schema_diff.compare(design, broken)}
    assert ("group_members", "group_id", "missing_fk") in found
    assert ("messages", "chat_type", "missing_column") in found


# --- Pure parts (no database) ------------------------------------------------------------------


def test_allowed_list_rejects_rows_without_reason_or_with_unknown_kind():
    doc = "## Deliberate differences\n| table | column-or-key | kind | reason |\n|---|---|---|---|\n"
    assert schema_diff.allowed_differences(doc + "| users | id | comment | why |\n")[0].reason == "why"
    with pytest.raises(AssertionError, match="no reason"):
        schema_diff.allowed_differences(doc + "| users | id | comment |  |\n")
    with pytest.raises(AssertionError, match="unknown kind"):
        schema_diff.allowed_differences(doc + "| users | id | colour | why |\n")
    # Rows outside the section are not allowances.
    assert schema_diff.allowed_differences("## Other\n| users | id | comment | why |\n") == []


def test_wildcards_and_staleness():
    a = schema_diff.Allowed("*", "*", "column_order", "why", 1)
    d = schema_diff.Difference("users", "*", "column_order", "")
    other = schema_diff.Difference("users", "id", "comment", "")
    assert schema_diff.unlisted([d, other], [a]) == [other]
    assert schema_diff.stale([other], [a]) == [a]


def test_truncated_statement_must_be_completed_faithfully(tmp_path, monkeypatch):
    (tmp_path / "seed_schema.sql").write_text(
        "CREATE TABLE t1 (\n    id INT NOT NULL\n) COMMENT='x';\n\n"
        "CREATE TABLE t2 (\n    id INT NOT NULL COMMENT 'a',\n    flag TINYINT(1) NOT NULL DEFAULT",
        encoding="utf-8",
    )
    monkeypatch.setenv("WEWORK_SPEC_DIR", str(tmp_path))
    good = "```sql\nCREATE TABLE t2 (\n    id INT NOT NULL COMMENT 'a',\n    flag TINYINT(1) NOT NULL DEFAULT 0\n);\n```"
    assert set(schema_diff.design_statements(good)) == {"t1", "t2"}
    drifted = good.replace("COMMENT 'a'", "COMMENT 'b'")
    with pytest.raises(AssertionError, match="does not continue the seed"):
        schema_diff.design_statements(drifted)
    with pytest.raises(AssertionError, match="gives no completed DDL"):
        schema_diff.design_statements("no sql here")


def test_groups_is_quoted_for_mysql8():
    sql = "CREATE TABLE groups (\n id INT,\n FOREIGN KEY (x) REFERENCES groups(id)\n)"
    quoted = schema_diff.quote_reserved(sql)
    assert "CREATE TABLE `groups` (" in quoted and "REFERENCES `groups`(id)" in quoted
