"""Move one module's tables to another database, then point DATABASE_URL_<MODULE> at it
(docs/schema.md, "Moving a module"). Shows the plan unless --execute."""
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from wework import audit, shards
from wework.db import moving
from wework.db.layout import MODULES, module_of


def module_shard_tables(module):
    """Every shard table of the module's sharded models that the registry knows."""
    tables = []
    for model in apps.get_models():
        if module_of(model._meta.app_label) == module and shards.is_sharded(model):
            tables.extend(m._meta.db_table for m in shards.shard_models(model))
    return tables


class Command(BaseCommand):
    help = ("Moves a module's tables (models, many-to-many tables, shards) to another MariaDB/MySQL "
            "database while the platform is stopped; then set DATABASE_URL_<MODULE> to it.")

    def add_arguments(self, parser):
        parser.add_argument("module", choices=[m for m in MODULES if m != "accounts"])
        parser.add_argument("--to", required=True, dest="target",
                            help="The target database URL, mysql://user:password@host:port/name.")
        parser.add_argument("--method", choices=["rename", "copy"],
                            help="rename (same server, default there) or copy (any server, checksummed).")
        parser.add_argument("--execute", action="store_true", help="Make the move (default: show the plan).")
        parser.add_argument("--keep-source", action="store_true",
                            help="copy: leave the source tables in place after the checked copy.")
        parser.add_argument("--force", action="store_true",
                            help="Move although other connections use the source database.")

    def handle(self, *args, module, target, method=None, execute=False, keep_source=False, force=False,
               **options):
        try:
            move = moving.plan(module, target, shard_tables=module_shard_tables(module), method=method)
        except moving.MoveError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Module {module}: {len(move.tables)} tables from {move.source} to {move.target} "
                          f"by {move.method}.")
        for table, constraint in move.crossing_keys:
            self.stdout.write(f"  foreign key {constraint} of {table} is dropped (it would cross databases)")
        if move.other_connections:
            self.stdout.write(self.style.WARNING(
                f"  {move.other_connections} other connection(s) use {move.source}: stop the platform first."))
        if not execute:
            self.stdout.write("Nothing changed (add --execute to move).")
            return
        fields = {"resource_type": "database", "resource_id": module, "resource_name": str(move.target),
                  "operation_type": "UPDATE", "old_values": {"database": str(move.source)},
                  "new_values": {"database": str(move.target), "method": move.method,
                                 "tables": len(move.tables)}}
        # Written first: when the audit trail is the module that moves, its row moves with it.
        audit.record("database.move_module", **fields)
        try:
            done = moving.execute(move, force=force, drop_source=not keep_source,
                                  progress=lambda line: self.stdout.write(f"  {line}"))
        except moving.MoveError as exc:
            audit.record("database.move_module", result="FAILURE", error_message=exc.message, **fields)
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(
            f"Moved {done['tables']} tables of {module}"
            + (f" ({done['rows']} rows copied and checksummed)" if move.method == "copy" else "")
            + f". Now set DATABASE_URL_{module.upper()}={_masked(target)} for every process "
              "(web, workers, beat) and start the platform."))


def _masked(url):
    """The URL without its password, for the terminal."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        user = rest.split("@", 1)[0].split(":", 1)[0]
        rest = f"{user}:***@{rest.split('@', 1)[1]}"
    return f"{scheme}{sep}{rest}"
