"""Register (or update) a WeCom instance and push its configuration; idempotent."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from instances import services


class Command(BaseCommand):
    help = (
        "Create or update the instance NAME (matched by name, else by API URL), store its token "
        "and webhook secret encrypted, and push the configuration (webhook URL built from "
        "PLATFORM_BASE_URL) to the instance."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--api-url", required=True)
        parser.add_argument("--token", required=True)
        parser.add_argument("--webhook-secret", default=None,
                            help="Default: keep the stored one, or generate one.")
        parser.add_argument("--max-accounts", type=int, default=None)
        parser.add_argument("--heartbeat-interval", type=int, default=None)
        parser.add_argument("--created-by", default=None,
                            help="Username owning a new instance (default: first super admin).")
        parser.add_argument("--no-push", action="store_true",
                            help="Do not push the configuration to the instance.")

    def handle(self, *args, **opts):
        user = None
        if opts["created_by"]:
            user = get_user_model().objects.filter(username=opts["created_by"]).first()
            if user is None:
                raise CommandError(f"No user named {opts['created_by']!r}.")
        if not opts["api_url"].startswith(("http://", "https://")):
            raise CommandError("--api-url must be an http:// or https:// URL.")
        try:
            result = services.register_instance(
                name=opts["name"], api_url=opts["api_url"], token=opts["token"],
                webhook_secret=opts["webhook_secret"], max_accounts=opts["max_accounts"],
                heartbeat_interval=opts["heartbeat_interval"], created_by=user,
                push=not opts["no_push"],
            )
        except services.ServiceError as exc:
            raise CommandError(exc.message) from exc
        instance = result.instance
        verb = "Registered" if result.created else "Updated"
        self.stdout.write(
            f"{verb} instance {instance.name!r} (id {instance.pk}, uuid {instance.instance_uuid}); "
            f"webhook {instance.webhook_url}"
        )
        if result.push_error:
            raise CommandError(
                f"The instance was saved but the configuration push failed: {result.push_error}"
            )
        if result.pushed:
            self.stdout.write("Configuration pushed to the instance.")
