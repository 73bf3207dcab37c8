"""Celery tasks of contacts (thin: the logic is in contacts.services)."""
from celery import shared_task

from . import services


@shared_task(name="contacts.sync_account", ignore_result=False)
def sync_account(account_pk, scopes=None, resume=True):
    from .models import WeworkAccount

    account = WeworkAccount.objects.select_related("instance").get(pk=account_pk)
    try:
        return {"ok": True, **services.sync_account(
            account, scopes=tuple(scopes or services.SYNC_SCOPES), resume=resume)}
    except services.ServiceError as exc:
        return {"ok": False, "code": exc.code, "message": exc.message}
