"""Migrate every database of the layout (per-module databases, docs/schema.md "Storage
layout"): `migrate --database <alias>` for each primary alias, the accounts module's first
(platform tables, the shard registry), then monitoring, then the others. The roles are seeded
after the last one. In the one-database layout this is `migrate`."""
from django.core.management import call_command
from django.core.management.base import BaseCommand

from wework.db.layout import primary_aliases


class Command(BaseCommand):
    help = "Runs migrate on every database alias of the per-module layout, in order."

    def add_arguments(self, parser):
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive")
        parser.add_argument("--plan", action="store_true", help="Show the plan of each alias only.")

    def handle(self, *args, interactive=True, plan=False, **options):
        verbosity = options.get("verbosity", 1)
        for alias in primary_aliases():
            if verbosity >= 1:
                self.stdout.write(f"Database alias {alias}:")
            call_command("migrate", database=alias, interactive=interactive, plan=plan,
                         verbosity=verbosity, stdout=self.stdout, stderr=self.stderr)
