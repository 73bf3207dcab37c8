"""Registering an instance (the register_instance command, the simulator, tests): create or
update it, give its token for its address, push its configuration."""
from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.translation import gettext as _

from wework import shards

from ..models import WeworkInstance
from . import endpoint
from .base import ServiceError
from .commands import push_config, webhook_url


@dataclass
class Registration:
    instance: WeworkInstance
    created: bool
    pushed: bool
    push_error: str | None = None


def register_instance(*, name, api_url, token, webhook_secret=None, max_accounts=None,
                      heartbeat_interval=None, created_by=None, push=True):
    """Create or update the instance named `name` (or at `api_url`); idempotent.

    The address and the token go through the endpoint service (`endpoint.apply`, as the command
    line: the server's own rights): the token is stored encrypted and bound to `api_url`; the
    webhook secret is the one given, else the stored one while the address stays, else a new
    one (a moved instance is re-keyed). Sets webhook_url from PLATFORM_BASE_URL and pushes the
    configuration to the instance (`push=False` skips it).
    """
    if not name or not api_url or not token:
        raise ServiceError(_("Name, API URL and token are required."))
    if max_accounts is not None and max_accounts < 1:
        raise ServiceError(_("max_accounts must be at least 1."))
    with transaction.atomic():
        instance = (
            WeworkInstance.objects.select_for_update().filter(name=name).first()
            or WeworkInstance.objects.select_for_update().filter(api_url=api_url).first()
        )
        created = instance is None
        if created:
            if created_by is None:
                created_by = (
                    get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
                )
            if created_by is None:
                raise ServiceError(
                    _("No administrator exists yet to own the instance; create one first.")
                )
            instance = WeworkInstance(
                instance_uuid=str(shards.new_uuid()), created_by=created_by
            )
        instance.name = name
        if max_accounts is not None:
            instance.max_accounts = max_accounts
        if heartbeat_interval is not None:
            instance.heartbeat_interval = heartbeat_interval
        instance.save()
        instance.webhook_url = webhook_url(instance)
        instance.save(update_fields=["webhook_url", "updated_at"])
        endpoint.apply(instance, values={"api_url": api_url}, token=token,
                       webhook_secret=webhook_secret, via="command")
    registration = Registration(instance=instance, created=created, pushed=False)
    if push:
        try:
            push_config(instance)
            registration.pushed = True
        except ServiceError as exc:
            registration.push_error = exc.message
    return registration
