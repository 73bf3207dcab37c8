"""Read/write splitting between the primary and optional replicas.

Reads go to a replica unless they must see the latest writes: inside an atomic block, for the
auth, session and permission tables, or for a short window after this context wrote (pinning,
kept in a context variable so that it is per request or task, not per thread). With no replica
configured the router answers None and Django uses the primary.
"""
import contextvars
import random
import time

from django.conf import settings
from django.db import connections

PIN_SECONDS = 5.0
PRIMARY_ONLY_APPS = {"auth", "accounts", "sessions", "contenttypes", "guardian", "otp_totp",
                     "otp_static", "django_otp", "admin"}

_pinned_until = contextvars.ContextVar("wework_db_pinned_until", default=0.0)


def pin_to_primary(seconds=PIN_SECONDS):
    _pinned_until.set(time.monotonic() + seconds)


def reset_pin():
    _pinned_until.set(0.0)


def replica_aliases():
    return [alias for alias in settings.DATABASES if alias.startswith("replica_")]


class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints):
        replicas = replica_aliases()
        if not replicas:
            return None
        if model._meta.app_label in PRIMARY_ONLY_APPS:
            return "default"
        if connections["default"].in_atomic_block or time.monotonic() < _pinned_until.get():
            return "default"
        return random.choice(replicas)

    def db_for_write(self, model, **hints):
        pin_to_primary()
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"
