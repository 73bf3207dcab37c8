"""The shard layer: physical shard tables for big tables, routed by time or by instance.

Public API (see docs/shards.md): `from wework import shards`, then `shards.model_for(...)`,
`shards.create(...)`, `shards.get(...)`, `shards.paginate(...)`, `shards.new_id()`, ...
Names are forwarded lazily to `wework.shards.router` so that importing this package does not
touch the app registry.
"""

_PUBLIC = {
    "model_for", "model_for_id", "group_ids_by_shard", "create", "bulk_create", "bulk_upsert", "get", "get_or_none",
    "update", "for_instance", "paginate", "iterate", "shard_models", "is_sharded", "config_for",
    "create_instance_shards", "archive_instance_shards", "drop_instance_shards", "Page",
}
_IDS = {"new_id", "new_uuid", "new_uuids", "id_time", "id_bounds"}
_ERRORS = {
    "ShardError", "UnknownShardModel", "ShardMissing", "ShardOutOfRange", "NotToolCreated",
    "RotationLocked",
}


def __getattr__(name):
    if name in _PUBLIC:
        from . import router as source
    elif name in _IDS:
        from wework import ids as source
    elif name in _ERRORS:
        from . import exceptions as source
    else:
        raise AttributeError(f"module 'wework.shards' has no attribute {name!r}")
    value = getattr(source, name)
    # Kept as a module attribute: later lookups skip this function (a dispatcher called it three
    # times a receiver, 60,000 calls a 20,000-receiver broadcast).
    globals()[name] = value
    return value


def __dir__():
    return sorted(_PUBLIC | _IDS | _ERRORS)
