"""Errors of the shard layer; each message is one clear sentence for the operator."""
from django.core.exceptions import ImproperlyConfigured


class ShardError(Exception):
    """Base class of every shard layer error."""


class UnknownShardModel(ShardError, ImproperlyConfigured):
    """The model is not configured in SHARDING."""


class ShardMissing(ShardError):
    """The shard table for this period or instance does not exist (and was not to be created)."""


class ShardOutOfRange(ShardError):
    """The period lies outside what may be created or addressed (too old, too far ahead)."""


class NotToolCreated(ShardError):
    """The table was not created by the shard tool, so the tool refuses to drop it."""


class RotationLocked(ShardError):
    """Another rotation holds the global shard lock."""
