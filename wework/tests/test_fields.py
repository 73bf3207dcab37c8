"""Encrypted fields: ciphertext at rest, key rotation, clear configuration errors."""
import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from instances.tests.factories import WeworkInstanceFactory
from wework.db.fields import field_cipher
from wework.db.layout import connection_for


def _raw_proxy_password(instance_id):
    with connection_for("instances").cursor() as cursor:
        cursor.execute(
            "SELECT proxy_password_encrypted FROM wework_instances WHERE id = %s", [instance_id]
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_secret_is_ciphertext_at_rest_and_rotates_to_a_new_key(settings):
    instance = WeworkInstanceFactory(proxy_password_encrypted="s3cret-proxy")
    old_token = _raw_proxy_password(instance.pk)
    assert "s3cret" not in old_token

    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, *settings.FIELD_ENCRYPTION_KEYS]
    call_command("rotate_field_keys")

    rotated_token = _raw_proxy_password(instance.pk)
    assert rotated_token != old_token
    # Only the new key is needed from now on.
    assert Fernet(new_key.encode()).decrypt(rotated_token.encode()) == b"s3cret-proxy"
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    instance.refresh_from_db()
    assert instance.proxy_password_encrypted == "s3cret-proxy"


@pytest.mark.django_db
def test_dry_run_changes_nothing(settings):
    instance = WeworkInstanceFactory(proxy_password_encrypted="unchanged")
    before = _raw_proxy_password(instance.pk)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEYS]
    call_command("rotate_field_keys", "--dry-run")
    assert _raw_proxy_password(instance.pk) == before


@pytest.mark.django_db
def test_value_no_key_opens_is_a_clear_error(settings):
    instance = WeworkInstanceFactory(proxy_password_encrypted="lost")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ImproperlyConfigured, match="none of FIELD_ENCRYPTION_KEYS"):
        type(instance).all_objects.get(pk=instance.pk)


def test_missing_or_malformed_keys_are_configuration_errors(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="at least one"):
        field_cipher()
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="not a Fernet key"):
        field_cipher()


