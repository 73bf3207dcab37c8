"""The report of a mass send: its figures per day and per account, charts (inline SVG drawn
here, no script library), and the receivers with their results as CSV (streamed) or Excel.
Who may see a task (`messaging.view_messagetask` on its instance) may see and export its
report; exports are audited by the service."""
import datetime

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _, gettext_lazy

from . import permissions
from .errors import MessagingInvalid, error_messages
from .models import MessageTask, TaskType
from .services import exports, stats
from .views import _ctx, _visible_task, page

CHART_W, CHART_H, CHART_PAD = 640, 220, 30
SERIES = (("delivered", "#2e7d32"), ("failed", "#c62828"), ("replied", "#1565c0"), ("opted_out", "#8d6e00"))
LABELS = {"delivered": gettext_lazy("Delivered"), "failed": gettext_lazy("Failed"), "replied": gettext_lazy("Replied"),
          "opted_out": gettext_lazy("Opted out"), "skipped": gettext_lazy("Skipped"),
          "waiting": gettext_lazy("Waiting")}


def _hours(request):
    try:
        return stats.window_hours(request.GET.get("window_hours")), None
    except MessagingInvalid as exc:
        return stats.DEFAULT_WINDOW_HOURS, " ".join(error_messages(exc))


def day_chart(by_day: list[dict]) -> dict:
    """Grouped bars per day (delivered, failed, replied, opted out) as SVG rectangles."""
    days = [d for d in by_day if d["day"]]
    peak = max([d[name] or 0 for d in days for name, _c in SERIES] + [1])
    slot = (CHART_W - 2 * CHART_PAD) / max(len(days), 1)
    bar = max(slot / (len(SERIES) + 1), 1)
    plot_h = CHART_H - 2 * CHART_PAD
    bars, labels = [], []
    for i, d in enumerate(days):
        x0 = CHART_PAD + i * slot
        for j, (name, color) in enumerate(SERIES):
            value = d[name] or 0
            h = plot_h * value / peak
            bars.append({"x": round(x0 + j * bar, 1), "y": round(CHART_H - CHART_PAD - h, 1), "w": round(bar, 1),
                         "h": round(h, 1), "color": color, "title": f"{d['day']} {LABELS[name]}: {value}"})
        labels.append({"x": round(x0 + slot / 2, 1), "text": d["day"][5:]})
    return {"w": CHART_W, "h": CHART_H, "bars": bars, "labels": labels, "peak": peak,
            "axis_y": CHART_H - CHART_PAD, "pad": CHART_PAD}


def share_chart(totals: dict) -> list[dict]:
    """One horizontal bar of the receivers' outcomes (percent widths)."""
    whole = totals["receivers"] or 1
    return [{"name": LABELS[name], "pct": round(100 * totals[name] / whole, 2), "n": totals[name], "color": color}
            for name, color in (("delivered", "#2e7d32"), ("failed", "#c62828"), ("skipped", "#9e9e9e"),
                                ("waiting", "#64b5f6"))]


@page
def task_report(request, pk):
    task = _visible_task(request, pk)
    hours, error = _hours(request)
    figures = stats.task_stats(task, hours)
    return render(request, "messaging/task_report.html", _ctx(
        request, title=_("Report: %(name)s") % {"name": task.task_name or task.pk}, task=task, figures=figures,
        chart=day_chart(figures["by_day"]), share=share_chart(figures["totals"]), error=error,
        series=[(LABELS[name], color) for name, color in SERIES], hours=hours, excel_max=exports.EXCEL_MAX_ROWS,
        csv_url=reverse("messaging:task_report_csv", args=[task.pk]) + f"?window_hours={hours}",
        xlsx_url=reverse("messaging:task_report_xlsx", args=[task.pk]) + f"?window_hours={hours}",
    ))


@page
def task_report_csv(request, pk):
    task = _visible_task(request, pk)
    hours, _error = _hours(request)
    response = StreamingHttpResponse(exports.csv_lines(task, hours), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="task-{task.pk}-receivers.csv"'
    return response


@page
def task_report_xlsx(request, pk):
    task = _visible_task(request, pk)
    hours, _error = _hours(request)
    try:
        handle = exports.excel_file(task, hours)
    except MessagingInvalid as exc:
        return HttpResponseBadRequest(" ".join(error_messages(exc)))
    return FileResponse(handle, as_attachment=True, filename=f"task-{task.pk}-receivers.xlsx",
                        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


class OverviewForm(forms.Form):
    since = forms.DateField(label=gettext_lazy("From"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=gettext_lazy("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    window_hours = forms.IntegerField(label=gettext_lazy("Reply window (hours)"), required=False, min_value=1,
                                      max_value=stats.MAX_WINDOW_HOURS)

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", gettext_lazy("The end is before the start."))
        return data


@page
def report_overview(request):
    """Mass sends (batch and broadcast tasks) created in a period, added up per account and day."""
    if not permissions.may_use(request.user, permissions.VIEW_TASK):
        raise PermissionDenied
    form = OverviewForm(request.GET or None)
    today = timezone.localdate()
    since, until, hours = today - datetime.timedelta(days=30), today, stats.DEFAULT_WINDOW_HOURS
    if form.is_bound and form.is_valid():
        since = form.cleaned_data["since"] or since
        until = form.cleaned_data["until"] or until
        hours = form.cleaned_data["window_hours"] or hours
    start = timezone.make_aware(datetime.datetime.combine(since, datetime.time.min))
    end = timezone.make_aware(datetime.datetime.combine(until + datetime.timedelta(days=1), datetime.time.min))
    tasks = permissions.scope(
        MessageTask.objects.filter(task_type__in=[TaskType.BATCH, TaskType.BROADCAST], created_at__gte=start,
                                   created_at__lt=end).order_by("-id"),
        request.user, permissions.VIEW_TASK)
    figures = stats.overview(tasks, hours)
    return render(request, "messaging/report_overview.html", _ctx(
        request, title=_("Mass-send report"), form=form, figures=figures, hours=hours,
        chart=day_chart(figures["by_day"]), series=[(LABELS[name], color) for name, color in SERIES],
        max_tasks=stats.OVERVIEW_MAX_TASKS,
    ))
