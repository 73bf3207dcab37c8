"""Sending prepared messages to the instance and reading its answers as Outcomes."""
from __future__ import annotations

import logging

from contacts.models import WeworkAccount
from instances import protocol
from instances.client import InstanceClient
from instances.exceptions import InstanceError
from instances.models import WeworkInstance

from .. import conf
from ..models import MessageTask
from .outcomes import Outcome, OutcomeKind as K, error_code, error_outcome, status_outcome
from .preparing import Prepared

log = logging.getLogger("messaging.dispatch")

#: Codes with which an instance refuses a batch request as a whole (an unknown command on an
#: instance that offered batches, an item it rejects outright): each item on its own tells which.
BATCH_REFUSED = frozenset({"target_not_found", "invalid_request", "unsupported_type"})


def instance_client(instance: WeworkInstance) -> InstanceClient:
    """The client a dispatcher sends with: keep-alive `http.client` connections (one per
    sending thread). Responses are not schema-validated here (a measurable cost per send): the
    dispatcher reads `status`, `error` and `message_id` defensively and treats anything else
    as unknown."""
    return InstanceClient.for_instance(
        instance, timeout=float(conf.get("SEND_TIMEOUT_S")), max_retries=1, backoff_base_s=0.2,
        validate_responses=False, stdlib_http=True,
    )


class Sender:
    """Sends one task's prepared messages through one account of one instance."""

    def __init__(self, client: InstanceClient, task: MessageTask, account: WeworkAccount, stats: dict):
        self.client = client
        self.task = task
        self.account = account
        self.account_wxid = account.wxid
        self.stats = stats
        self.batches_refused = False  # the instance refused a batch as a whole: single sends from now on

    def batch_send_max(self) -> int:
        """Messages per batch send: BATCH_SEND_SIZE, capped by what the instance offers
        (`batch_send_max` in its capabilities, revision 1.1); 0 = one send per request."""
        wanted = int(conf.get("BATCH_SEND_SIZE"))
        if wanted <= 1:
            return 0
        try:
            offered = int(self.client.capabilities().get("batch_send_max") or 0)
        except Exception as exc:  # noqa: BLE001 - an older or failing instance: single sends
            log.info("capabilities of instance %s unavailable (%s); single sends", self.account.instance_id, exc)
            return 0
        return max(0, min(wanted, offered, protocol.MAX_BATCH_SEND))

    def send(self, item: Prepared) -> Outcome:
        """One `send_message`; its answer, or its error, as an Outcome."""
        try:
            data = self.client.send_message(
                self.account_wxid,
                client_msg_id=item.message_uuid,
                conversation_id=item.row["receiver_wxid"],
                conversation_type=item.conversation_type,
                type=self.task.message_type,
                content=item.content,
                mentions=item.mentions if item.conversation_type == "room" else None,
                reply_to=item.reply_to,
            )
        except Exception as exc:  # InstanceError and anything unexpected from the transport
            if not isinstance(exc, InstanceError):
                log.exception("unexpected error sending receiver %s", item.row["id"])
            return self.error_outcome(item, error_code(exc), str(getattr(exc, "message", exc)),
                                      getattr(exc, "retry_after_s", None))
        self.stats["sent"] += 1
        return self.status_outcome(item, data.get("status"), data.get("error"), data.get("message_id"))

    def send_batch(self, chunk: list[Prepared]) -> list[Outcome]:
        """One Outcome per item of `chunk`, in order, from one batch send."""
        bodies = [
            self.client.message_body(
                item.message_uuid, item.row["receiver_wxid"], item.conversation_type, self.task.message_type,
                item.content, item.mentions if item.conversation_type == "room" else None, item.reply_to,
            )
            for item in chunk
        ]
        try:
            results = self.client.send_messages(self.account_wxid, bodies)
        except InstanceError as exc:
            return self._batch_error(chunk, exc)
        except Exception as exc:  # anything unexpected from the transport
            log.exception("unexpected error sending a batch of %d", len(chunk))
            outcomes = [self.error_outcome(item, "internal", str(exc)) for item in chunk]
            for o in outcomes:
                o.keep_message = True  # the instance may hold any of them
            return outcomes
        outcomes = []
        for item, result in zip(chunk, results):
            result = result if isinstance(result, dict) else {}
            status = result.get("status")
            if status == protocol.NOT_ATTEMPTED:
                outcomes.append(release(item))
                continue
            if status in ("queued", "sent"):
                self.stats["sent"] += 1
            outcomes.append(self.status_outcome(item, status, result.get("error"), result.get("message_id")))
        return outcomes

    def _batch_error(self, chunk: list[Prepared], exc: InstanceError) -> list[Outcome]:
        code = error_code(exc)
        if code in BATCH_REFUSED:
            self.batches_refused = True
            return self.send_each(chunk)
        first = self.error_outcome(chunk[0], code, str(exc.message), exc.retry_after_s)
        if first.kind in (K.STOP, K.PAUSE) or code == "rate_limited":
            # refused as a whole for the account: nothing was handed over after the first
            return [first] + [release(i) for i in chunk[1:]]
        # transient (unreachable, timeout, internal): the instance may hold any of them, so each
        # is retried with its uuid
        outcomes = []
        for item in chunk:
            o = self.error_outcome(item, code, str(exc.message), exc.retry_after_s)
            if o.kind == K.RETRY:
                o.keep_message = True
            outcomes.append(o)
        return outcomes

    def send_each(self, chunk: list[Prepared]) -> list[Outcome]:
        """Outcomes of sending `chunk` one message at a time, as a batch would answer: after an
        answer that concerns the account (stop, pause, rate limited) the rest are released."""
        outcomes = []
        for index, item in enumerate(chunk):
            outcome = self.send(item)
            outcomes.append(outcome)
            if concerns_account(outcome):
                outcomes.extend(release(i) for i in chunk[index + 1 :])
                break
        return outcomes

    def status_outcome(self, item: Prepared, status, error=None, instance_message_id=None) -> Outcome:
        return status_outcome(item.row["id"], item.message_id, item.row["retry_count"], self.task.max_retry,
                              self.account.pk, status, error, instance_message_id)

    def error_outcome(self, item: Prepared, code: str, message: str, retry_after_s=None) -> Outcome:
        return error_outcome(item.row["id"], item.message_id, item.row["retry_count"], self.task.max_retry,
                             self.account.pk, code, message, retry_after_s)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing must not hide the real outcome
            pass


def release(item: Prepared) -> Outcome:
    """The item was never handed over: back to PENDING (SKIPPED in a cancelled task)."""
    return Outcome(item.row["id"], item.message_id, K.RELEASE)


def concerns_account(outcome: Outcome) -> bool:
    """An answer that holds back everything after it for the account (stop, pause, rate limit)."""
    return outcome.kind in (K.STOP, K.PAUSE) or outcome.code == "rate_limited"
