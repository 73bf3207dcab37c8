"""Model fields whose MySQL/MariaDB column types match the design (`seed_schema.sql`).

Django's defaults differ from the design on MySQL: ids are signed, `DateTimeField` is
`datetime(6)`, `TextField` is `longtext`, and there is no `TINYINT`. These fields keep Django's
behaviour on every other backend and emit the design's type on MySQL/MariaDB, so the schema
conformance test can compare the migrated database with the DDL column by column.
"""
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


def _is_mysql(connection):
    return connection.vendor == "mysql"


class UnsignedBigAutoField(models.BigAutoField):
    """`BIGINT(20) UNSIGNED NOT NULL AUTO_INCREMENT`, the design's primary key."""

    def db_type(self, connection):
        if _is_mysql(connection):
            return "bigint UNSIGNED AUTO_INCREMENT"
        return super().db_type(connection)

    def rel_db_type(self, connection):
        if _is_mysql(connection):
            return "bigint UNSIGNED"
        return models.BigIntegerField().db_type(connection)


class UnsignedBigIntegerField(models.PositiveBigIntegerField):
    """`BIGINT(20) UNSIGNED` for plain id columns that are not foreign keys."""

    def db_check(self, connection):
        # UNSIGNED already forbids negatives on MySQL; the design has no CHECK there.
        if _is_mysql(connection):
            return None
        return super().db_check(connection)


class TinyIntegerField(models.SmallIntegerField):
    """`TINYINT(1)` holding a small code (status 0-3, priority 1-3), not a boolean."""

    def db_type(self, connection):
        if _is_mysql(connection):
            return "tinyint(1)"
        return super().db_type(connection)


class DateTimeField(models.DateTimeField):
    """`DATETIME` with second precision, as the design declares it (Django uses datetime(6))."""

    def db_type(self, connection):
        if _is_mysql(connection):
            return "datetime"
        return super().db_type(connection)


class TextField(models.TextField):
    """`TEXT` (64 KiB) as in the design, instead of Django's `longtext` on MySQL."""

    def db_type(self, connection):
        if _is_mysql(connection):
            return "text"
        return super().db_type(connection)


def field_cipher():
    """A MultiFernet over settings.FIELD_ENCRYPTION_KEYS: the first key encrypts, all decrypt.

    Rotation: put a new key first, keep the old ones after it, run
    `manage.py rotate_field_keys` to re-encrypt, then drop the old keys.
    """
    keys = getattr(settings, "FIELD_ENCRYPTION_KEYS", None)
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must hold at least one Fernet key.")
    cache_key = tuple(keys)
    cached = _CIPHERS.get(cache_key)
    if cached is None:
        try:
            cached = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(
                "FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from exc
        _CIPHERS.clear()
        _CIPHERS[cache_key] = cached
    return cached


_CIPHERS = {}


class EncryptedTextField(TextField):
    """Text encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256), keys rotatable.

    The column holds the token; Python code sees the clear text. Lookups other than
    isnull are meaningless on ciphertext and are not supported.
    """

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return field_cipher().encrypt(str(value).encode("utf-8")).decode("ascii")

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        try:
            return field_cipher().decrypt(value.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise ImproperlyConfigured(
                f"Cannot decrypt {self.model._meta.db_table}.{self.column}: "
                "none of FIELD_ENCRYPTION_KEYS opens it."
            ) from exc


def rotate_token(token):
    """Re-encrypt one stored token under the current primary key."""
    return field_cipher().rotate(token.encode("ascii")).decode("ascii")
