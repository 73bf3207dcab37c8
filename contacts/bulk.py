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
from django.db import connections, router

from wework import shards
from wework.db import literals


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
    columns = ", ".join(qn(f.column) for f in fields)
    update_columns = [opts.get_field(name).column for name in update_fields]
    if connection.vendor == "mysql":
        tail = " ON DUPLICATE KEY UPDATE " + ", ".join(
            f"{qn(c)} = VALUES({qn(c)})" for c in update_columns)
    else:
        conflict = ", ".join(qn(opts.get_field(name).column) for name in unique_fields)
        tail = f" ON CONFLICT ({conflict}) DO UPDATE SET " + ", ".join(
            f"{qn(c)} = excluded.{qn(c)}" for c in update_columns)
    table = qn(opts.db_table)
    # Per value, the cheapest conversion that gives the field's database value.
    preparers = literals.field_preparers(fields, connection)
    with connection.cursor() as cursor:
        # MySQL/MariaDB: strings (and JSON text) escaped by the driver's C function into the
        # statement as well, so nothing is left to the driver's per-value `literal()`.
        inline = literals.value_writer(connection)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            # Values every row of the chunk shares (account, sync stamp, states) are converted
            # once; integers, NULLs and timestamps are written into the statement, and on
            # MySQL/MariaDB the strings and JSON too (value_writer): no per-value `literal()`.
            first = chunk[0]
            shared = {}
            for i, key in enumerate(keys, start=1):
                value = first[key]
                if all(row[key] == value for row in chunk):
                    if value is not None and preparers[i] is not None:
                        value = preparers[i](value)
                    shared[i] = value
            shared_sql = {i: inline(v) for i, v in shared.items()}
            params = []
            marks = []
            for row in chunk:
                parts = [str(int(row.get("id") or shards.new_id()))]
                for i, key in enumerate(keys, start=1):
                    text = shared_sql.get(i)
                    if text is None:
                        if i in shared:
                            value = shared[i]
                        else:
                            value = row[key]
                            if value is not None and preparers[i] is not None:
                                value = preparers[i](value)
                            text = inline(value)
                        if text is None:
                            params.append(value)
                            text = "%s"
                    parts.append(text)
                marks.append("(" + ", ".join(parts) + ")")
            # always a list, an empty one too: the driver's %-formatting undoes the quoted %%
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES " + ", ".join(marks) + tail, params)
    return len(rows)

