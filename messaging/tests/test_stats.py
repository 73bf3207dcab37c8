"""Mass-send statistics: delivered, failed, replied within the window (simulator inbound), opted
out (the registered source, unknown without one), per day and account; the report page, the
CSV and Excel exports (audited) and the API action."""
import csv
import io
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from messaging import inbound
from messaging.errors import MessagingInvalid
from messaging.models import MessageReceiver, ReceiverSendStatus as RS
from messaging.services import exports, stats
from monitoring.models import AuditLog
from wework.testing.fixtures import api_client_for, login_verified

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def reply_from(world, sim, wxid, at=None):
    """A message from `wxid` emitted by the simulator, handled as the webhook intake does."""
    event = sim.chatter(1, account_id=world.sim_account.account_id, conversation_type="single")[0]
    event["data"].update(conversation_id=wxid, sender={"id": wxid, "name": "Peer"}, is_self=False, type="text",
                         content={"text": f"reply {event['event_id']}"},
                         sent_at_ms=int((at or timezone.now()).timestamp() * 1000))
    result = inbound.handle_instance_event(world.instance, event)
    assert result["stored"], result
    return result["id"]


@pytest.fixture
def no_opt_out_source(monkeypatch):
    """No app records opt-outs (scrm registers one when installed): the report says unknown."""
    monkeypatch.setattr(stats, "_opt_out_sources", [])


@pytest.fixture
def sent_task(world, sim):
    task = make_task(world, receivers=world.contacts[:5], message_type="text", content={"text": "Sale!"},
                     task_type="broadcast")
    task.refresh_from_db()
    assert task.success_count == 5
    time.sleep(0.01)  # replies come after the sends (ids are time-ordered)
    return task


def test_replied_within_the_window_delivered_and_failed(world, sim, sent_task, no_opt_out_source):
    c = world.contacts
    reply_from(world, sim, c[0])
    reply_from(world, sim, c[0])  # two replies count once
    reply_from(world, sim, c[1])
    # c[2] was sent 30 hours ago: its reply now is outside a 24 h window, inside a 48 h one
    # (its time is its message id's, else send_time: here a row without its message)
    MessageReceiver.objects.filter(task=sent_task, receiver_wxid=c[2]).update(
        send_time=timezone.now() - timedelta(hours=30), message_id=None)
    reply_from(world, sim, c[2])
    # c[3] failed; a message from it does not count as a reply to nothing
    MessageReceiver.objects.filter(task=sent_task, receiver_wxid=c[3]).update(send_status=RS.FAILED)
    reply_from(world, sim, c[3])
    reply_from(world, sim, world.contacts[10])  # not a receiver
    figures = stats.task_stats(sent_task, 24, use_cache=False)
    t = figures["totals"]
    assert (t["receivers"], t["delivered"], t["failed"], t["replied"]) == (5, 4, 1, 2)
    assert t["reply_rate"] == 50.0 and t["opted_out"] is None and not figures["opt_out_known"]
    assert stats.task_stats(sent_task, 48, use_cache=False)["totals"]["replied"] == 3
    days = {d["day"]: d for d in figures["by_day"]}
    today = timezone.localdate().isoformat()
    assert days[today]["delivered"] + days.get((timezone.localdate() - timedelta(days=1)).isoformat(),
                                               {"delivered": 0})["delivered"] + days.get(
        (timezone.localdate() - timedelta(days=2)).isoformat(), {"delivered": 0})["delivered"] == 4
    assert figures["by_account"][0]["account_id"] == world.account.pk


def test_a_reply_before_the_send_is_not_a_reply(world, sim):
    assert reply_from(world, sim, world.contacts[0], at=timezone.now() - timedelta(seconds=5))
    task = make_task(world, receivers=world.contacts[:1], message_type="text", content={"text": "hi"})
    assert stats.task_stats(task, 24, use_cache=False)["totals"]["replied"] == 0


def test_opt_outs_come_from_the_registered_source(world, sim, sent_task):
    seen = []

    def source(task, receivers):
        seen.append(len(receivers))
        return {world.contacts[4]}

    stats.register_opt_out_source(source)
    try:
        figures = stats.task_stats(sent_task, 24, use_cache=False)
    finally:
        stats.unregister_opt_out_source(source)
    assert figures["totals"]["opted_out"] == 1 and figures["opt_out_known"] and seen == [5]


