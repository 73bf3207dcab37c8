"""Report (and with --fix repair) references into another module's database that name a
missing row (wework/db/orphans.py). Exits 1 while orphans remain."""
from django.core.management.base import BaseCommand, CommandError

from wework.db import orphans
from wework.db.deletion import REFUSE
from wework.db.layout import is_split


class Command(BaseCommand):
    help = ("Finds rows whose reference into another module's database names a missing row; --fix "
            "applies each reference's delete rule (cascade or set null) to them.")

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="Apply the delete rules to the orphans (audited).")
        parser.add_argument("--page", type=int, default=orphans.PAGE, help="Ids read per page (default 1000).")
        parser.add_argument("--all-references", action="store_true",
                            help="Check every reference between modules, also those within one database.")

    def handle(self, *args, fix=False, page=orphans.PAGE, all_references=False, **options):
        if page < 1:
            raise CommandError("--page must be a positive number of ids.")
        if not is_split() and not all_references:
            self.stdout.write("One database: its foreign keys hold every reference between modules "
                              "(--all-references checks them anyway).")
            return
        remaining = 0
        for finding in orphans.report(page=page, fix_found=fix, include_same=all_references):
            ref = finding.reference
            if not finding.orphan_rows:
                self.stdout.write(f"{ref}: no orphan ({finding.referenced_ids} ids in {finding.tables} table(s))")
                continue
            self.stdout.write(self.style.WARNING(
                f"{ref}: {finding.orphan_rows} rows name {len(finding.missing_ids)} missing rows "
                f"(rule: {ref.rule}); e.g. " + ", ".join(f"{t} id {pk} -> {missing}"
                                                        for t, pk, missing in finding.examples)))
            if fix and ref.rule == REFUSE:
                self.stdout.write("  not fixed: deleting the referenced row is refused on one database, so "
                                  "there is no rule to apply; restore the missing rows or delete these rows.")
            elif fix:
                self.stdout.write(f"  fixed: {finding.fixed_rows} rows ({ref.rule})")
            remaining += finding.unfixed
        if remaining:
            raise CommandError(f"{remaining} orphan rows remain (see above)"
                               + ("" if fix else "; --fix applies the delete rules") + ".")
        self.stdout.write(self.style.SUCCESS("No orphan rows remain."))
