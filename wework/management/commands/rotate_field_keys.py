"""Re-encrypt every encrypted column under the first key of FIELD_ENCRYPTION_KEYS."""
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, router, transaction

from wework.db.fields import EncryptedTextField, field_cipher, rotate_token

BATCH = 500


def encrypted_columns():
    """(model, field) for every concrete encrypted column of an installed model."""
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                yield model, field


class Command(BaseCommand):
    help = (
        "Re-encrypts secret columns with the current primary key (the first of "
        "FIELD_ENCRYPTION_KEYS). Run it after putting a new key first; then the old keys "
        "can be removed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")

    def handle(self, *args, dry_run=False, **options):
        field_cipher()  # fails with a clear ImproperlyConfigured when no key is set
        total = 0
        for model, field in encrypted_columns():
            # Each table on its module's database (per-module databases, wework.db.layout).
            connection = connections[router.db_for_write(model)]
            quote = connection.ops.quote_name
            table, pk, column = (
                quote(model._meta.db_table), quote(model._meta.pk.column), quote(field.column)
            )
            rotated = 0
            last_pk = None
            while True:
                with transaction.atomic(using=connection.alias):
                    with connection.cursor() as cursor:
                        where = f"{column} IS NOT NULL AND {column} <> ''"
                        params = []
                        if last_pk is not None:
                            where += f" AND {pk} > %s"
                            params.append(last_pk)
                        cursor.execute(
                            f"SELECT {pk}, {column} FROM {table} WHERE {where} "
                            f"ORDER BY {pk} LIMIT {BATCH}",
                            params,
                        )
                        rows = cursor.fetchall()
                        if not rows:
                            break
                        for row_pk, token in rows:
                            try:
                                new_token = rotate_token(token)
                            except Exception as exc:  # InvalidToken: no key opens it
                                raise CommandError(
                                    f"{model._meta.db_table}.{field.column} row {row_pk} cannot "
                                    "be decrypted with any of FIELD_ENCRYPTION_KEYS."
                                ) from exc
                            if not dry_run:
                                cursor.execute(
                                    f"UPDATE {table} SET {column} = %s WHERE {pk} = %s",
                                    [new_token, row_pk],
                                )
                            rotated += 1
                        last_pk = rows[-1][0]
            total += rotated
            self.stdout.write(f"{model._meta.db_table}.{field.column}: {rotated} value(s)")
        verb = "would be re-encrypted" if dry_run else "re-encrypted"
        self.stdout.write(self.style.SUCCESS(f"{total} value(s) {verb}."))
