"""Routing: the public functions of the shard layer (see docs/shards.md)."""
from dataclasses import dataclass

from wework.ids import id_bounds, id_time, new_id, new_uuid  # noqa: F401  (re-exported)

from .conf import config_for  # noqa: F401  (re-exported)


@dataclass
class Page:
    """One keyset page: `items` newest first, `next_after` the cursor of the next page or None."""

    items: list
    next_after: int | None


def is_sharded(base_model):
    """True when the model is configured in SHARDING and enabled."""
    raise NotImplementedError


def model_for(base_model, when=None, instance_id=None, create=True):
    """The concrete model class of the shard for `when` (time) or `instance_id` (instance)."""
    raise NotImplementedError


def model_for_id(base_model, id, instance_id=None):
    """The shard model holding the row with this id (never creates a table)."""
    raise NotImplementedError


def create(base_model, instance_id=None, **fields):
    """Insert one row into its shard, assigning id (and uuid) from its time field."""
    raise NotImplementedError


def bulk_create(base_model, rows, instance_id=None, batch_size=1000):
    """Insert many rows (dicts or unsaved instances) grouped per shard; returns their ids."""
    raise NotImplementedError


def bulk_upsert(base_model, instance_id, rows, unique_fields, update_fields, batch_size=500):
    """Insert or update rows of one instance's shard on its unique key; returns rows sent."""
    raise NotImplementedError


def get(base_model, id, instance_id=None):
    """The row with this id, from one table; raises base_model.DoesNotExist."""
    raise NotImplementedError


def get_or_none(base_model, id, instance_id=None):
    raise NotImplementedError


def update(base_model, id, instance_id=None, **fields):
    """UPDATE the row with this id in its shard; returns the number of rows changed."""
    raise NotImplementedError


def for_instance(base_model, instance_id, create=True):
    """A queryset over the instance's shard of an instance-sharded model."""
    raise NotImplementedError


def shard_models(base_model, since=None, until=None):
    """Existing (not dropped) shard models overlapping [since, until), newest first."""
    raise NotImplementedError


def paginate(base_model, since=None, until=None, filters=None, after=None, limit=50,
             instance_id=None, values=None):
    """A keyset page, newest first, walking the shards from newest to oldest."""
    raise NotImplementedError


def iterate(base_model, since=None, until=None, filters=None, instance_id=None, chunk=1000):
    """Every matching row, newest first, chunk by chunk."""
    raise NotImplementedError


def create_instance_shards(instance_id):
    """Create the contacts/groups/group_members shards of an instance (idempotent)."""
    raise NotImplementedError


def archive_instance_shards(instance_id):
    """Export the instance's shards and mark them archived."""
    raise NotImplementedError


def drop_instance_shards(instance_id, confirm=False):
    """Export (if not yet) then drop the instance's shards; needs confirm=True."""
    raise NotImplementedError
