"""Celery tasks of contacts (thin: the logic is in contacts.services)."""
from celery import shared_task

from . import services


@shared_task(name="contacts.sync_account", ignore_result=False)
def sync_account(account_pk, scopes=None, resume=True, trigger=services.SyncTrigger.MANUAL,
                 token=None):
    """One full sync of an account, under its lock (see services.request_sync / run_sync)."""
    return services.run_sync(account_pk, scopes=tuple(scopes or services.SYNC_SCOPES),
                             resume=resume, trigger=trigger, token=token)
