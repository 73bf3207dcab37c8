"""The nightly orphan report's alerts (wework/db/orphans.py, `database.report_orphans`): one
open alert per reference whose rows name missing rows of another module's database, resolved
by the first report that finds the reference clean. Connected in ready()."""
from django.dispatch import receiver
from django.utils.translation import gettext as _, gettext_noop

from wework.db import orphans
from wework.i18n import Text

from . import services

ORPHANS_RULE = "database.orphans"
SOURCE_TYPE = "database_reference"


@receiver(orphans.checked, dispatch_uid="monitoring.orphan_alerts")
def alert_orphans(sender, *, findings, **kwargs):
    for finding in findings:
        reference = str(finding.reference)
        if not finding.orphan_rows:
            services.resolve_alert(ORPHANS_RULE, source_type=SOURCE_TYPE, source_id=reference,
                                   comment=_("auto-resolved: no orphan rows remain"))
            continue
        services.fire_alert(
            ORPHANS_RULE,
            source_type=SOURCE_TYPE,
            source_id=reference,
            level="ERROR",
            title=Text(gettext_noop("Orphan rows in %(reference)s"), reference=reference),
            message=Text(gettext_noop(
                "%(rows)d rows name %(missing)d missing rows of another module's database (delete "
                "rule: %(rule)s); manage.py orphans lists them and --fix applies the rule."),
                rows=finding.orphan_rows, missing=len(finding.missing_ids), rule=finding.reference.rule),
            metric_name="orphan_rows",
            metric_value=finding.orphan_rows,
        )
