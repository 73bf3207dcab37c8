"""`manage.py alerts evaluate | seed-rules | ack ID | resolve ID | enable NAME | disable NAME`."""
from django.core.management.base import CommandError
from django.db import transaction

from monitoring import services
from monitoring.commands import AuditedCommand
from monitoring.models import AlertRecord, AlertRule
from monitoring.services import rules

class Command(AuditedCommand):
    help = "Evaluate alert rules, create the default rules, acknowledge or resolve alerts."

    def add_arguments(self, parser):
        parser.add_argument("operation", choices=["evaluate", "seed-rules", "ack", "resolve",
                                                  "enable", "disable"])
        parser.add_argument("target", nargs="?", help="Alert id (ack, resolve) or rule name.")
        parser.add_argument("--comment", default="", help="Comment for ack/resolve.")

    def handle(self, *args, operation, target=None, comment="", **options):
        if operation == "evaluate":
            for name, result in services.evaluate_rules().items():
                text = "failed" if result is None else f"fired {result[0]}, resolved {result[1]}"
                self.stdout.write(f"{name}: {text}")
            return
        if operation == "seed-rules":
            with transaction.atomic():
                created = rules.seed_default_rules()
            self.stdout.write(f"{created} rule(s) created, {len(rules.DEFAULT_RULES) - created} "
                              "already present.")
            return
        if not target:
            raise CommandError(f"'{operation}' needs a target (alert id or rule name).")
        if operation in ("ack", "resolve"):
            try:
                record = AlertRecord.objects.get(pk=int(target))
            except (ValueError, AlertRecord.DoesNotExist):
                raise CommandError(f"No alert with id {target!r} exists.") from None
            apply = services.acknowledge if operation == "ack" else services.resolve
            try:
                apply(record, None, comment)
            except services.MonitoringError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"Alert {record.pk}: {operation} done.")
            return
        rule = AlertRule.objects.filter(name=target).first()
        if rule is None:
            raise CommandError(f"No alert rule named {target!r} exists.")
        rule.is_enabled = operation == "enable"
        rule.save(update_fields=["is_enabled", "updated_at"])
        self.stdout.write(f"Rule {rule.name} {operation}d.")
