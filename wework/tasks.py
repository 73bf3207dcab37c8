"""Celery tasks of the platform's infrastructure (thin: the work is in wework.db)."""
import logging

from celery import shared_task

from wework.db import orphans
from wework.db.layout import is_split

log = logging.getLogger("wework.db")


@shared_task(name="database.report_orphans")
def report_orphans():
    """Nightly, in a split layout: references into another module's database that name a
    missing row, logged per reference (nothing is changed; `manage.py orphans --fix` repairs)."""
    if not is_split():
        return {"skipped": "one database: its foreign keys hold every reference"}
    found = {}
    findings = orphans.report()
    for finding in findings:
        if finding.orphan_rows:
            found[str(finding.reference)] = finding.orphan_rows
            log.warning("orphans: %d rows of %s name %d missing rows (e.g. %s); run manage.py orphans",
                        finding.orphan_rows, finding.reference, len(finding.missing_ids), finding.examples[:3])
    orphans.checked.send(sender=report_orphans, findings=findings)  # the alerts (monitoring)
    return {"orphans": found}
