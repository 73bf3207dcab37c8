"""The QR-login pages of an instance in the admin (/admin/instances/weworkinstance/<id>/qr-login/):
logging WeCom accounts in is this app's, the instance admin is the instances app's, so the
contacts admin extends it (see contacts/admin.py)."""
from datetime import UTC, datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from instances import permissions
from instances.services import ServiceError

from . import services
from .qr import qr_svg

LOGIN_FINAL = ("confirmed", "expired", "cancelled")

LOGIN_LABELS = {
    "waiting": _("Waiting for a scan"),
    "scanned": _("Scanned, waiting for confirmation on the phone"),
    "need_verify": _("Verification code needed"),
    "confirmed": _("Logged in"),
    "expired": _("Expired"),
    "cancelled": _("Cancelled"),
}


class InstanceQrLoginAdminMixin:
    """QR login views and URLs for the instance ModelAdmin."""

    def get_urls(self):
        extra = [
            path("<int:pk>/qr-login/", self.admin_site.admin_view(self.qr_login_view),
                 name="instances_weworkinstance_qr_login"),
            path("<int:pk>/qr-login/<str:login_id>/status/",
                 self.admin_site.admin_view(self.qr_login_status_view),
                 name="instances_weworkinstance_qr_login_status"),
            path("<int:pk>/qr-login/<str:login_id>/verify/",
                 self.admin_site.admin_view(self.qr_login_verify_view),
                 name="instances_weworkinstance_qr_login_verify"),
            path("<int:pk>/qr-login/<str:login_id>/cancel/",
                 self.admin_site.admin_view(self.qr_login_cancel_view),
                 name="instances_weworkinstance_qr_login_cancel"),
        ]
        return extra + super().get_urls()

    def _instance_for(self, request, pk):
        instance = self.get_queryset(request).filter(pk=pk, deleted_at__isnull=True).first()
        if instance is None:
            raise Http404(_("No such instance."))
        if not permissions.allowed(request.user, permissions.LOGIN_ACCOUNT, instance.pk):
            raise PermissionDenied
        return instance

    def qr_login_view(self, request, pk):
        """GET shows the login this user last started on the instance (or a button to start
        one); POST (CSRF-protected form) starts a new login, then redirects to the page."""
        instance = self._instance_for(request, pk)
        if request.method == "POST":  # admin_view() checks the CSRF token
            return self._qr_login_start(request, instance)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "POST"])
        state = services.current_login(instance, request.user)
        context = {**self.admin_site.each_context(request), "instance": instance,
                   "opts": self.model._meta, "title": _("QR login"),
                   "start_url": reverse("admin:instances_weworkinstance_qr_login",
                                        args=[instance.pk]),
                   "login": state}
        if state is not None:
            context.update(self._qr_login_context(instance, state))
        return TemplateResponse(request, "contacts/qr_login.html", context)

    def _qr_login_start(self, request, instance):
        try:
            services.start_login(instance, user=request.user)
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        return redirect("admin:instances_weworkinstance_qr_login", instance.pk)

    @staticmethod
    def _qr_login_context(instance, state):
        login_id = state["login_id"]
        content = str(state.get("qrcode") or "")
        # The simulator encodes its scan URL in the QR content (a real instance encodes a
        # WeCom URL): shown as a link to test logins without a phone, with its confirm URL.
        scan_url = content if "/sim/scan/" in content else None
        expires = state.get("expires_at_ms")
        return {
            "qr_svg": qr_svg(content) if content else "",
            "status": state["status"],
            "status_label": LOGIN_LABELS.get(state["status"], state["status"]),
            "is_final": state["status"] in LOGIN_FINAL,
            "expires_at": datetime.fromtimestamp(expires / 1000, tz=UTC) if expires else None,
            "status_url": reverse("admin:instances_weworkinstance_qr_login_status",
                                  args=[instance.pk, login_id]),
            "verify_url": reverse("admin:instances_weworkinstance_qr_login_verify",
                                  args=[instance.pk, login_id]),
            "cancel_url": reverse("admin:instances_weworkinstance_qr_login_cancel",
                                  args=[instance.pk, login_id]),
            "scan_url": scan_url,
            "confirm_url": scan_url.replace("/sim/scan/", "/sim/confirm/") if scan_url else None,
        }

    def qr_login_status_view(self, request, pk, login_id):
        instance = self._instance_for(request, pk)
        try:
            state = services.poll_login(instance, login_id)
        except ServiceError as exc:
            return JsonResponse({"status": "failed", "error": exc.message}, status=exc.status)
        return self._login_json(state)

    @staticmethod
    def _login_json(state):
        account = state.get("account_id") or ""
        # once confirmed, the platform syncs the account's contacts by itself: say how far
        sync = (str(services.sync_run_label(services.sync_run(
            state["account_pk"]))) if state.get("account_pk") else "")
        return JsonResponse({
            "status": state["status"],
            "status_label": str(LOGIN_LABELS.get(state["status"], state["status"])),
            "account": account,
            "sync": sync,
            "error": state.get("error"),
        })


    def _login_post(self, request, pk, login_id, func):
        if request.method != "POST":
            return JsonResponse({"status": "failed", "error": str(_("POST only."))}, status=405)
        instance = self._instance_for(request, pk)
        try:
            state = func(instance, login_id)
        except ServiceError as exc:
            return JsonResponse({"status": "failed", "error": exc.message}, status=exc.status)
        return self._login_json(state)

    def qr_login_verify_view(self, request, pk, login_id):
        return self._login_post(request, pk, login_id, lambda i, lid: services.verify_login(
            i, lid, request.POST.get("code", "")))

    def qr_login_cancel_view(self, request, pk, login_id):
        return self._login_post(request, pk, login_id, services.cancel_login)
