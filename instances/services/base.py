"""Shared pieces of the instance services: the logger, configuration keys, limits and the
service error."""
from __future__ import annotations

import logging

from instances import binding, protocol

logger = logging.getLogger("wework.instances")

#: Configuration keys the platform itself manages (is_system=True).
TOKEN_KEY = "api_token"
WEBHOOK_SECRET_KEY = "webhook_secret"
#: Keys no one sets as configuration: the secrets and the address they are bound to
#: (instances.services.endpoint sets them).
RESERVED_KEYS = frozenset({TOKEN_KEY, WEBHOOK_SECRET_KEY, binding.BINDING_KEY})
#: Rate limits pushed to the instance: config key `rate_limits.<name>` (number).
RATE_LIMIT_PREFIX = "rate_limits."
#: The puppet-service bridge's tokens and endpoints (encrypted JSON list; docs/bridge.md).
PUPPET_SERVICES_KEY = "puppet_services"
#: Shown instead of an encrypted value, everywhere (admin, API, exports).
MASK = "********"
#: The instance is offline after this many heartbeat intervals without a heartbeat.
MISSED_HEARTBEATS = protocol.MISSED_HEARTBEATS_OFFLINE


class ServiceError(Exception):
    """A domain operation failed for a reason the user should read (one sentence)."""

    def __init__(self, message, *, code="error", status=400):
        super().__init__(str(message))
        self.message = str(message)
        self.code = code
        self.status = status
