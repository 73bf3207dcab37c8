"""Acknowledgements of handed-over messages.

The instance answers a send with `queued` and reports the outcome as a `message.status` event:
pushed to the webhook (inbound.handle_message_status), and kept in its event feed
(`GET /v1/events?after_seq=`, 500 a page), which a dispatcher reads for the messages it handed
over. Messages the feed has not confirmed after ACK_POLL_AFTER_S (ACK_FEED_GRACE_S when the feed
works) are polled one by one (`GET .../messages/<client_msg_id>`), so a lost webhook delays
nothing.
"""
from __future__ import annotations

import logging

from .. import conf
from ..clock import Clock
from ..models import MessageReceiver, ReceiverSendStatus as RS
from .outcomes import Outcome, OutcomeKind as K, backoff_s
from .preparing import Prepared
from .transport import Sender

log = logging.getLogger("messaging.dispatch")

#: Pages of the event feed read at most per look (500 events a page).
FEED_PAGES = 50
FEED_PAGE_SIZE = 500

#: (item, status, error, instance message id) of one acknowledgement.
Ack = tuple


class Acknowledgements:
    """The messages a dispatcher handed over and waits for ("in flight")."""

    def __init__(self, sender: Sender, clock: Clock, stats: dict):
        self.sender = sender
        self.client = sender.client
        self.clock = clock
        self.stats = stats
        self.inflight: list[Prepared] = []
        self.cursor: int | None = None  # the event feed's last sequence read; None: no feed
        self.read_at = float("-inf")  # when the feed was last read (the run's monotonic clock)

    def open(self) -> None:
        """Start reading the feed at the instance's current sequence (when ACK_FROM_EVENTS)."""
        self.cursor = None
        if not conf.get("ACK_FROM_EVENTS"):
            return
        try:
            data = self.client.events_after(2**53, limit=1)
            self.cursor = int(data.get("last_seq") or 0)
        except Exception as exc:  # noqa: BLE001 - the feed is an optimisation; polls still work
            log.info("event feed unavailable (%s); polling statuses", exc)

    def watch(self, item: Prepared) -> None:
        item.sent_at = self.clock.monotonic()
        self.inflight.append(item)

    def forget_all(self) -> None:
        self.inflight = []

    def _read_feed(self) -> list[Ack]:
        """Acknowledgements of in-flight messages found in the event feed."""
        if self.cursor is None or not self.inflight:
            return []
        by_uuid = {i.message_uuid: i for i in self.inflight}
        found: list[Ack] = []
        self.read_at = self.clock.monotonic()
        for _page in range(FEED_PAGES):
            try:
                data = self.client.events_after(self.cursor, limit=FEED_PAGE_SIZE)
            except Exception as exc:  # noqa: BLE001
                log.info("event feed read failed: %s", exc)
                return found
            for event in data.get("events") or []:
                self.cursor = max(self.cursor, int(event.get("seq") or 0))
                if event.get("type") != "message.status":
                    continue
                ev = event.get("data") or {}
                item = by_uuid.pop(str(ev.get("client_msg_id")), None)
                if item is not None:
                    found.append((item, ev.get("status"), ev.get("error"), ev.get("message_id")))
            if not data.get("has_more"):
                break
        return found

    def take_from_feed(self, every_s: float = 0.0) -> list[Ack]:
        """Acknowledgements already in the feed; their items are no longer in flight. Nothing
        when the feed was read less than `every_s` ago (its acknowledgements wait for the next
        read; the answers they confirm are held meanwhile, see worker.QUEUED_HOLD_S)."""
        if self.cursor is None or not self.inflight:
            return []
        if every_s > 0 and self.clock.monotonic() - self.read_at < every_s:
            return []
        results = self._read_feed()
        if results:
            done = {id(r[0]) for r in results}
            self.inflight = [i for i in self.inflight if id(i) not in done]
        return results

    def look_due(self, every_s: float) -> bool:
        """Whether a look between claims is worth its requests: without a feed (polls only),
        when the feed was last read `every_s` ago or more, or a message is due for a poll. A
        look right after a flush read the feed would mostly find nothing new, and its
        acknowledgements are taken by the next flush (or the final settle) anyway."""
        if not self.inflight:
            return False
        now = self.clock.monotonic()
        if self.cursor is None or now - self.read_at >= every_s:
            return True
        poll_after = max(float(conf.get("ACK_POLL_AFTER_S")), float(conf.get("ACK_FEED_GRACE_S")))
        return any(now - i.sent_at >= poll_after for i in self.inflight)

    def look(self) -> list[Ack]:
        """One look for acknowledgements: the feed, then a poll of each message unconfirmed for
        long enough. Confirmed items (also those a webhook confirmed meanwhile) leave the
        in-flight list; polled ones still queued wait again."""
        poll_after = float(conf.get("ACK_POLL_AFTER_S"))
        if self.cursor is not None:
            poll_after = max(poll_after, float(conf.get("ACK_FEED_GRACE_S")))
        results = self._read_feed()
        now = self.clock.monotonic()
        matched = {id(r[0]) for r in results}
        due = [i for i in self.inflight if id(i) not in matched and now - i.sent_at >= poll_after]
        still = self._still_sending(due) if due else set()
        waiting = []
        for item in due:
            if item.row["id"] not in still:
                matched.add(id(item))  # confirmed by a webhook meanwhile
                continue
            ack = self._poll(item)
            if ack is None:
                waiting.append(item)
            else:
                results.append(ack)
                matched.add(id(item))
        now = self.clock.monotonic()
        for item in waiting:
            item.sent_at = now
        self.inflight = [i for i in self.inflight if id(i) not in matched]
        return results

    @staticmethod
    def _still_sending(due: list[Prepared]) -> set[int]:
        """Receivers of `due` still SENDING with their message."""
        return set(
            MessageReceiver.objects.filter(
                pk__in=[i.row["id"] for i in due], send_status=RS.SENDING,
                message_id__in=[i.message_id for i in due],
            ).values_list("pk", flat=True)
        )

    def _poll(self, item: Prepared) -> Ack | None:
        """The message's status from the instance, or None while it is still queued (or the poll
        failed)."""
        try:
            data = self.client.get_message_status(self.sender.account_wxid, item.message_uuid)
        except Exception as exc:  # noqa: BLE001
            log.info("status poll failed for %s: %s", item.message_uuid, exc)
            return None
        self.stats["polled"] += 1
        if data.get("status") == "queued":
            return None
        return (item, data.get("status"), data.get("error"), data.get("message_id"))

    def outcomes(self, results: list[Ack]) -> tuple[list[Outcome], Outcome | None]:
        """Outcomes of acknowledgements, and the Outcome that stops the account (risk control
        reported after acceptance), if any; the messages acknowledged after it stay SENDING for
        the reclaim, whose re-send with the same uuid reads their state back."""
        outcomes = []
        for item, status, error, instance_message_id in results:
            o = self.sender.status_outcome(item, status, error, instance_message_id)
            if o.kind == K.STOP:
                outcomes.append(Outcome(o.receiver_id, o.message_id, K.FAILED, o.code, o.error))
                return outcomes, o
            if o.kind == K.PAUSE:  # the account went offline after accepting: retry later
                o = Outcome(o.receiver_id, o.message_id, K.RETRY, o.code, o.error, keep_message=False,
                            delay_s=backoff_s(item.row["retry_count"]))
            if o.kind != K.QUEUED:
                outcomes.append(o)
        return outcomes, None
