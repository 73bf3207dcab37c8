"""Multi-row upserts for the sync (one statement per batch, no model instances).

`shards.bulk_upsert` goes through `QuerySet.bulk_create(update_conflicts=True)`, which builds a
model instance and runs `get_db_prep_save` for every field of every row: on 50,000 contacts that
Python work, not the database, was most of the sync's time. This writes the same statement
(MySQL/MariaDB `INSERT ... ON DUPLICATE KEY UPDATE`, SQLite `INSERT ... ON CONFLICT DO UPDATE`)
from plain dicts into the table of the shard model that `shards.model_for()` returns (the table
name comes from the model; nothing here formats one), preparing only the values that need it
(JSON, dates, decimals). New rows get Snowflake ids from `shards.new_id()`; existing rows keep
theirs. Same contract as `shards.bulk_upsert`: the unique key must be the table's only unique key
besides the id on MySQL (ON DUPLICATE KEY fires on any unique key).
"""
from django.db import connections, models, router

from wework import shards

_NEEDS_PREP = (models.JSONField, models.DateTimeField, models.DateField, models.DecimalField,
               models.UUIDField)


def upsert(base_model, instance_id, rows, unique_fields, update_fields, batch_size=500):
    """Insert or update `rows` (dicts of field attnames) in the instance's shard; rows sent."""
    if not rows:
        return 0
    model = shards.model_for(base_model, instance_id=instance_id)
    alias = router.db_for_write(model)
    connection = connections[alias]
    qn = connection.ops.quote_name
    opts = model._meta
    keys = [k for k in rows[0] if k != "id"]
    fields = [opts.pk] + [opts.get_field(k) for k in keys]
    prep = [isinstance(f, _NEEDS_PREP) for f in fields]
    columns = ", ".join(qn(f.column) for f in fields)
    update_columns = [opts.get_field(name).column for name in update_fields]
    if connection.vendor == "mysql":
        tail = " ON DUPLICATE KEY UPDATE " + ", ".join(
            f"{qn(c)} = VALUES({qn(c)})" for c in update_columns)
    else:
        conflict = ", ".join(qn(opts.get_field(name).column) for name in unique_fields)
        tail = f" ON CONFLICT ({conflict}) DO UPDATE SET " + ", ".join(
            f"{qn(c)} = excluded.{qn(c)}" for c in update_columns)
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    table = qn(opts.db_table)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            params = []
            for row in chunk:
                values = [row.get("id") or shards.new_id()] + [row[k] for k in keys]
                for i, field in enumerate(fields):
                    if prep[i] and values[i] is not None:
                        values[i] = field.get_db_prep_save(values[i], connection)
                params.extend(values)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES "
                + ", ".join([row_sql] * len(chunk)) + tail,
                params,
            )
    return len(rows)
