"""The orphan report: rows whose reference into another module's database names a missing row.

Between two databases no FOREIGN KEY holds a reference (wework.db.backends); the platform
checks it before each write (wework.db.references) and applies the delete rules across
databases (wework.db.deletion), so an orphan comes only from outside the platform: raw SQL, a
restore of one database, a failure between the commits of two databases. The report finds them
per reference, nightly (beat, in a split layout) or on demand (`manage.py orphans`).

Cost: per reference, the distinct referenced ids are read in keyset pages over the column's
own index (`SELECT DISTINCT col ... WHERE col > last ORDER BY col LIMIT n`: a range of the
index, not the table), each page looked up on the target's database by primary key; only the
missing ids' rows are counted. A sharded table is read shard by shard.

`fix=True` applies the reference's delete rule to its orphans (what the database would have
done): DB_CASCADE deletes them, DB_SET_NULL empties the column; a DO_NOTHING reference has no
rule to apply (its orphans are listed for a decision). Fixes are audited.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.db import models
from django.dispatch import Signal

from wework import audit

from .deletion import CASCADE, REFUSE, SET_NULL, Reference, references_between_databases, remove
from .layout import alias_for_model

PAGE = 1_000
EXAMPLES = 5

# Sent by the nightly report with its findings (one per reference): monitoring raises an alert
# per reference with orphans and resolves it once the reference is clean (monitoring/orphan_alerts).
checked = Signal()  # findings=list[Finding]


@dataclass
class Finding:
    reference: Reference
    tables: int = 0
    referenced_ids: int = 0
    missing_ids: list = field(default_factory=list)
    orphan_rows: int = 0
    examples: list = field(default_factory=list)  # (table, row id, missing id)
    fixed_rows: int = 0

    @property
    def unfixed(self) -> int:
        return self.orphan_rows - self.fixed_rows


def _distinct_ids(model: type[models.Model], column: str, page: int):
    manager = model._base_manager.using(alias_for_model(model))
    last = None
    while True:
        qs = manager.exclude(**{f"{column}__isnull": True})
        if last is not None:
            qs = qs.filter(**{f"{column}__gt": last})
        ids = list(qs.order_by(column).values_list(column, flat=True).distinct()[:page])
        if not ids:
            return
        yield ids
        last = ids[-1]


def check(reference: Reference, page: int = PAGE) -> Finding:
    """The orphans of one reference."""
    finding = Finding(reference)
    column = reference.field.attname
    target = reference.target._base_manager.using(alias_for_model(reference.target))
    missing_all: set = set()
    for model in reference.tables():
        finding.tables += 1
        for ids in _distinct_ids(model, column, page):
            finding.referenced_ids += len(ids)
            present = set(target.filter(pk__in=ids).values_list("pk", flat=True))
            missing = [i for i in ids if i not in present]
            if not missing:
                continue
            missing_all.update(missing)
            rows = model._base_manager.using(alias_for_model(model)).filter(**{f"{column}__in": missing})
            finding.orphan_rows += rows.count()  # the orphans only: bounded by what is wrong
            for pk, ref in rows.order_by("pk").values_list("pk", column)[:EXAMPLES - len(finding.examples)]:
                finding.examples.append((model._meta.db_table, pk, ref))
    finding.missing_ids = sorted(missing_all)
    return finding


def fix(finding: Finding) -> int:
    """Apply the reference's delete rule to its orphans; returns the rows changed."""
    reference = finding.reference
    if reference.rule == REFUSE or not finding.missing_ids:
        return 0
    changed = 0
    for table in reference.per_table():
        changed += _apply(table, finding.missing_ids)
    finding.fixed_rows = changed
    audit.record("database.orphans_fixed", resource_type=reference.model._meta.db_table,
                 resource_id=reference.field.column, resource_name=str(reference), operation_type="DELETE"
                 if reference.rule == CASCADE else "UPDATE",
                 new_values={"rule": reference.rule, "rows": changed,
                             "missing_ids": [str(i) for i in finding.missing_ids[:50]]})
    return changed


def _apply(reference: Reference, missing_ids) -> int:
    rows = reference.referencing(missing_ids)
    if reference.rule == SET_NULL:
        return rows.update(**{reference.field.name: None})
    count = 0
    for pk_page in _pages(list(rows.values_list("pk", flat=True))):
        count += remove(reference.model._base_manager.using(reference.alias).filter(pk__in=pk_page))
    return count


def _pages(items, size=PAGE):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def report(page: int = PAGE, fix_found: bool = False, include_same: bool = False) -> list[Finding]:
    """Every cross-database reference checked (with `include_same`, every reference between
    modules, as on one database); with `fix_found`, each one's rule applied to its orphans."""
    findings = []
    for reference in references_between_databases(include_same=include_same):
        finding = check(reference, page=page)
        if fix_found and finding.orphan_rows:
            fix(finding)
        findings.append(finding)
    return findings


__all__ = ["Finding", "check", "checked", "fix", "report"]
