"""Encrypted fields with key rotation, and the primary/replica router."""
import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection, connections

from wework import routers
from wework.db.fields import field_cipher


def _raw_proxy_password(instance_id):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proxy_password_encrypted FROM wework_instances WHERE id = %s", [instance_id]
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_secret_is_ciphertext_at_rest_and_rotates_to_a_new_key(settings):
    from instances.tests.factories import WeworkInstanceFactory

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
    from instances.tests.factories import WeworkInstanceFactory

    instance = WeworkInstanceFactory(proxy_password_encrypted="unchanged")
    before = _raw_proxy_password(instance.pk)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEYS]
    call_command("rotate_field_keys", "--dry-run")
    assert _raw_proxy_password(instance.pk) == before


@pytest.mark.django_db
def test_value_no_key_opens_is_a_clear_error(settings):
    from instances.tests.factories import WeworkInstanceFactory

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


class _Meta:
    def __init__(self, app_label):
        self.app_label = app_label


class _Model:
    def __init__(self, app_label):
        self._meta = _Meta(app_label)


def test_router_does_nothing_without_replicas(settings):
    router = routers.PrimaryReplicaRouter()
    assert router.db_for_read(_Model("messaging")) is None


def test_router_reads_from_replica_except_after_writes_in_atomic_and_for_auth(monkeypatch):
    monkeypatch.setattr(routers, "replica_aliases", lambda: ["replica_0"])
    router = routers.PrimaryReplicaRouter()
    routers.reset_pin()
    assert router.db_for_read(_Model("messaging")) == "replica_0"
    assert router.db_for_read(_Model("accounts")) == "default"
    assert router.db_for_write(_Model("messaging")) == "default"
    # A read right after a write in the same context sees the primary.
    assert router.db_for_read(_Model("messaging")) == "default"
    routers.reset_pin()
    monkeypatch.setattr(connections["default"], "in_atomic_block", True)
    assert router.db_for_read(_Model("messaging")) == "default"
    assert router.allow_migrate("replica_0", "messaging") is False
    assert router.allow_migrate("default", "messaging") is True
