"""Error pages in the admin's frame: a refused or missing page keeps the header, the breadcrumbs
and a way back, in the reader's language (Django's defaults are a bare, untranslated
"403 Forbidden" and "Not Found")."""
from django.contrib import admin
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _


def _back_url(request):
    back = request.headers.get("Referer", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()) or back == request.build_absolute_uri():
        return None
    return back


def page_not_found(request, exception=None):
    """handler404: the admin's frame with a sentence and a way back; API paths answer JSON."""
    message = _("There is no page at this address. It may have been moved or deleted, or the link is mistyped.")
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": _("Not found."), "code": "not_found"}, status=404)
    context = {**admin.site.each_context(request), "title": _("Page not found"), "message": message,
               "back_url": _back_url(request)}
    return render(request, "wework/page_not_found.html", context, status=404)


def permission_denied(request, exception=None):
    """handler403. The message of the refusal is shown when it was written for people (a
    PermissionDenied raised with a sentence); API paths answer JSON."""
    message = str(exception or "") or _("You do not have permission to open this page.")
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message, "code": "permission_denied"}, status=403)
    context = {**admin.site.each_context(request), "title": _("Permission denied"), "message": message,
               "back_url": _back_url(request)}
    return render(request, "wework/permission_denied.html", context, status=403)

