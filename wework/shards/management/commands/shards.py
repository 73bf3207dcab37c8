"""`manage.py shards list|plan|rotate|sync-schema|drop`: look after the shard tables."""
import sys
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from wework.shards import exports, services
from wework.shards.conf import config_for, shard_timezone
from wework.shards.exceptions import ShardError
from wework.shards.models import ShardState, ShardTable


def parse_now(value):
    """An aware datetime from an ISO date or datetime (naive values are in the shard time zone)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CommandError(
            f"--now {value!r} is not an ISO date or datetime such as 2026-11-28 or 2026-11-28T09:00:00+08:00."
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=shard_timezone())
    if not 2020 <= parsed.year <= 2089:
        raise CommandError(f"--now {value!r} is outside the supported years 2020-2089.")
    return parsed


class Command(BaseCommand):
    help = "List, plan, rotate, sync and drop shard tables (see docs/shards.md)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, parser_class=CommandParser)

        def common(p, now=True):
            p.add_argument("--model", action="append", default=[],
                           help="Limit to this model (app.Model); may be repeated.")
            if now:
                p.add_argument("--now", help="The clock to use (ISO date or datetime) for backfills and tests.")

        listing = sub.add_parser("list", help="The shard registry.")
        common(listing, now=False)
        listing.add_argument("--all", action="store_true", help="Include dropped shards.")

        for name in ("plan", "rotate"):
            p = sub.add_parser(name, help="Show (plan) or apply (rotate) a rotation.")
            common(p)
            p.add_argument("--ahead", type=int, help="How many periods to create ahead (default: per model).")
            p.add_argument("--no-drop", action="store_true", help="Export and archive, never drop.")
            if name == "rotate":
                p.add_argument("--dry-run", action="store_true", help="Print the plan and change nothing.")
                p.add_argument("--yes", action="store_true", help="Do not ask before dropping.")

        sync = sub.add_parser("sync-schema", help="Add missing columns and indexes to every shard.")
        common(sync, now=False)
        sync.add_argument("--dry-run", action="store_true")

        drop = sub.add_parser("drop", help="Export then drop one shard (or an instance's shards).")
        drop.add_argument("--table", help="The shard table name.")
        drop.add_argument("--model", help="The model (with --period).")
        drop.add_argument("--period", help="The period suffix (202611, 20261128, 2026w48) or instance id.")
        drop.add_argument("--instance", type=int, help="Drop every shard of this instance.")
        drop.add_argument("--now", help="The clock to use (ISO date or datetime).")
        drop.add_argument("--dry-run", action="store_true")
        drop.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

        restore = sub.add_parser("restore", help="Bring a dropped shard back from its export.")
        restore.add_argument("--table", required=True, help="The shard table name.")
        restore.add_argument("--keep-days", type=int, default=services.RESTORE_KEEP_DAYS,
                             help="Days the rotation keeps it before dropping it again (default 7).")

    def handle(self, *args, **options):
        action = options["action"]
        try:
            return getattr(self, "do_" + action.replace("-", "_"))(options)
        except ShardError as exc:
            raise CommandError(str(exc)) from None

    # --- helpers ---------------------------------------------------------------------------

    def _labels(self, options):
        models = options.get("model") or []
        return [config_for(m).label for m in models] or None

    def _confirm(self, options, question):
        if options.get("yes"):
            return True
        if not sys.stdin.isatty():
            raise CommandError(f"{question} Pass --yes to confirm when not running interactively.")
        answer = input(f"{question} Type 'yes' to continue: ")
        return answer.strip().lower() == "yes"

    def _print_steps(self, steps):
        if not steps:
            self.stdout.write("Nothing to do.")
        for step in steps:
            self.stdout.write(f"  {step}")

    # --- subcommands -----------------------------------------------------------------------

    def do_list(self, options):
        labels = self._labels(options)
        rows = ShardTable.objects.all()
        if labels:
            rows = rows.filter(model_label__in=labels)
        if not options.get("all"):
            rows = rows.exclude(state=ShardState.DROPPED)
        self.stdout.write(f"{'table':<40} {'state':<9} {'period / instance':<25} {'rows':>12} tool exported")
        for row in rows.order_by("model_label", "period_start", "instance_id"):
            tz = shard_timezone()
            where = (f"{row.period_start.astimezone(tz):%Y-%m-%d} .. {row.period_end.astimezone(tz):%Y-%m-%d}"
                     if row.period_start else f"instance {row.instance_id}")
            rows_text = "" if row.row_estimate is None else f"{row.row_estimate:,}"
            self.stdout.write(
                f"{row.table_name:<40} {row.state:<9} {where:<25} {rows_text:>12} "
                f"{'yes' if row.created_by_tool else 'NO ':<4} "
                f"{(row.export_host + ':' if row.export_host else '') + row.export_path if row.export_path else '-'}"
            )

    def do_plan(self, options):
        steps = services.plan(now=parse_now(options.get("now")), labels=self._labels(options),
                              ahead=self._ahead(options), drops=not options["no_drop"])
        self._print_steps(steps)

    def _ahead(self, options):
        ahead = options.get("ahead")
        if ahead is not None and not 0 <= ahead <= 120:
            raise CommandError("--ahead must be between 0 and 120.")
        return ahead

    def do_rotate(self, options):
        now = parse_now(options.get("now"))
        labels = self._labels(options)
        ahead = self._ahead(options)
        drops = not options["no_drop"]
        steps = services.plan(now=now, labels=labels, ahead=ahead, drops=drops)
        self._print_steps(steps)
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing changed.")
            return
        if any(s.action == "drop" for s in steps):
            drop_count = sum(s.action == "drop" for s in steps)
            if not self._confirm(options, f"This drops {drop_count} shard table(s) after exporting them."):
                raise CommandError("Rotation cancelled; nothing changed.")
        done = services.rotate(now=now, labels=labels, ahead=ahead, drops=drops,
                               on_step=lambda s: self.stdout.write(f"done {s.action} {s.table}"))
        changes = services.sync_schema(labels=labels)  # adds FKs skipped at on-demand creation
        for change in changes:
            self.stdout.write(f"sync-schema {change}")
        applied = [s for s in done if s.action != "keep"]
        self.stdout.write(self.style.SUCCESS(f"Rotation finished: {len(applied)} step(s) applied."))

    def do_sync_schema(self, options):
        changes = services.sync_schema(labels=self._labels(options), dry_run=options["dry_run"])
        for change in changes:
            self.stdout.write(("would " if options["dry_run"] else "") + change)
        if not changes:
            self.stdout.write("Every shard matches its model.")

    def do_restore(self, options):
        if not 0 <= options["keep_days"] <= 3650:
            raise CommandError("--keep-days must be between 0 and 3650.")
        row = services.find_row(table=options["table"])
        with services.global_lock():
            row = services.restore_shard(row, keep_days=options["keep_days"])
        self.stdout.write(self.style.SUCCESS(
            f"Restored {row.table_name}: {row.row_estimate} rows from {row.export_host}:{row.export_path} "
            f"(SHA-256 checked); kept until {row.keep_until:%Y-%m-%d}."))

    def do_drop(self, options):
        now = parse_now(options.get("now")) or timezone.now()
        if options.get("instance") is not None:
            rows = list(ShardTable.objects.filter(instance_id=options["instance"], strategy="instance")
                        .exclude(state=ShardState.DROPPED))
            if not rows:
                raise CommandError(f"Instance {options['instance']} has no shard tables.")
            services.check_instance_droppable(options["instance"])
            for row in rows:
                if not row.created_by_tool:
                    raise CommandError(f"{row.table_name} was not created by the shard tool, so it is not dropped.")
            self.stdout.write("\n".join(f"  drop {r.table_name}" for r in rows))
            if options["dry_run"]:
                return
            if not self._confirm(options, f"This exports then drops {len(rows)} table(s) of instance {options['instance']}."):
                raise CommandError("Drop cancelled; nothing changed.")
            for table in services.drop_instance(options["instance"], confirm=True):
                self.stdout.write(f"dropped {table}")
            return
        if options.get("table"):
            row = services.find_row(table=options["table"])
        elif options.get("model") and options.get("period"):
            row = services.find_row(label=options["model"], suffix=options["period"])
        else:
            raise CommandError("Name the shard with --table, with --model and --period, or use --instance.")
        if row.state == ShardState.DROPPED:
            self.stdout.write(f"{row.table_name} is already dropped.")
            return
        if not row.created_by_tool:
            raise CommandError(f"{row.table_name} was not created by the shard tool, so it is not dropped.")
        services.check_droppable(row, now)
        self.stdout.write(f"  drop {row.table_name} (export to {exports.export_dir()})")
        if options["dry_run"]:
            return
        if not self._confirm(options, f"This exports then drops {row.table_name}."):
            raise CommandError("Drop cancelled; nothing changed.")
        with services.global_lock():
            row = services.drop_shard(row)
        self.stdout.write(self.style.SUCCESS(f"Dropped {row.table_name}; export {row.export_path} ({row.export_rows} rows)."))