def test_window_hours_is_checked():
    assert stats.window_hours(None) == 24 and stats.window_hours("72") == 72
    for bad in ("0", "x", "10000"):
        with pytest.raises(MessagingInvalid) as err:
            stats.window_hours(bad)
        assert "window_hours" in err.value.fields


def test_report_page_charts_and_exports(world, sim, sent_task, browser, no_opt_out_source):
    reply_from(world, sim, world.contacts[0])
    page = browser.get(reverse("messaging:task_report", args=[sent_task.pk]))
    body = page.content.decode()
    assert page.status_code == 200 and '<svg id="day-chart"' in body and "<rect" in body
    assert "unknown (no opt-out records)" in body
    assert browser.get(reverse("messaging:task_report", args=[sent_task.pk]), {"window_hours": "0"}).status_code == 200
    r = browser.get(reverse("messaging:task_report_csv", args=[sent_task.pk]))
    assert r.status_code == 200 and r.streaming
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode("utf-8-sig"))))
    assert rows[0][0] == "WeCom ID" and len(rows) == 6
    replied = {row[0]: row[8] for row in rows[1:]}
    assert replied[world.contacts[0]] and not replied[world.contacts[1]]
    x = browser.get(reverse("messaging:task_report_xlsx", args=[sent_task.pk]))
    assert x.status_code == 200
    book = load_workbook(io.BytesIO(b"".join(x.streaming_content)))
    sheet = book.worksheets[0]
    assert sheet.max_row == 6 and sheet.cell(1, 1).value == "WeCom ID"
    assert list(AuditLog.objects.filter(operation="message_task.export").values_list(
        "resource_id", flat=True)) == [str(sent_task.pk)] * 2


def test_excel_is_bounded(world, sim, sent_task, browser, monkeypatch):
    monkeypatch.setattr(exports, "EXCEL_MAX_ROWS", 3)
    r = browser.get(reverse("messaging:task_report_xlsx", args=[sent_task.pk]))
    assert r.status_code == 400 and "CSV" in r.content.decode()


def test_report_scope(world, sim, sent_task, client, outsider, make_operator):
    login_verified(client, outsider)
    for name in ("task_report", "task_report_csv", "task_report_xlsx"):
        assert client.get(reverse(f"messaging:{name}", args=[sent_task.pk])).status_code == 404
    viewer = make_operator("messaging.view_messagetask", username="viewer")
    login_verified(client, viewer)
    assert client.get(reverse("messaging:task_report", args=[sent_task.pk])).status_code == 200


def test_api_stats(world, sim, sent_task, outsider):
    reply_from(world, sim, world.contacts[1])
    api = api_client_for(world.admin)
    url = reverse("api:messagetask-stats", args=[sent_task.pk])
    data = api.get(url, {"window_hours": 12}).json()
    assert data["totals"]["replied"] == 1 and data["window_hours"] == 12
    assert api.get(url, {"window_hours": "abc"}).json() == {
        "window_hours": ["The reply window must be between 1 and 720 hours."]}
    assert api_client_for(outsider).get(url).status_code in (403, 404)


def test_overview_adds_up_mass_sends_per_account_and_day(world, sim, sent_task, browser, client, outsider):
    make_task(world, receivers=world.contacts[5:8], message_type="text", content={"text": "Again"},
              task_type="broadcast")
    make_task(world, receivers=world.contacts[9:10], message_type="text", content={"text": "single"})
    reply_from(world, sim, world.contacts[6])
    page = browser.get(reverse("messaging:report_overview"))
    assert page.status_code == 200
    figures = page.context["figures"]
    assert figures["tasks"] == 2 and figures["totals"]["delivered"] == 8 and figures["totals"]["replied"] == 1
    (account,) = figures["by_account"]
    assert account["account_id"] == world.account.pk and account["tasks"] == 2
    assert sum(d["delivered"] for d in figures["by_day"]) == 8
    bad = browser.get(reverse("messaging:report_overview"), {"since": "2026-02-02", "until": "2026-01-01"})
    assert bad.status_code == 200 and "The end is before the start." in bad.content.decode()
    login_verified(client, outsider)
    assert client.get(reverse("messaging:report_overview")).status_code == 403
