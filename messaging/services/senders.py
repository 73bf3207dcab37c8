"""The sending account: finding it, and whether it may send now."""
from __future__ import annotations

from django.utils.translation import gettext as _

from contacts.models import AccountStatus, WeworkAccount

from .. import pacing
from ..errors import invalid


def get_account(account_or_id: WeworkAccount | int | str | None) -> WeworkAccount:
    """The account (with its instance); MessagingInvalid under `account` when there is none."""
    if isinstance(account_or_id, WeworkAccount):
        return account_or_id
    if account_or_id is None:
        raise invalid("account", _("Unknown account."))
    try:
        return WeworkAccount.objects.select_related("instance").get(pk=int(account_or_id))
    except (WeworkAccount.DoesNotExist, TypeError, ValueError):
        raise invalid("account", _("Unknown account.")) from None


def check_account_can_send(account: WeworkAccount | None) -> None:
    """Raise MessagingInvalid (field `account`) unless the account may send now: it exists, is
    online and logged in, is not banned or abnormal, its sending is not stopped after risk
    control, and its instance exists."""
    if account is None or getattr(account, "deleted_at", None) is not None:
        raise invalid("account", _("Unknown account."))
    if account.status == AccountStatus.BANNED:
        raise invalid("account", _("The account is banned; it cannot send messages."))
    stopped = pacing.blocked_reason(account.pk)
    if stopped:
        raise invalid("account", _("Sending is stopped for this account after a risk-control signal "
                                   "(%(reason)s). Clear the stop after checking the account.")
                      % {"reason": stopped})
    if account.status == AccountStatus.ABNORMAL:
        raise invalid("account", _("The account is flagged abnormal (risk control); it cannot send."))
    if account.status != AccountStatus.ONLINE or not account.is_logged_in:
        raise invalid("account", _("The account is offline; log it in before sending."))
    instance = account.instance
    if instance is None or getattr(instance, "deleted_at", None) is not None:
        raise invalid("account", _("The account's instance no longer exists."))
