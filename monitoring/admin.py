"""Admin of monitoring: system logs (one day's shard at a time, keyset pages, no COUNT), the
read-only audit trail with CSV export, alert rules (validated) and alert records (acknowledge /
resolve with a comment)."""
import csv
import datetime
import itertools

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _, ngettext

from accounts.scoping import may_use_model
from wework import shards
from wework.admin import PlatformModelAdmin

from . import audit, services
from .forms import AlertCommentForm, AlertRuleForm
from .models import AlertRecord, AlertRule, AlertStatus, AuditLog, LogLevel, SystemLog

ACK_PERMISSION = "monitoring.ack_alert"

LOG_COLUMNS = ["id", "created_at", "level", "service", "module", "action", "message", "trace_id",
               "user_id", "instance_id", "request_method", "request_url", "response_code",
               "response_time"]


class SystemLogFilterForm(forms.Form):
    day = forms.DateField(label=_("Day"), required=False,
                          widget=forms.DateInput(attrs={"type": "date"}))
    level = forms.ChoiceField(label=_("Level"), required=False,
                              choices=[("", _("All levels"))] + list(LogLevel.choices))
    service = forms.CharField(label=_("Service"), required=False, max_length=50)
    module = forms.CharField(label=_("Module"), required=False, max_length=50)
    action = forms.CharField(label=_("Action"), required=False, max_length=100)
    trace_id = forms.CharField(label=_("Trace ID"), required=False, max_length=64)
    user_id = forms.IntegerField(label=_("User ID"), required=False, min_value=1)
    instance_id = forms.IntegerField(label=_("Instance ID"), required=False, min_value=1)
    q = forms.CharField(label=_("Message contains"), required=False, max_length=200)
    after = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def lookups(self):
        data = self.cleaned_data
        q = Q()
        for field in ("level", "service", "module", "action", "trace_id", "user_id",
                      "instance_id"):
            if data.get(field) not in (None, ""):
                q &= Q(**{field: data[field]})
        if data.get("q"):
            q &= Q(message__icontains=data["q"])
        return q


def day_bounds(day):
    tz = timezone.get_current_timezone()
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=tz)
    return start, start + datetime.timedelta(days=1)


@admin.register(SystemLog)
class SystemLogAdmin(PlatformModelAdmin):
    """One day of logs (the daily shard), newest first, filtered through indexed columns and
    paged by id (keyset): no COUNT(*), no OFFSET, whatever the shard's size."""

    change_list_template = "admin/monitoring/systemlog/change_list.html"
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_object(self, request, object_id, from_field=None):
        try:
            return shards.get(SystemLog, int(object_id))
        except (ValueError, TypeError, SystemLog.DoesNotExist, shards.ShardError):
            return None

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        form = SystemLogFilterForm(request.GET or None)
        page, error = None, None
        today = timezone.localdate()
        day = today
        if form.is_bound and not form.is_valid():
            error = _("Correct the filters below.")
        else:
            if form.is_bound:
                day = form.cleaned_data.get("day") or today
                lookups, after = form.lookups(), form.cleaned_data.get("after")
            else:
                form = SystemLogFilterForm(initial={"day": today})
                lookups, after = Q(), None
            since, until = day_bounds(day)
            page = shards.paginate(SystemLog, since=since, until=until, filters=lookups,
                                   after=after, limit=self.list_per_page, values=LOG_COLUMNS)
        params = request.GET.copy()
        next_url = None
        if page is not None and page.next_after:
            params["after"] = page.next_after
            next_url = "?" + params.urlencode()
        first_url = None
        if request.GET.get("after"):
            params.pop("after", None)
            first_url = "?" + params.urlencode()
        day_links = {}
        for delta, label in ((-1, "previous"), (1, "next")):
            other = day + datetime.timedelta(days=delta)
            if other <= today:
                day_links[label] = "?day=" + other.isoformat()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("System logs of %(day)s") % {"day": day.isoformat()},
            "form": form,
            "rows": page.items if page is not None else [],
            "error": error,
            "next_url": next_url,
            "first_url": first_url,
            "day": day,
            "day_links": day_links,
            "has_filters": bool(request.GET),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.change_list_template, context)


CSV_BOM = "\ufeff"


class EchoBuffer:
    def write(self, value):
        return value


def audit_csv_rows(queryset, chunk=2000):
    """Header then rows, walked by id in chunks (MySQL's iterator() does not stream)."""
    fields = ["id", "created_at", "user_id", "username", "operation", "operation_type",
              "resource_type", "resource_id", "resource_name", "result", "error_message",
              "ip_address", "user_agent", "session_id", "request_id", "old_values",
              "new_values", "extra_info"]
    yield fields
    last = None
    qs = queryset.order_by("-id")
    while True:
        batch = qs.filter(id__lt=last) if last is not None else qs
        rows = list(batch.values_list(*fields)[:chunk])
        if not rows:
            return
        for row in rows:
            yield [_csv_cell(v) for v in row]
        last = rows[-1][0]


def _csv_cell(value):
    import json

    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, datetime.datetime):
        # the platform's time zone with its UTC offset: 2026-11-29T02:35:48.123456+08:00
        return timezone.localtime(value).isoformat() if timezone.is_aware(value) else value.isoformat()
    text = str(value)
    # Spreadsheet formula injection: a cell starting with = + - @ is read as a formula.
    if text[:1] in ("=", "+", "-", "@"):
        text = "'" + text
    return text


