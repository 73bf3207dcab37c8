"""The inbox page: conversations with unread received messages across the accounts the user
may read (`messaging.view_message`), newest first, paged by keyset (`?before=`), each linking
to its conversation. New messages appear without a reload: the page polls `inbox.json?after=`
(the newest received message id shown) every few seconds and puts the conversations that
changed at the top. Everything is decided in `services.inbox`.
"""
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _

from contacts.models import WeworkAccount

from . import permissions
from .services import inbox as inbox_service
from .views import _ctx, page

#: Accounts offered in the page's account filter.
ACCOUNT_CHOICES = 200


def _allowed(request):
    if not permissions.may_use(request.user, inbox_service.VIEW_MESSAGE):
        raise PermissionDenied


@page
def inbox(request):
    _allowed(request)
    account = request.GET.get("account", "")
    before = request.GET.get("before", "")
    result = inbox_service.page(request.user, before=before, account=account)
    accounts = permissions.scope(WeworkAccount.objects.order_by("pk"), request.user,
                                 inbox_service.VIEW_MESSAGE)[:ACCOUNT_CHOICES]
    return render(request, "messaging/inbox.html", _ctx(
        request, title=_("Inbox"), rows=result.items, next_before=result.next_before, first_page=not before,
        newest=result.newest, account=account, accounts=accounts,
        poll_url=reverse("messaging:inbox_poll") + (f"?account={account}&" if account.isdigit() else "?"),
    ))


@page
def inbox_poll(request):
    """Unread conversations whose newest received message is above `after`, rendered."""
    _allowed(request)
    after = request.GET.get("after", "")
    if not after.isdigit():
        return JsonResponse({"after": [_("Give the id of the newest message shown.")]}, status=400)
    result = inbox_service.newer(request.user, int(after), account=request.GET.get("account", ""))
    return JsonResponse({
        "conversations": [{"key": f"{r['account_id']}:{r['chat_wxid']}",
                           "html": render_to_string("messaging/_inbox_row.html", {"r": r}, request)}
                          for r in result.items],
        "newest": str(result.newest),  # a string: Snowflake ids are above 2**53 (JavaScript numbers)
    })
