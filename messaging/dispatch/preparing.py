"""Preparing claimed receivers: each one's message row (monthly shard) with its rendered content
and a fresh `message_uuid`, created inside the claim's transaction before anything is sent. The
uuid is the instance's `client_msg_id`: a repeated send after a crash or a reclaimed claim
returns the first result and sends nothing."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from wework import shards

from .. import content as content_mod, rendering
from ..models import ChatType, Message, MessageTask, ReceiverType, SendStatus
from ..services.receivers import MENTIONS_KEY, REPLY_TO_KEY, receiver_values
from .claims import insert_messages
from .outcomes import Outcome, OutcomeKind

MESSAGE_FIELDS = ("id", "message_uuid", "message_type", "message_content", "at_members", "chat_type")


@dataclass
class Prepared:
    """A claimed receiver ready to send: its row, its message and what goes over the wire."""

    row: dict
    message_id: int
    message_uuid: str
    conversation_type: str  # "single" or "room" (the protocol's)
    content: dict
    mentions: object = None
    reply_to: str | None = None
    sent_at: float = 0.0  # monotonic time it was handed over ("queued"), for acknowledgements


class Preparer:
    """What every receiver of one task shares: content, template defaults, variables, @mentions,
    the message replied to."""

    def __init__(self, task: MessageTask):
        self.task = task
        self.body = content_mod.parse_content(task.message_type, task.message_content)
        try:  # parsed once for the task, rendered per receiver
            self.template: rendering.Compiled | None = rendering.compile_content(self.body)
            self.template_error: Exception | None = None
        except rendering.TemplateSyntaxError as exc:
            self.template, self.template_error = None, exc
        self.defaults = rendering.defaults_of(task.template.variables) if task.template_id and task.template else {}
        self.variables = dict(task.template_variables or {})
        self.mentions = self.variables.pop(MENTIONS_KEY, None)
        reply_to = self.variables.pop(REPLY_TO_KEY, None)
        self.parent_id = int(reply_to) if reply_to else None
        self.reply_to = None
        if reply_to:
            parent = shards.get_or_none(Message, reply_to)
            if parent is not None:
                meta = parent.message_metadata or {}
                self.reply_to = meta.get("instance_message_id") or parent.message_uuid

    def prepare(self, rows: list[dict], now: datetime) -> tuple[list[Prepared], list[Outcome], dict[int, int]]:
        """Insert the message rows of receivers that have none, load the others; returns
        (Prepared items in receiver order, Outcomes of rows that cannot be rendered,
        {receiver_id: new message_id}). Runs inside the claim's transaction."""
        existing = self._existing_messages(rows)
        prepared, failed, new_rows = [], [], []
        uuids = iter(shards.new_uuids(len(rows)))
        for r in rows:
            ctype = "room" if r["receiver_type"] == ReceiverType.GROUP else "single"
            m = existing.get(r["message_id"]) if r["message_id"] else None
            if m is not None:  # a retry with the same uuid, or a reclaimed claim
                mentions = "all" if m.at_members == ["all"] else m.at_members
                prepared.append(Prepared(r, m.pk, m.message_uuid, ctype, content_mod.from_message(m),
                                         mentions, self.reply_to))
                continue
            receiver = {"wxid": r["receiver_wxid"], "name": r["receiver_name"], "variables": r["variables"] or {}}
            try:
                if self.template is None:
                    raise self.template_error  # type: ignore[misc]
                rendered = self.template.render(receiver_values(self.variables, receiver, self.defaults))
            except (rendering.MissingVariablesError, rendering.TemplateSyntaxError) as exc:
                failed.append(Outcome(r["id"], None, OutcomeKind.FAILED, "template_error", str(exc)))
                continue
            mentions = (r["variables"] or {}).get(MENTIONS_KEY, self.mentions) if ctype == "room" else None
            new_rows.append((r, ctype, rendered, mentions,
                             self._message_row(r, ctype, rendered, mentions, now, next(uuids))))
        links = {}
        if new_rows:
            ids = insert_messages([n[4] for n in new_rows])
            for (r, ctype, rendered, mentions, row), mid in zip(new_rows, ids):
                prepared.append(Prepared(r, mid, row["message_uuid"], ctype, rendered, mentions, self.reply_to))
                links[r["id"]] = mid
        prepared.sort(key=lambda p: p.row["id"])
        return prepared, failed, links

    @staticmethod
    def _existing_messages(rows: list[dict]) -> dict[int, Message]:
        groups: dict[type[Message], list[int]] = {}
        for r in rows:
            if r["message_id"]:
                try:
                    groups.setdefault(shards.model_for_id(Message, r["message_id"]), []).append(r["message_id"])
                except shards.ShardError:
                    pass
        existing = {}
        for model, ids in groups.items():
            for m in model._base_manager.filter(pk__in=ids).only(*MESSAGE_FIELDS):
                existing[m.pk] = m
        return existing

    def _message_row(self, r: dict, ctype: str, rendered: dict, mentions, now: datetime, message_uuid: str) -> dict:
        task = self.task
        return {
            "message_uuid": message_uuid,
            "account_id": task.account_id,
            "chat_type": ChatType.GROUP if ctype == "room" else ChatType.PRIVATE,
            "chat_wxid": r["receiver_wxid"],
            "message_type": task.message_type,
            "message_metadata": {"direction": "out", "receiver_id": r["id"]},
            "send_status": SendStatus.PENDING,
            "retry_count": r["retry_count"],
            "task_id": task.pk,
            "parent_message_id": self.parent_id,
            "at_members": mentions if isinstance(mentions, list) else (["all"] if mentions == "all" else None),
            "is_scheduled": task.scheduled_time is not None,
            "scheduled_time": task.scheduled_time,
            "updated_at": now,
            **content_mod.to_columns(task.message_type, rendered),
        }
