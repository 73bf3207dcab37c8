"""Per-instance shards follow their instance.

Creating an instance creates its contacts/groups/group_members shards once the instance's
transaction commits (a rollback leaves no tables behind; a write that comes first creates the
shard on demand anyway). Hard-deleting an instance exports (archives) its shards first; dropping
them needs an explicit confirmation (`manage.py shards drop --instance N --yes` or the admin
action), never a signal.
"""
import logging

from django.db import transaction
from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver

log = logging.getLogger("wework.shards")

INSTANCE_MODEL = "instances.WeworkInstance"


def _create(instance_id):
    from . import router

    try:
        router.create_instance_shards(instance_id)
    except Exception:  # the instance exists; shards are created on first write
        log.exception("could not create the shards of instance %s", instance_id)


@receiver(post_save, sender=INSTANCE_MODEL, dispatch_uid="shards_instance_created")
def instance_created(sender, instance, created, raw=False, **kwargs):
    if not created or raw:
        return
    instance_id = instance.pk
    transaction.on_commit(lambda: _create(instance_id))


@receiver(pre_delete, sender=INSTANCE_MODEL, dispatch_uid="shards_instance_deleted")
def instance_deleted(sender, instance, **kwargs):
    from . import services

    services.archive_instance(instance.pk)
