"""Creating send tasks: one message or a broadcast, for an acting user.

Every send is a task (type `single` for one message): one pipeline, one set of guarantees
(claims, pacing, retries, idempotency by `message_uuid`). `create_task` checks the
send-versus-broadcast permission (`permissions.require_send`), then the whole request
(`TaskRequest.clean`), then writes the task and its receivers in one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from contacts.models import WeworkAccount
from wework import shards

from .. import content as content_mod, permissions, rendering
from ..models import MessageTask, TaskStatus
from .lifecycle import enqueue_start
from .receivers import materialize_receivers, receiver_values
from .requests import TaskRequest, ValidTask
from .senders import get_account
from .templates import mark_template_used


def create_task(user: User, request: TaskRequest, *, start: bool = True) -> MessageTask:
    """Check the permission and the request, then create the task and its receivers in one
    transaction; started on commit unless `start` is off or it is scheduled later.

    Raises MessagingInvalid (field messages; nothing written) or SendPermissionDenied."""
    account = get_account(request.account)
    permissions.require_send(user, account, request.permission_task_type())
    valid = request.clean(account)
    return _write(user, valid, start=start)


@dataclass(frozen=True)
class ReceiverPreview:
    name: str
    wxid: str
    content: str


@dataclass(frozen=True)
class TaskPreview:
    """What a task would do, shown before it is sent: how many receive it, and the message as
    the first few of them would read it."""

    task_type: str
    audience: int
    samples: list[ReceiverPreview]


def preview_task(user: User, request: TaskRequest, *, sample: int = 3) -> TaskPreview:
    """The same checks as `create_task` (permission, request, rendering for every receiver),
    nothing written. Raises what `create_task` raises."""
    account = get_account(request.account)
    permissions.require_send(user, account, request.permission_task_type())
    valid = request.clean(account)
    defaults = rendering.defaults_of(valid.template.variables if valid.template is not None else [])
    samples = []
    for receiver in valid.receivers[:sample]:
        body = rendering.render(valid.body, receiver_values(valid.template_variables, receiver, defaults))
        samples.append(ReceiverPreview(name=receiver.get("name") or receiver["wxid"], wxid=receiver["wxid"],
                                       content=content_mod.content_to_text(valid.message_type, body)))
    return TaskPreview(task_type=valid.task_type, audience=len(valid.receivers), samples=samples)


def send_message(user: User, *, account: WeworkAccount | int, receiver_wxid: str, receiver_type: str = "contact",
                 message_type: str, content, at_members=None, reply_to=None,
                 scheduled_time: datetime | None = None, start: bool = True) -> MessageTask:
    """Send one message to one contact or group, now or at `scheduled_time` (a single task)."""
    request = TaskRequest.single(
        account=account, receiver_wxid=receiver_wxid, receiver_type=receiver_type, message_type=message_type,
        content=content, at_members=at_members, reply_to=reply_to, scheduled_time=scheduled_time,
    )
    return create_task(user, request, start=start)


def _write(user: User, valid: ValidTask, *, start: bool) -> MessageTask:
    now = timezone.now()
    with transaction.atomic():
        task = MessageTask.objects.create(
            task_uuid=shards.new_uuid(),
            task_name=valid.task_name,
            task_type=valid.task_type,
            account=valid.account,
            message_type=valid.message_type,
            message_content=content_mod.content_to_text(valid.message_type, valid.body),
            template=valid.template,
            template_variables=valid.template_variables or None,
            target_count=len(valid.receivers),
            priority=valid.priority,
            send_interval=valid.send_interval,
            max_retry=valid.max_retry,
            scheduled_time=valid.scheduled_time,
            created_by=user,
            status=TaskStatus.PENDING,
        )
        materialize_receivers(task, valid.receivers, now=now)
        if valid.template is not None:
            mark_template_used(valid.template.pk, now)
        if start and (valid.scheduled_time is None or valid.scheduled_time <= now):
            transaction.on_commit(lambda: enqueue_start(task.pk))
    return task
