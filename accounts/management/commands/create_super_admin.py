"""Create the first super administrator with a TOTP device (bootstrap of two-factor login).

Idempotent: when the user exists it is made an enabled super admin again, nothing is reset
(use --reset-password or --reset-otp explicitly), and no secret is printed twice.
"""
import getpass
import os
import secrets

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from accounts.models import EncryptedTOTPDevice, Role, User, UserStatus
from accounts.services import otp as otp_services
from accounts.services import permissions as perm_services


class Command(BaseCommand):
    help = "Create (or repair) a super administrator with a TOTP device; prints its provisioning URI and backup codes once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("WEWORK_ADMIN_USERNAME", "admin"))
        parser.add_argument("--email", default=os.environ.get("WEWORK_ADMIN_EMAIL", ""))
        parser.add_argument("--password", default=os.environ.get("WEWORK_ADMIN_PASSWORD", ""),
                            help="Default: $WEWORK_ADMIN_PASSWORD, else asked (or generated with --no-input).")
        parser.add_argument("--no-input", "--noinput", action="store_true", dest="no_input",
                            help="Never prompt; generate a password when none is given.")
        parser.add_argument("--reset-password", action="store_true", help="Set the password of an existing user.")
        parser.add_argument("--reset-otp", action="store_true",
                            help="Replace the TOTP device and backup codes of an existing user.")
        parser.add_argument("--skip-otp", action="store_true",
                            help="Create no device (the user must enroll at the first admin login).")
        parser.add_argument("--qr", action="store_true", help="Also print the QR code in the terminal.")

    def handle(self, *args, **opts):
        username = (opts["username"] or "").strip()
        if not username or len(username) > 50:
            raise CommandError("A username of 1 to 50 characters is required.")
        existing = User.all_objects.filter(username=username).first()
        email = (opts["email"] or "").strip() or (existing.email if existing else f"{username}@localhost")
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{email!r} is not a valid email address.") from None
        password = opts["password"]
        generated = False
        need_password = existing is None or opts["reset_password"]
        if need_password and not password:
            if opts["no_input"]:
                password, generated = secrets.token_urlsafe(18), True
            else:
                password = getpass.getpass("Password: ")
                if password != getpass.getpass("Password (again): "):
                    raise CommandError("The two passwords differ.")
        with transaction.atomic():
            perm_services.seed_roles()
            user = existing or User(username=username, email=email)
            if need_password:
                try:
                    validate_password(password, user)
                except ValidationError as exc:
                    raise CommandError("The password is too weak: " + " ".join(exc.messages)) from None
                user.set_password(password)
            if User.all_objects.filter(email=email).exclude(pk=user.pk).exists():
                raise CommandError(f"Another user already has the email address {email}.")
            user.email = email
            user.is_superuser = True
            user.status = UserStatus.ENABLED
            user.locked_until = None
            user.login_fail_count = 0
            user.deleted_at = None
            user.save()
            role = Role.objects.get(name="super_admin")
            if not user.role_grants.filter(role=role, expires_at__isnull=True).exists():
                perm_services.grant_role(user, role, granted_by=None)
            device = codes = None
            has_totp = EncryptedTOTPDevice.objects.filter(user=user, confirmed=True).exists()
            if not opts["skip_otp"] and (opts["reset_otp"] or not has_totp):
                EncryptedTOTPDevice.objects.filter(user=user).delete()
                device = otp_services.create_confirmed_totp(user)
                codes = otp_services.generate_backup_codes(user)
        self.stdout.write(("Created" if existing is None else "Updated") + f" super administrator {username!r}.")
        if generated:
            self.stdout.write(f"Password (shown once): {password}")
        if device is not None:
            self.stdout.write("Add this to an authenticator app (shown once):")
            self.stdout.write(device.config_url)
            if opts["qr"]:
                import io

                import segno

                buf = io.StringIO()
                segno.make(device.config_url, error="m").terminal(out=buf, compact=True)
                self.stdout.write(buf.getvalue())
            self.stdout.write("Backup codes (each works once, shown once): " + " ".join(codes))
        elif not opts["skip_otp"]:
            self.stdout.write("Two-factor device already present (use --reset-otp to replace it).")
