"""Exports of a task's receivers and results: CSV (streamed, any size) and Excel (openpyxl's
write-only workbook, bounded by EXCEL_MAX_ROWS). Rows come from `stats.receiver_results`, chunk
by chunk, so memory stays bounded whatever the task's size. Every export is audited
(`message_task.export`, a READ)."""
from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from django.utils import timezone
from openpyxl import Workbook
from django.utils.translation import gettext as _

from wework import audit

from ..errors import invalid
from ..models import MessageTask, ReceiverSendStatus, ReceiverType
from . import stats

EXCEL_MAX_ROWS = 200_000


def headers() -> list[str]:
    return [_("WeCom ID"), _("Name"), _("Receiver type"), _("Status"), _("Sent at"), _("Error code"),
            _("Error"), _("Retries"), _("Replied at"), _("Opted out")]


def _when(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def rows(task: MessageTask, hours: int) -> Iterator[list[Any]]:
    types = dict(ReceiverType.choices)
    statuses = dict(ReceiverSendStatus.choices)
    for r in stats.receiver_results(task, hours):
        opted = r["opted_out"]
        yield [r["receiver_wxid"], r["receiver_name"] or "", str(types.get(r["receiver_type"], "")),
               str(statuses.get(r["send_status"], r["send_status"])), _when(r["send_time"]), r["error_code"] or "",
               r["error_message"] or "", r["retry_count"], _when(r["replied_at"]),
               "" if opted is None else (_("yes") if opted else _("no"))]


def _audit(task: MessageTask, fmt: str, hours: int) -> None:
    audit.record("message_task.export", resource_type="message_task", resource_id=task.pk, resource_name=str(task),
                 operation_type="READ", extra={"format": fmt, "window_hours": hours})


class _Echo:
    def write(self, value):
        return value


def csv_lines(task: MessageTask, hours: int) -> Iterable[str]:
    """The CSV, line by line (with a BOM so that Excel reads UTF-8); audited when it starts."""
    _audit(task, "csv", hours)
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(headers())
    for row in rows(task, hours):
        yield writer.writerow(row)


def check_excel_size(task: MessageTask) -> None:
    if task.target_count > EXCEL_MAX_ROWS:
        raise invalid("format", _("Excel exports are limited to %(max)d receivers; this task has %(n)d: "
                                  "export it as CSV.") % {"max": EXCEL_MAX_ROWS, "n": task.target_count})


def excel_file(task: MessageTask, hours: int) -> IO[bytes]:
    """The workbook in a temporary file (rewound), written row by row; audited."""
    check_excel_size(task)
    _audit(task, "xlsx", hours)
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=str(_("Receivers"))[:31])
    sheet.append(headers())
    for row in rows(task, hours):
        sheet.append(row)
    summary = book.create_sheet(title=str(_("By day"))[:31])
    figures = stats.task_stats(task, hours)
    summary.append([_("Day"), _("Receivers"), _("Delivered"), _("Failed"), _("Replied"), _("Opted out")])
    for day in figures["by_day"]:
        summary.append([day["day"] or _("not sent"), day["receivers"], day["delivered"], day["failed"],
                        day["replied"], "" if day["opted_out"] is None else day["opted_out"]])
    out = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    book.save(out)
    out.seek(0)
    return out
