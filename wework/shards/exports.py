"""Shard exports: a shard's rows to a gzip file (JSON lines or CSV) with its SHA-256 and the
host that wrote it, a digest over every row, and the restore of an export into a shard table
(the cold_days tier of docs/shards.md)."""
import csv
import datetime
import gzip
import hashlib
import io
import json
import logging
import os
from pathlib import Path

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

log = logging.getLogger("wework.shards")



class ExportEncoder(DjangoJSONEncoder):
    """DjangoJSONEncoder, but times keep their microseconds (a restore gives the same values)."""

    def default(self, o):
        if isinstance(o, (datetime.datetime, datetime.time)):
            return o.isoformat()
        return super().default(o)


def export_host():
    """The host an export file is written on (recorded with its path)."""
    import socket

    return getattr(settings, "SHARDING_EXPORT_HOST", "") or socket.gethostname()


def restore_rows(model, path, batch=2000):
    """Insert the rows of an export file into the (empty) table of `model`; returns the count."""
    from django.db import models as dj_models

    fields = {f.attname: f for f in model._meta.local_fields}
    count = 0
    pending = []

    def flush():
        model._base_manager.bulk_create(pending, batch_size=batch)
        pending.clear()

    for raw in read_export(path):
        values = {}
        for name, value in raw.items():
            field = fields.get(name)
            if field is None:
                continue
            if path.endswith(".csv.gz"):
                if value == "" and field.null:
                    value = None
                elif isinstance(field, dj_models.JSONField) and value not in (None, ""):
                    value = json.loads(value)
            if value is not None and not isinstance(field, dj_models.JSONField):
                value = field.to_python(value)
            values[name] = value
        pending.append(model(**values))
        count += 1
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return count


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as raw:
        for block in iter(lambda: raw.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rows_digest(model, chunk=5000):
    """SHA-256 of a table's rows in id order, serialised as the JSON lines of an export (the
    checksum that a restored table has the same rows as the one exported)."""
    digest = hashlib.sha256()
    columns = [f.attname for f in model._meta.local_fields]
    last = None
    while True:
        qs = model._base_manager.order_by("pk")
        if last is not None:
            qs = qs.filter(pk__gt=last)
        batch = list(qs.values_list(*columns)[:chunk])
        if not batch:
            return digest.hexdigest()
        for values in batch:
            digest.update(json.dumps(dict(zip(columns, values)), cls=ExportEncoder,
                                     ensure_ascii=False).encode())
            digest.update(b"\n")
        last = batch[-1][columns.index(model._meta.pk.attname)]


def export_dir():
    folder = getattr(settings, "SHARDING_EXPORT_DIR", None) or Path(settings.DATA_DIR) / "shard-exports"
    return Path(folder)


def export_table(model, fmt=None, chunk=5000):
    """Write every row of a shard to a gzip file (JSON lines or CSV); returns (path, rows, sha256).

    Rows are read by keyset on the primary key; the file is written beside its final name and
    renamed when complete, so a half-written export never looks finished.
    """
    fmt = fmt or getattr(settings, "SHARDING_EXPORT_FORMAT", "jsonl")
    if fmt not in ("jsonl", "csv"):
        raise ValueError("SHARDING_EXPORT_FORMAT must be 'jsonl' or 'csv'.")
    meta = model._meta
    folder = export_dir() / meta.app_label
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{meta.db_table}.{fmt}.gz"
    partial = final.with_suffix(final.suffix + ".part")
    columns = [f.attname for f in meta.local_fields]
    rows = 0
    with gzip.open(partial, "wt", encoding="utf-8", newline="") as handle:
        writer = None
        if fmt == "csv":
            writer = csv.writer(handle)
            writer.writerow(columns)
        last = None
        manager = model._base_manager
        while True:
            qs = manager.order_by("pk")
            if last is not None:
                qs = qs.filter(pk__gt=last)
            batch = list(qs.values_list(*columns)[:chunk])
            if not batch:
                break
            for values in batch:
                if writer is None:
                    handle.write(json.dumps(dict(zip(columns, values)), cls=ExportEncoder, ensure_ascii=False))
                    handle.write("\n")
                else:
                    writer.writerow([_csv_value(v) for v in values])
            rows += len(batch)
            last = batch[-1][columns.index(meta.pk.attname)]
    digest = hashlib.sha256()
    with open(partial, "rb") as raw:
        for block in iter(lambda: raw.read(1 << 20), b""):
            digest.update(block)
    os.replace(partial, final)
    log.info("exported %s rows of %s to %s", rows, meta.db_table, final)
    return str(final), rows, digest.hexdigest()


def _csv_value(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    return value.isoformat() if hasattr(value, "isoformat") else value


def read_export(path):
    """The rows of an export file (for verification and restores)."""
    path = str(path)
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        if path.endswith(".jsonl.gz"):
            return [json.loads(line) for line in handle if line.strip()]
        return list(csv.DictReader(io.StringIO(handle.read())))