@admin.register(AuditLog)
class AuditLogAdmin(PlatformModelAdmin):
    """Read-only for everyone (auditors see it with `view_auditlog`); CSV export with
    `monitoring.export_audit`."""

    change_list_template = "admin/monitoring/auditlog/change_list.html"
    list_display = ("created_at", "username", "operation_type", "operation", "resource_type",
                    "resource_id", "resource_name", "result", "ip_address")
    list_filter = ("operation_type", "result")
    search_fields = ("=username", "=resource_id", "=request_id", "operation")
    list_select_related = False
    ordering = ("-id",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path("export/", self.admin_site.admin_view(self.export_view),
                 name="monitoring_auditlog_export"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {"can_export": request.user.has_perm("monitoring.export_audit")}
        extra.update(extra_context or {})
        return super().changelist_view(request, extra_context=extra)

    def export_view(self, request):
        if not (request.user.has_perm("monitoring.export_audit")
                and self.has_view_permission(request)):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        queryset = changelist.get_queryset(request)
        audit.record("audit.export", resource_type="audit_logs", resource_id=None,
                     resource_name="CSV export", operation_type="READ",
                     extra={"filters": dict(request.GET.items())})
        writer = csv.writer(EchoBuffer())
        response = StreamingHttpResponse(
            # a UTF-8 BOM first, so that Excel (Chinese Windows) reads the file as UTF-8
            itertools.chain([CSV_BOM], (writer.writerow(row) for row in audit_csv_rows(queryset))),
            content_type="text/csv; charset=utf-8",
        )
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response


@admin.register(AlertRule)
class AlertRuleAdmin(PlatformModelAdmin):
    form = AlertRuleForm
    list_display = ("name", "display_name", "rule_type", "metric_name", "comparison",
                    "threshold_value", "alert_level", "is_enabled", "updated_at")
    list_filter = ("rule_type", "alert_level", "is_enabled")
    search_fields = ("name", "display_name")
    readonly_fields = ("created_by", "created_at", "updated_at")
    actions = ["evaluate_now"]

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description=_("Evaluate the selected rules now"), permissions=["change"])
    def evaluate_now(self, request, queryset):
        results = services.evaluate_rules(rules=list(queryset.filter(is_enabled=True)))
        fired = sum(r[0] for r in results.values() if r)
        resolved = sum(r[1] for r in results.values() if r)
        self.message_user(request, _("%(fired)d alert(s) fired, %(resolved)d resolved.")
                          % {"fired": fired, "resolved": resolved}, messages.SUCCESS)


class StatusListFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return (("open", _("Open (active or acknowledged)")), *AlertStatus.choices)

    def queryset(self, request, queryset):
        value = self.value()
        if value == "open":
            return queryset.filter(status__in=services.OPEN_STATUSES)
        if value in AlertStatus.values:
            return queryset.filter(status=value)
        return queryset


@admin.register(AlertRecord)
class AlertRecordAdmin(PlatformModelAdmin):
    list_display = ("created_at", "alert_level", "title", "rule_name", "source",
                    "status", "notification_sent", "acknowledged_by", "resolved_by")
    list_filter = (StatusListFilter, "alert_level")
    search_fields = ("=rule_name", "alert_title", "=source_id")
    list_select_related = ("acknowledged_by", "resolved_by")
    ordering = ("-id",)
    actions = ["acknowledge_selected", "resolve_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("title"))
    def title(self, obj):
        return obj.display_title

    @admin.display(description=_("source"), ordering="source_type")
    def source(self, obj):
        return obj.source_label

    def has_ack_permission(self, request):
        # a role grant, or an object grant on some instance (the records are checked one by one)
        return may_use_model(request.user, ACK_PERMISSION, AlertRecord)

    def _with_comment(self, request, queryset, action, verb, apply):
        if "apply" in request.POST:
            form = AlertCommentForm(request.POST)
            if form.is_valid():
                done, refused = 0, 0
                for record in queryset:
                    if not request.user.has_perm(ACK_PERMISSION, record):
                        refused += 1
                        continue
                    try:
                        apply(record, request.user, form.cleaned_data["comment"])
                        done += 1
                    except services.MonitoringError:
                        refused += 1
                self.message_user(request, ngettext("%(n)d alert %(verb)s.",
                                                    "%(n)d alerts %(verb)s.", done)
                                  % {"n": done, "verb": verb}, messages.SUCCESS)
                if refused:
                    self.message_user(request, ngettext(
                        "%(n)d alert skipped: its status does not allow it.",
                        "%(n)d alerts skipped: their status does not allow it.", refused)
                        % {"n": refused}, messages.WARNING)
                return None
        else:
            form = AlertCommentForm()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Comment"),
            "opts": self.model._meta,
            "queryset": queryset,
            "form": form,
            "action": action,
            "verb": verb,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/monitoring/alertrecord/comment.html", context)

    @admin.action(description=_("Acknowledge the selected alerts"), permissions=["ack"])
    def acknowledge_selected(self, request, queryset):
        return self._with_comment(request, queryset, "acknowledge_selected", _("acknowledged"),
                                  services.acknowledge)

    @admin.action(description=_("Resolve the selected alerts"), permissions=["ack"])
    def resolve_selected(self, request, queryset):
        return self._with_comment(request, queryset, "resolve_selected", _("resolved"),
                                  services.resolve)

