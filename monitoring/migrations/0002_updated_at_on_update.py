"""MySQL/MariaDB: `updated_at ... ON UPDATE CURRENT_TIMESTAMP` as in the design.

Django's `auto_now` stamps rows saved through the ORM; the database clause also stamps rows
changed by `QuerySet.update()` and raw SQL. Other backends keep `auto_now` only.
Hand-written; the schema conformance test checks the clause is present.
"""
from django.db import migrations

TABLES = ["alert_rules", "alert_records"]


def _modify(schema_editor, on_update):
    if schema_editor.connection.vendor != "mysql":
        return
    clause = " ON UPDATE CURRENT_TIMESTAMP" if on_update else ""
    for table in TABLES:
        schema_editor.execute(
            f"ALTER TABLE {schema_editor.quote_name(table)} MODIFY "
            f"{schema_editor.quote_name('updated_at')} datetime NOT NULL "
            f"DEFAULT CURRENT_TIMESTAMP{clause} COMMENT '更新时间'"
        )


def forwards(apps, schema_editor):
    _modify(schema_editor, on_update=True)


def backwards(apps, schema_editor):
    _modify(schema_editor, on_update=False)


class Migration(migrations.Migration):

    dependencies = [
        ("monitoring", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, atomic=False, elidable=False),
    ]
