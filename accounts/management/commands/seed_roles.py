from django.core.management.base import BaseCommand

from accounts.services import permissions as perm_services


class Command(BaseCommand):
    help = "Sync the permissions table with the code and create or update the system roles (idempotent)."

    def handle(self, *args, **options):
        created, updated, disabled = perm_services.sync_permissions()
        changed = perm_services.seed_roles()
        self.stdout.write(
            f"permissions: {created} created, {updated} updated, {disabled} disabled; "
            f"system roles: {len(perm_services.SYSTEM_ROLES)} present, {changed} changed"
        )
