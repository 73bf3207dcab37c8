"""Give a puppet-service bridge instance its tokens (docs/bridge.md): stored encrypted, the
instance's max_accounts set to their number, and pushed to the bridge. Run it again with the new
list to add or remove a token."""
from django.core.management.base import BaseCommand, CommandError

from instances import services
from instances.models import WeworkInstance


def parse_service(value, ca_file, server_name):
    token, sep, endpoint = value.rpartition("@")
    if not sep or not token or ":" not in endpoint:
        raise CommandError(f"--service {value!r}: expected TOKEN@HOST:PORT")
    spec = {"token": token, "endpoint": endpoint}
    if ca_file:
        spec["ca_file"] = ca_file
    if server_name:
        spec["server_name"] = server_name
    return spec


class Command(BaseCommand):
    help = "Set the puppet-service tokens (TOKEN@HOST:PORT, one per WeCom account) of a bridge instance."

    def add_arguments(self, parser):
        parser.add_argument("--instance", required=True, help="the instance's name")
        parser.add_argument("--service", action="append", default=[], required=True,
                            help="TOKEN@HOST:PORT; repeat for each token (the whole list)")
        parser.add_argument("--ca-file", help="CA file on the bridge's machine (default: the Wechaty root CA)")
        parser.add_argument("--server-name", help="TLS server name of the providers (default: insecure)")

    def handle(self, *args, **opts):
        instance = WeworkInstance.objects.filter(name=opts["instance"]).first()
        if instance is None:
            raise CommandError(f"No instance named {opts['instance']!r}.")
        specs = [parse_service(v, opts["ca_file"], opts["server_name"]) for v in opts["service"]]
        try:
            result = services.set_puppet_services(instance, specs)
        except services.ServiceError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{len(specs)} token(s) pushed to {instance.name!r}; applied: {', '.join(result['applied'])}")
