"""Shared pieces of the contacts services: the logger, protocol-to-design mappings, limits
and small converters."""
from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.utils import timezone

from instances import protocol

from ..models import (
    AccountStatus,
    GroupRole,
)

logger = logging.getLogger("wework.contacts")

STATUS_BY_NAME = {
    "online": AccountStatus.ONLINE,
    "offline": AccountStatus.OFFLINE,
    "abnormal": AccountStatus.ABNORMAL,
    "banned": AccountStatus.BANNED,
}
ROLE_BY_NAME = {"owner": GroupRole.OWNER, "admin": GroupRole.ADMIN, "member": GroupRole.MEMBER}
LOGIN_TTL = 15 * 60
SYNC_STATE_TTL = 24 * 3600
SYNC_PAGE_LIMIT = protocol.MAX_PAGE_LIMIT
SYNC_SCOPES = ("contacts", "groups", "members")


def _ms(value):
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def _cut(value, length):
    if value is None:
        return None
    return str(value)[:length]


def _stamp():
    """Now at second precision (the design's DATETIME columns keep no fractions)."""
    return timezone.now().replace(microsecond=0)
