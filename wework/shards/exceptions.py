"""Errors of the shard layer; each message is one clear sentence for the operator.

They are domain errors (wework.errors): uncaught in an API view they answer with their status
(a missing shard 404, a locked rotation 409, the rest 400) in the one error shape.
"""
from django.core.exceptions import ImproperlyConfigured

from wework.errors import ConflictError, DomainError, NotFoundError


class ShardError(DomainError):
    """Base class of every shard layer error."""

    code = "shard_error"


class UnknownShardModel(ShardError, ImproperlyConfigured):
    """The model is not configured in SHARDING."""

    status = 500
    code = "unknown_shard_model"


class ShardMissing(ShardError, NotFoundError):
    """The shard table for this period or instance does not exist (and was not to be created)."""

    code = "shard_missing"


class ShardOutOfRange(ShardError):
    """The period lies outside what may be created or addressed (too old, too far ahead)."""

    code = "shard_out_of_range"


class NotToolCreated(ShardError):
    """The table was not created by the shard tool, so the tool refuses to drop it."""

    code = "not_tool_created"


class RotationLocked(ShardError, ConflictError):
    """Another rotation holds the global shard lock."""

    code = "rotation_locked"
