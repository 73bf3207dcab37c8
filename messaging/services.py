"""Messaging domain logic: templates, sends and tasks, task actions, counters, inbound capture.

Views, API, Celery tasks and commands call these functions; they hold no logic of their own.
Dispatch (claiming receivers, pacing, talking to instances) lives in `dispatch.py`; inbound
events (`message.received`, `message.status`) in `inbound.py`, re-exported here.

Every send goes through a task (type `single` for one message): one pipeline, one set of
guarantees (claims, pacing, retries, idempotency by `message_uuid`). Errors are raised as
`django.core.exceptions.ValidationError` with a dict of field messages; API and forms turn them
into HTTP 400 / form errors.
"""
import logging
from datetime import timedelta
from functools import wraps

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F
from django.utils import timezone
from django.utils.translation import gettext as _

from wework import shards

from . import conf, content as content_mod, pacing, rendering
from .models import (
    Message,
    MessageReceiver,
    MessageTask,
    MessageTemplate,
    ReceiverSendStatus as RS,
    ReceiverType,
    TaskPriority,
    TaskStatus,
    TaskType,
    TemplateStatus,
)

log = logging.getLogger("messaging")

MENTIONS_KEY = "@mentions"  # reserved keys in template_variables / receiver variables
REPLY_TO_KEY = "@reply_to"
FINAL_TASK_STATUSES = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


# ------------------------------------------------------------------------------------------
# Accounts
# ------------------------------------------------------------------------------------------

def get_account(account_or_id):
    from contacts.models import WeworkAccount

    if isinstance(account_or_id, WeworkAccount):
        return account_or_id
    try:
        return WeworkAccount.objects.select_related("instance").get(pk=int(account_or_id))
    except (WeworkAccount.DoesNotExist, TypeError, ValueError):
        raise ValidationError({"account": _("Unknown account.")})


def check_account_can_send(account):
    """Raise ValidationError({"account": ...}) unless the account may send now."""
    from contacts.models import AccountStatus

    if account is None or getattr(account, "deleted_at", None) is not None:
        raise ValidationError({"account": _("Unknown account.")})
    if account.status == AccountStatus.BANNED:
        raise ValidationError({"account": _("The account is banned; it cannot send messages.")})
    stopped = pacing.blocked_reason(account.pk)
    if stopped:
        raise ValidationError(
            {"account": _("Sending is stopped for this account after a risk-control signal "
                          "(%(reason)s). Clear the stop after checking the account.")
             % {"reason": stopped}}
        )
    if account.status == AccountStatus.ABNORMAL:
        raise ValidationError(
            {"account": _("The account is flagged abnormal (risk control); it cannot send.")}
        )
    if account.status != AccountStatus.ONLINE or not account.is_logged_in:
        raise ValidationError(
            {"account": _("The account is offline; log it in before sending.")}
        )
    instance = account.instance
    if instance is None or getattr(instance, "deleted_at", None) is not None:
        raise ValidationError({"account": _("The account's instance no longer exists.")})


# ------------------------------------------------------------------------------------------
# Templates
# ------------------------------------------------------------------------------------------

def compose_templates():
    """The templates the compose page offers (enabled ones), in their display order."""
    return MessageTemplate.objects.filter(status=TemplateStatus.ENABLED).order_by("sort_order", "name")


def template_content(template):
    """The template's content as a dict (text → {"text": ...})."""
    return content_mod.parse_content(template.message_type, template.content)


def validate_template(message_type, content_text, variables):
    """Check type, syntax and declarations; return (normalized declarations, content dict)."""
    if message_type not in content_mod.MESSAGE_TYPES:
        raise ValidationError({"message_type": _("Unknown message type.")})
    try:
        declarations = rendering.normalize_declarations(variables)
    except ValueError as exc:
        raise ValidationError({"variables": str(exc)})
    content = content_mod.parse_content(message_type, content_text)
    try:
        rendering.placeholders(content)
        rendering.check_declared(content, declarations)
    except (rendering.TemplateSyntaxError, ValueError) as exc:
        raise ValidationError({"content": str(exc)})
    # The shape must be valid once rendered with sample values (URLs etc. not checked online).
    sample = {d["name"]: (d["default"] if d["default"] is not None else d["name"]) for d in declarations}
    sample.update({k: k for k in rendering.BUILTIN_VARIABLES})
    rendered = rendering.render(content, sample)
    content_mod.validate_content(message_type, rendered, check_media=False)
    return declarations, content


def preview_template(template_or_data, values=None):
    """Render with `values` over the declared defaults; missing ones show as «name»."""
    if isinstance(template_or_data, MessageTemplate):
        message_type = template_or_data.message_type
        content_text = template_or_data.content
        variables = template_or_data.variables
    else:
        message_type, content_text, variables = template_or_data
    declarations, content = validate_template(message_type, content_text, variables)
    merged = rendering.defaults_of(declarations)
    merged.update({k: v for k, v in (values or {}).items() if v not in (None, "")})
    missing = rendering.missing_variables(content, merged)
    for name in missing:
        merged[name] = f"«{name}»"
    try:
        rendered = rendering.render(content, merged)
    except rendering.TemplateSyntaxError as exc:
        raise ValidationError({"values": str(exc)})
    return {
        "message_type": message_type,
        "content": rendered,
        "text": rendered.get("text") if message_type == "text" else content_mod.summary(message_type, rendered),
        "missing": sorted(missing),
        "variables": declarations,
    }


def prepare_template(template):
    """Validate a template's content and variables; normalize them and fill the preview."""
    declarations, content = validate_template(template.message_type, template.content, template.variables)
    tags = template.tags
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise ValidationError({"tags": _("Tags must be a list of strings.")})
    template.content = content_mod.content_to_text(template.message_type, content)
    template.variables = declarations
    template.preview_content = content_mod.content_to_text(
        template.message_type,
        preview_template((template.message_type, template.content, declarations))["content"],
    )
    return template


@transaction.atomic
def save_template(user, data, template=None):
    """Create or update a template from a dict of fields; validates content and variables."""
    if template is None:
        template = MessageTemplate(template_uuid=shards.new_uuid(), created_by=user)
    for field in ("name", "category", "message_type", "content", "variables", "tags", "thumbnail_url",
                  "is_public", "status", "sort_order"):
        if field in data:
            setattr(template, field, data[field])
    if "is_system" in data and user is not None and user.is_superuser:
        template.is_system = bool(data["is_system"])
    if not template.name:
        raise ValidationError({"name": _("A template needs a name.")})
    prepare_template(template)
    template.save()
    return template


def mark_template_used(template_id, now=None):
    MessageTemplate.all_objects.filter(pk=template_id).update(
        use_count=F("use_count") + 1, last_used_at=now or timezone.now()
    )


# ------------------------------------------------------------------------------------------
# Receivers
# ------------------------------------------------------------------------------------------

_TYPE_NAMES = {
    "contact": ReceiverType.CONTACT, "single": ReceiverType.CONTACT, "1": ReceiverType.CONTACT,
    1: ReceiverType.CONTACT, "group": ReceiverType.GROUP, "room": ReceiverType.GROUP,
    "2": ReceiverType.GROUP, 2: ReceiverType.GROUP,
}


def _max_receivers():
    return int(conf.get("MAX_RECEIVERS_PER_TASK"))


def normalize_receivers(items):
    """Explicit receivers → list of dicts {type, wxid, name, variables}; de-duplicated."""
    if items is None:
        return []
    if not isinstance(items, (list, tuple)):
        raise ValidationError({"receivers": _("Receivers must be a list.")})
    limit = _max_receivers()
    if len(items) > limit:
        raise ValidationError(
            {"receivers": _("%(n)d receivers is more than the limit of %(limit)d per task; "
                            "split the broadcast into several tasks.") % {"n": len(items), "limit": limit}}
        )
    out = []
    seen = set()
    for index, item in enumerate(items):
        if isinstance(item, str):
            item = {"wxid": item}
        if not isinstance(item, dict):
            raise ValidationError({"receivers": _("Receiver %(i)d is not an object.") % {"i": index + 1}})
        wxid = str(item.get("wxid") or item.get("receiver_wxid") or "").strip()
        if not wxid or len(wxid) > 100:
            raise ValidationError({"receivers": _("Receiver %(i)d has no valid wxid.") % {"i": index + 1}})
        rtype = _TYPE_NAMES.get(item.get("type", item.get("receiver_type", "contact")))
        if rtype is None:
            raise ValidationError(
                {"receivers": _("Receiver %(i)d has an unknown type; use contact or group.") % {"i": index + 1}}
            )
        variables = item.get("variables") or {}
        if not isinstance(variables, dict):
            raise ValidationError({"receivers": _("Receiver %(i)d: variables must be an object.") % {"i": index + 1}})
        key = (int(rtype), wxid)
        if key in seen:
            continue
        seen.add(key)
        out.append({"type": int(rtype), "wxid": wxid, "name": item.get("name"), "variables": variables})
    return out


def _contact_name(c):
    return c.get("remark") or c.get("nickname") or c.get("wxid")


def resolve_explicit_receivers(account, receivers):
    """Check every explicit receiver exists among the account's contacts/groups; fill names."""
    from contacts.models import Contact, Group

    instance_id = account.instance_id
    by_type = {ReceiverType.CONTACT: [], ReceiverType.GROUP: []}
    for r in receivers:
        by_type[r["type"]].append(r)
    unknown = []
    for rtype, items in by_type.items():
        if not items:
            continue
        if rtype == ReceiverType.CONTACT:
            qs = shards.for_instance(Contact, instance_id).filter(account_id=account.pk)
            key, fields = "wxid", ("wxid", "nickname", "remark")
        else:
            qs = shards.for_instance(Group, instance_id).filter(account_id=account.pk)
            key, fields = "group_wxid", ("group_wxid", "group_name")
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            found = {
                row[key]: row
                for row in qs.filter(**{f"{key}__in": [r["wxid"] for r in chunk]}).values(*fields)
            }
            for r in chunk:
                row = found.get(r["wxid"])
                if row is None:
                    unknown.append(r["wxid"])
                elif not r.get("name"):
                    r["name"] = (
                        _contact_name(row) if rtype == ReceiverType.CONTACT
                        else (row.get("group_name") or row["group_wxid"])
                    )
    if unknown:
        shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise ValidationError(
            {"receivers": _("%(n)d receivers are not contacts or groups of this account: %(list)s.")
             % {"n": len(unknown), "list": shown}}
        )
    return receivers


def select_receivers(account, filters):
    """Receivers chosen by filters over the account's contacts and groups.

    filters: {"source": "contacts"|"groups"|"all", "tags": [..] (any of), "contact_type": 1..3,
              "search": "text in name/remark", "include_blocked": false}
    Contacts that are blocked, deleted or not friends any more are left out unless
    include_blocked is set.
    """
    from contacts.models import Contact, Group

    if not isinstance(filters, dict):
        raise ValidationError({"filters": _("Filters must be an object.")})
    source = filters.get("source", "contacts")
    if source not in ("contacts", "groups", "all"):
        raise ValidationError({"filters": _("source must be contacts, groups or all.")})
    tags = filters.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    tags = set(tags)
    search = (filters.get("search") or "").strip()
    limit = _max_receivers()
    out = []

    def take(row):
        out.append(row)
        if len(out) > limit:
            raise ValidationError(
                {"filters": _("The filters select more than %(limit)d receivers, the limit per task; "
                              "narrow them or split the broadcast.") % {"limit": limit}}
            )

    if source in ("contacts", "all"):
        qs = shards.for_instance(Contact, account.instance_id).filter(account_id=account.pk)
        if filters.get("contact_type"):
            qs = qs.filter(contact_type=int(filters["contact_type"]))
        if not filters.get("include_blocked"):
            qs = qs.filter(is_blocked=False).exclude(friend_status__in=[2, 3])
        if search:
            from django.db.models import Q

            qs = qs.filter(Q(nickname__icontains=search) | Q(remark__icontains=search) | Q(wxid=search))
        for row in qs.order_by("id").values_list("wxid", "nickname", "remark", "tags").iterator(chunk_size=5000):
            if tags and not (tags & set(row[3] or [])):
                continue
            take({"type": ReceiverType.CONTACT, "wxid": row[0], "name": row[2] or row[1] or row[0], "variables": {}})
    if source in ("groups", "all"):
        qs = shards.for_instance(Group, account.instance_id).filter(account_id=account.pk)
        if search:
            qs = qs.filter(group_name__icontains=search)
        for row in qs.order_by("id").values_list("group_wxid", "group_name", "tags").iterator(chunk_size=5000):
            if tags and not (tags & set(row[2] or [])):
                continue
            take({"type": ReceiverType.GROUP, "wxid": row[0], "name": row[1] or row[0], "variables": {}})
    return out


# ------------------------------------------------------------------------------------------
# Tasks
# ------------------------------------------------------------------------------------------

def receiver_values(task_variables, receiver, defaults=None):
    """Variables for one receiver: built-ins < template defaults < task < receiver."""
    values = {"receiver_name": receiver.get("name") or receiver["wxid"], "receiver_wxid": receiver["wxid"]}
    if defaults:
        values.update(defaults)
    for source in (task_variables or {}, receiver.get("variables") or {}):
        values.update({k: v for k, v in source.items() if not k.startswith("@")})
    return values


def _check_mentions(value):
    if value in (None, "", []):
        return None
    if value == "all":
        return "all"
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or len(value) > 500:
        raise ValidationError({"at_members": _("@members must be a list of member ids or \"all\".")})
    return value


def check_mentions_are_members(account, mentions, receivers):
    """@mentions need group chats to mention in: refuse them (also "all") on a task without
    group receivers, and name the member ids that are not current members (in the platform's
    group members, the instance's shard) of every group receiver."""
    from contacts.models import Group, GroupMember

    group_wxids = [r["wxid"] for r in receivers if r["type"] == ReceiverType.GROUP]
    if not group_wxids:
        raise ValidationError({"at_members": _(
            "@members only apply to group chats, and this task sends to no group chat.")})
    if mentions == "all":
        return
    groups = shards.for_instance(Group, account.instance_id)
    members = shards.for_instance(GroupMember, account.instance_id)
    unknown = set()
    for start in range(0, len(group_wxids), 500):
        chunk = group_wxids[start : start + 500]
        ids = dict(groups.filter(account_id=account.pk, group_wxid__in=chunk).values_list("pk", "group_wxid"))
        found = set(
            members.filter(group_id__in=list(ids), member_wxid__in=mentions, left_at__isnull=True)
            .values_list("group_id", "member_wxid")
        )
        unknown.update(m for m in mentions for group_id in ids if (group_id, m) not in found)
    if unknown:
        shown = sorted(unknown)
        raise ValidationError({"at_members": _(
            "Not members of the group chats of this task: %(list)s.") % {
                "list": ", ".join(shown[:10]) + (" …" if len(shown) > 10 else "")}})


def _check_reply_to(account, reply_to):
    if reply_to in (None, ""):
        return None
    try:
        parent = shards.get(Message, int(reply_to))
    except (Message.DoesNotExist, TypeError, ValueError):
        raise ValidationError({"reply_to": _("The message to reply to does not exist.")})
    if parent.account_id != account.pk:
        raise ValidationError({"reply_to": _("The message to reply to belongs to another account.")})
    return parent.pk


def create_task(
    user,
    *,
    account,
    message_type=None,
    content=None,
    template=None,
    template_variables=None,
    receivers=None,
    filters=None,
    task_type=None,
    task_name=None,
    priority=TaskPriority.MEDIUM,
    scheduled_time=None,
    send_interval=0,
    max_retry=3,
    at_members=None,
    reply_to=None,
    start=True,
):
    """Validate everything, then create the task and its receivers in one transaction.

    Nothing is written when any check fails: unknown account or receiver, account that cannot
    send, 0 receivers or more than MAX_RECEIVERS_PER_TASK, missing template variable for any
    receiver, bad content, unreachable media URL, text over the limit.
    """
    account = get_account(account)
    check_account_can_send(account)
    errors = {}

    # Content: a template or a direct content.
    tmpl = None
    if template not in (None, ""):
        tmpl = template if isinstance(template, MessageTemplate) else (
            MessageTemplate.objects.filter(pk=template).first() if str(template).isdigit() else None
        )
        if tmpl is None:
            raise ValidationError({"template": _("Unknown template.")})
        if tmpl.status != TemplateStatus.ENABLED:
            raise ValidationError({"template": _("The template is disabled.")})
        if message_type and message_type != tmpl.message_type:
            raise ValidationError({"message_type": _("The template is for %(type)s messages.") % {"type": tmpl.message_type}})
        message_type = tmpl.message_type
        declarations = rendering.normalize_declarations(tmpl.variables)
        body = template_content(tmpl)
    else:
        if not message_type:
            raise ValidationError({"message_type": _("Choose a message type.")})
        if message_type not in content_mod.MESSAGE_TYPES:
            raise ValidationError({"message_type": _("Unknown message type %(type)r.") % {"type": message_type}})
        body = content_mod.parse_content(message_type, content)
        declarations = []
        try:
            rendering.placeholders(body)
        except rendering.TemplateSyntaxError as exc:
            raise ValidationError({"content": str(exc)})
    template_variables = dict(template_variables or {})
    if not all(isinstance(k, str) for k in template_variables):
        raise ValidationError({"template_variables": _("Variable names must be text.")})

    mentions = _check_mentions(at_members if at_members is not None else template_variables.get(MENTIONS_KEY))
    parent_id = _check_reply_to(account, reply_to if reply_to is not None else template_variables.get(REPLY_TO_KEY))
    template_variables.pop(MENTIONS_KEY, None)
    template_variables.pop(REPLY_TO_KEY, None)
    if mentions:
        template_variables[MENTIONS_KEY] = mentions
    if parent_id:
        template_variables[REPLY_TO_KEY] = parent_id

    # Receivers.
    if receivers and filters:
        raise ValidationError({"receivers": _("Give either a receiver list or filters, not both.")})
    if filters:
        resolved = select_receivers(account, filters)
    else:
        resolved = resolve_explicit_receivers(account, normalize_receivers(receivers))
    if not resolved:
        raise ValidationError({"receivers": _("The task has no receivers; choose at least one contact or group.")})
    if len(resolved) > _max_receivers():
        raise ValidationError({"receivers": _("Too many receivers (limit %(limit)d).") % {"limit": _max_receivers()}})
    if mentions:
        check_mentions_are_members(account, mentions, resolved)
    if task_type is None:
        task_type = TaskType.SINGLE if len(resolved) == 1 else TaskType.BROADCAST
    if task_type not in TaskType.values:
        raise ValidationError({"task_type": _("Unknown task type.")})
    if task_type == TaskType.SINGLE and len(resolved) != 1:
        raise ValidationError({"task_type": _("A single task has exactly one receiver.")})

    # Render for every receiver: missing variables and over-long text are errors now.
    defaults = rendering.defaults_of(declarations)
    missing_by_name = {}
    first_rendered = None
    media_urls = set()
    try:
        for r in resolved:
            values = receiver_values(template_variables, r, defaults)
            missing = rendering.missing_variables(body, values)
            if missing:
                for name in missing:
                    missing_by_name.setdefault(name, []).append(r["wxid"])
                continue
            rendered = rendering.render(body, values)
            if first_rendered is None:
                first_rendered = content_mod.validate_content(message_type, rendered, check_media=False)
            elif message_type == "text":
                limit = int(conf.get("TEXT_MAX_LENGTH"))
                if len(rendered.get("text", "")) > limit:
                    raise ValidationError(
                        {"content": _("The text for %(wxid)s has %(n)d characters; the limit is %(limit)d.")
                         % {"wxid": r["wxid"], "n": len(rendered["text"]), "limit": limit}}
                    )
            if message_type in content_mod.MEDIA_TYPES and len(media_urls) < 5:
                media_urls.add(rendered.get("url"))
    except rendering.TemplateSyntaxError as exc:
        raise ValidationError({"content": str(exc)})
    if missing_by_name:
        parts = [
            _("%(name)s (for %(n)d receivers, e.g. %(wxid)s)") % {"name": name, "n": len(w), "wxid": w[0]}
            for name, w in sorted(missing_by_name.items())
        ]
        raise ValidationError({"template_variables": _("Missing template variables: %(list)s.") % {"list": "; ".join(parts)}})
    if message_type in content_mod.MEDIA_TYPES and conf.get("CHECK_MEDIA_URLS"):
        for url in media_urls:
            if url:
                content_mod.check_media_url(url)

    # Options.
    try:
        priority = int(priority or TaskPriority.MEDIUM)
        send_interval = int(send_interval or 0)
        max_retry = int(max_retry if max_retry is not None else 3)
    except (TypeError, ValueError):
        raise ValidationError({"priority": _("Priority, interval and retries must be whole numbers.")})
    if priority not in TaskPriority.values:
        errors["priority"] = _("Priority must be 1 (high), 2 (medium) or 3 (low).")
    if not 0 <= send_interval <= 3600:
        errors["send_interval"] = _("The interval must be between 0 and 3600 seconds.")
    if not 0 <= max_retry <= 10:
        errors["max_retry"] = _("Retries must be between 0 and 10.")
    if scheduled_time is not None and timezone.is_naive(scheduled_time):
        scheduled_time = timezone.make_aware(scheduled_time)
    if errors:
        raise ValidationError(errors)

    now = timezone.now()
    with transaction.atomic():
        task = MessageTask.objects.create(
            task_uuid=shards.new_uuid(),
            task_name=(task_name or "")[:200] or None,
            task_type=task_type,
            account=account,
            message_type=message_type,
            message_content=content_mod.content_to_text(message_type, body),
            template=tmpl,
            template_variables=template_variables or None,
            target_count=len(resolved),
            priority=priority,
            send_interval=send_interval,
            max_retry=max_retry,
            scheduled_time=scheduled_time,
            created_by=user,
            status=TaskStatus.PENDING,
        )
        materialize_receivers(task, resolved, now=now)
        if tmpl is not None:
            mark_template_used(tmpl.pk, now)
        if start and (scheduled_time is None or scheduled_time <= now):
            transaction.on_commit(lambda: _enqueue_start(task.pk))
    return task


def materialize_receivers(task, receivers, now=None):
    """Insert receiver rows with multi-row INSERTs in chunks (inside the caller's transaction)."""
    now = now or timezone.now()
    table = MessageReceiver._meta.db_table
    cols = ["task_id", "receiver_type", "receiver_wxid", "receiver_name", "send_status",
            "retry_count", "variables", "created_at", "updated_at"]
    qn = connection.ops.quote_name
    chunk = int(conf.get("MATERIALIZE_CHUNK"))
    placeholders = "(" + ", ".join(["%s"] * len(cols)) + ")"
    import json

    ts = _db_datetime(now)
    with connection.cursor() as cursor:
        for start in range(0, len(receivers), chunk):
            part = receivers[start : start + chunk]
            params = []
            for r in part:
                variables = r.get("variables") or None
                params.extend([
                    task.pk, int(r["type"]), r["wxid"], (r.get("name") or None) and str(r["name"])[:100],
                    RS.PENDING, 0, json.dumps(variables, ensure_ascii=False) if variables else None, ts, ts,
                ])
            sql = (
                f"INSERT INTO {qn(table)} ({', '.join(qn(c) for c in cols)}) VALUES "
                + ", ".join([placeholders] * len(part))
            )
            cursor.execute(sql, params)


def _db_datetime(value):
    """A datetime as the backend stores it (naive UTC on MySQL/SQLite with USE_TZ)."""
    return connection.ops.adapt_datetimefield_value(value)


def _enqueue_start(task_id):
    from . import tasks

    tasks.start_task.delay(task_id)


def send_message(user, *, account, receiver_wxid, receiver_type="contact", message_type, content,
                 at_members=None, reply_to=None, scheduled_time=None, start=True):
    """Send one message to one contact or group, now or at `scheduled_time` (a single task)."""
    return create_task(
        user,
        account=account,
        message_type=message_type,
        content=content,
        receivers=[{"wxid": receiver_wxid, "type": receiver_type}],
        task_type=TaskType.SINGLE,
        at_members=at_members,
        reply_to=reply_to,
        scheduled_time=scheduled_time,
        start=start,
    )


# --- Task lifecycle --------------------------------------------------------------------------
#
# Task actions change rows with QuerySet.update() (conditional, race-free), which fires no model
# signal: each one writes its own audit row (monitoring.audit.record) with the actor of the
# context (request user, task/beat, command), the task, the old and the new status. The row is
# written in the same transaction as the change; a refused action leaves a FAILURE row.

TASK_AUDIT_PREFIX = "message_task"


def _audit_task(operation, task, old_status, new_status, *, old_values=None, new_values=None,
                result="SUCCESS", error=None, extra=None):
    from monitoring import audit

    old = {"status": old_status, **(old_values or {})}
    new = None if new_status is None and not new_values else {"status": new_status, **(new_values or {})}
    return audit.record(
        f"{TASK_AUDIT_PREFIX}.{operation}",
        resource_type=audit.resource_type_of(MessageTask),
        resource_id=task.pk,
        resource_name=str(task),
        operation_type="UPDATE",
        old_values=old,
        new_values=new,
        result=result,
        error_message=error,
        extra=extra,
    )


def auto_transition(task_id, operation, from_statuses, new_status, reason=None, **fields):
    """A status change the platform makes by itself (completion, a pause or failure decided by a
    dispatcher): a conditional UPDATE, audited (actor: the worker/system context) when it
    changed the row. Returns whether it did."""
    now = timezone.now()
    with transaction.atomic():
        row = (MessageTask.objects.select_for_update().filter(pk=task_id, status__in=list(from_statuses))
               .only("id", "task_name", "status").first())
        if row is None:
            return False
        old = row.status
        MessageTask.objects.filter(pk=task_id).update(status=new_status, updated_at=now, **fields)
        _audit_task(operation, row, old, new_status, new_values={"reason": str(reason)} if reason else None)
    return True


def _locked_status(task_id):
    """The task's status, its row locked until the end of the transaction (MariaDB)."""
    return MessageTask.objects.select_for_update().filter(pk=task_id).values_list("status", flat=True).first()


def _audited_action(operation):
    """Record a FAILURE audit row when the action is refused (ValidationError), then re-raise.
    The row is written after the action's own transaction was rolled back."""

    def decorate(fn):
        @wraps(fn)
        def wrapper(task, *args, **kwargs):
            try:
                return fn(task, *args, **kwargs)
            except ValidationError as exc:
                current = MessageTask.objects.filter(pk=task.pk).values_list("status", flat=True).first()
                _audit_task(operation, task, current, None, result="FAILURE", error="; ".join(exc.messages))
                raise

        return wrapper

    return decorate


def start_task(task_id, now=None):
    """PENDING (due) or RUNNING → RUNNING, then make sure dispatchers run.

    Runs in Celery (queued by create/resume/resend, or by beat for a scheduled task that is due):
    the PENDING → RUNNING change is audited (`message_task.start`) with that context's actor."""
    now = now or timezone.now()
    with transaction.atomic():
        started = MessageTask.objects.filter(pk=task_id, status=TaskStatus.PENDING).filter(
            _due_q(now)
        ).update(status=TaskStatus.RUNNING, started_at=now, updated_at=now)
        task = MessageTask.objects.filter(pk=task_id).first()
        if started and task is not None:
            _audit_task("start", task, TaskStatus.PENDING, TaskStatus.RUNNING)
    if task is None or task.status != TaskStatus.RUNNING:
        return False
    from . import dispatch

    dispatch.ensure_dispatchers(task)
    return True


def _due_q(now):
    from django.db.models import Q

    return Q(scheduled_time__isnull=True) | Q(scheduled_time__lte=now)


@_audited_action("pause")
def pause_task(task, reason=None):
    with transaction.atomic():
        old = _locked_status(task.pk)
        n = MessageTask.objects.filter(
            pk=task.pk, status__in=[TaskStatus.PENDING, TaskStatus.RUNNING]
        ).update(status=TaskStatus.PAUSED, error_message=reason, updated_at=timezone.now())
        if not n:
            raise ValidationError({"status": _("Only pending or running tasks can be paused.")})
        _audit_task("pause", task, old, TaskStatus.PAUSED,
                    new_values={"error_message": reason} if reason else None)
    task.refresh_from_db()
    return task


@_audited_action("resume")
def resume_task(task, clear_stop=False):
    if task.status != TaskStatus.PAUSED:
        raise ValidationError({"status": _("Only paused tasks can be resumed.")})
    if task.account_id:
        if clear_stop:
            pacing.unblock(task.account_id)
        check_account_can_send(get_account(task.account_id))
    now = timezone.now()
    status = TaskStatus.PENDING if task.scheduled_time and task.scheduled_time > now and not task.started_at else TaskStatus.RUNNING
    with transaction.atomic():
        n = MessageTask.objects.filter(pk=task.pk, status=TaskStatus.PAUSED).update(
            status=status, error_message=None, updated_at=now,
            started_at=task.started_at or (now if status == TaskStatus.RUNNING else None),
        )
        if not n:
            raise ValidationError({"status": _("Only paused tasks can be resumed.")})
        _audit_task("resume", task, TaskStatus.PAUSED, status,
                    extra={"clear_stop": True} if clear_stop else None)
    task.refresh_from_db()
    if status == TaskStatus.RUNNING:
        transaction.on_commit(lambda: _enqueue_start(task.pk))
    return task


@_audited_action("cancel")
def cancel_task(task):
    now = timezone.now()
    with transaction.atomic():
        old = _locked_status(task.pk)
        if old is None or old in FINAL_TASK_STATUSES:
            raise ValidationError({"status": _("The task is already finished.")})
        MessageTask.objects.filter(pk=task.pk).update(
            status=TaskStatus.CANCELLED, completed_at=now, updated_at=now
        )
        skipped = MessageReceiver.objects.filter(task_id=task.pk, send_status=RS.PENDING).update(
            send_status=RS.SKIPPED, error_code="cancelled", error_message=_("Task cancelled."), updated_at=now
        )
        _audit_task("cancel", task, old, TaskStatus.CANCELLED, new_values={"receivers_skipped": skipped})
    rebuild_counters(task.pk)
    task.refresh_from_db()
    return task


@_audited_action("resend_failed")
def resend_failed(task):
    """Put failed receivers back in the queue with a fresh message (new message_uuid)."""
    if task.status == TaskStatus.CANCELLED:
        raise ValidationError({"status": _("A cancelled task cannot be resent.")})
    if task.account_id:
        check_account_can_send(get_account(task.account_id))
    now = timezone.now()
    with transaction.atomic():
        old = _locked_status(task.pk)
        if old == TaskStatus.CANCELLED:
            raise ValidationError({"status": _("A cancelled task cannot be resent.")})
        n = MessageReceiver.objects.filter(task_id=task.pk, send_status=RS.FAILED).update(
            send_status=RS.PENDING, retry_count=0, message_id=None, send_time=None,
            error_code=None, error_message=None, updated_at=now,
        )
        if not n:
            raise ValidationError({"status": _("The task has no failed receivers.")})
        MessageTask.objects.filter(pk=task.pk).update(
            status=TaskStatus.RUNNING, completed_at=None, error_message=None, updated_at=now,
            started_at=task.started_at or now,
        )
        rebuild_counters(task.pk)
        _audit_task("resend_failed", task, old, TaskStatus.RUNNING, new_values={"requeued": n})
        transaction.on_commit(lambda: _enqueue_start(task.pk))
    task.refresh_from_db()
    return n


COUNTER_FIELDS = ("target_count", "success_count", "fail_count", "progress")


def recount_task(task):
    """Operator action: rebuild the task's counters from its receivers, audited
    (`message_task.rebuild_counters`, old and new counters; the status does not change)."""
    with transaction.atomic():
        row = MessageTask.objects.select_for_update().filter(pk=task.pk).values("status", *COUNTER_FIELDS).first()
        if row is None:
            raise ValidationError({"status": _("The task no longer exists.")})
        counts = rebuild_counters(task.pk)
        after = MessageTask.objects.filter(pk=task.pk).values(*COUNTER_FIELDS).first()
        _audit_task("rebuild_counters", task, row["status"], row["status"],
                    old_values={f: row[f] for f in COUNTER_FIELDS},
                    new_values={f: after[f] for f in COUNTER_FIELDS})
    task.refresh_from_db()
    return counts


def rebuild_counters(task_id):
    """Recompute success/fail counts and progress from the receiver rows."""
    counts = dict(
        MessageReceiver.objects.filter(task_id=task_id)
        .values_list("send_status")
        .annotate(n=Count("id"))
        .order_by()
    )
    total = sum(counts.values())
    done = counts.get(RS.SUCCESS, 0) + counts.get(RS.FAILED, 0) + counts.get(RS.SKIPPED, 0)
    progress = round(done * 100 / total, 2) if total else 0
    MessageTask.objects.filter(pk=task_id).update(
        target_count=total,
        success_count=counts.get(RS.SUCCESS, 0),
        fail_count=counts.get(RS.FAILED, 0),
        progress=progress,
    )
    return counts


def finish_if_done(task_id):
    """RUNNING → COMPLETED when no receiver is pending or in flight."""
    if MessageReceiver.objects.filter(task_id=task_id, send_status__in=[RS.PENDING, RS.SENDING]).exists():
        return False
    rebuild_counters(task_id)
    return auto_transition(task_id, "complete", [TaskStatus.RUNNING], TaskStatus.COMPLETED,
                           completed_at=timezone.now(), progress=100)


def task_progress(task):
    """The JSON the progress bar polls."""
    counts = dict(
        MessageReceiver.objects.filter(task_id=task.pk).values_list("send_status").annotate(n=Count("id")).order_by()
    )
    return {
        "id": task.pk,
        "status": task.status,
        "status_label": str(TaskStatus(task.status).label),
        "target_count": task.target_count,
        "success_count": task.success_count,
        "fail_count": task.fail_count,
        "pending": counts.get(RS.PENDING, 0),
        "sending": counts.get(RS.SENDING, 0),
        "skipped": counts.get(RS.SKIPPED, 0),
        "progress": float(task.progress),
        "error_message": task.error_message,
        "started_at": task.started_at.isoformat() if task.started_at else None,
        "completed_at": task.completed_at.isoformat() if task.completed_at else None,
        # as the page shows dates (the active language, the platform's time zone)
        "completed_at_display": _display_time(task.completed_at),
    }


def _display_time(value):
    from django.utils import formats

    return formats.date_format(timezone.localtime(value), "DATETIME_FORMAT") if value else None


def failed_receivers(task):
    return MessageReceiver.objects.filter(task_id=task.pk, send_status=RS.FAILED).order_by("id")


# --- Account stop (risk control) -------------------------------------------------------------

def stop_account(account_id, reason, detail=None):
    """Risk control or ban: stop the account's sending at once (shared flag in Redis), pause its
    tasks, flag the account abnormal, raise an alert. Never undone automatically."""
    from contacts.models import AccountStatus, WeworkAccount

    already = pacing.blocked_reason(account_id)
    pacing.block(account_id, reason)
    message = _("Paused: the account hit risk control (%(reason)s).") % {"reason": reason}
    paused = 0
    for task_id in MessageTask.objects.filter(
        account_id=account_id, status__in=[TaskStatus.PENDING, TaskStatus.RUNNING]
    ).values_list("pk", flat=True):
        paused += auto_transition(task_id, "pause_risk_control", [TaskStatus.PENDING, TaskStatus.RUNNING],
                                  TaskStatus.PAUSED, reason=reason, error_message=message)
    WeworkAccount.all_objects.filter(pk=account_id, status=AccountStatus.ONLINE).update(
        status=AccountStatus.ABNORMAL
    )
    if not already:  # one alert per stop, however many in-flight messages report it
        log.warning("account %s stopped after %s; %d tasks paused", account_id, reason, paused)
        _fire_alert(account_id, reason, detail, paused)
    return paused


def clear_account_stop(account_id):
    pacing.unblock(account_id)


def _fire_alert(account_id, reason, detail, paused):
    """monitoring.services.fire_alert (one open alert per account); never blocks the stop."""
    from contacts.models import WeworkAccount
    from monitoring.services import fire_alert as fire

    account = WeworkAccount.all_objects.filter(pk=account_id).values("wxid", "instance_id").first() or {}
    try:
        fire(
            "messaging.account_risk_control",
            source_type="account",
            source_id=account_id,
            level="CRITICAL",
            title=_("Sending stopped for account %(wxid)s") % {"wxid": account.get("wxid", account_id)},
            message=_("Sending stopped for account %(wxid)s after %(reason)s; %(n)d tasks paused. %(detail)s "
                      "Check the account, then resume its tasks with \"clear the stop\".")
            % {"wxid": account.get("wxid", account_id), "reason": reason, "n": paused, "detail": detail or ""},
            instance_id=account.get("instance_id"),
        )
    except Exception:  # an alerting failure must never block stopping the account
        log.exception("fire_alert failed for account %s", account_id)


# --- Counters ---------------------------------------------------------------------------------

def count_messages(account_id, instance_id, n):
    """today_messages / total_messages on the account and its instance (sent and received)."""
    if not n:
        return
    from contacts.models import WeworkAccount
    from instances.models import WeworkInstance

    WeworkAccount.all_objects.filter(pk=account_id).update(
        today_messages=F("today_messages") + n, total_messages=F("total_messages") + n
    )
    if instance_id:
        WeworkInstance.all_objects.filter(pk=instance_id).update(
            today_messages=F("today_messages") + n, total_messages=F("total_messages") + n
        )


def reset_daily_counters():
    from contacts.models import WeworkAccount
    from instances.models import WeworkInstance

    a = WeworkAccount.all_objects.exclude(today_messages=0).update(today_messages=0)
    i = WeworkInstance.all_objects.exclude(today_messages=0).update(today_messages=0)
    return a, i


# --- Periodic work ------------------------------------------------------------------------------

def kick(now=None):
    """Beat: start due tasks, hand back stale claims, keep dispatchers running, finish tasks."""
    from . import dispatch

    now = now or timezone.now()
    started = 0
    for task_id in MessageTask.objects.filter(status=TaskStatus.PENDING).filter(_due_q(now)).order_by(
        "priority", "id"
    ).values_list("id", flat=True)[:500]:
        started += bool(start_task(task_id, now))
    reclaimed = dispatch.reclaim_stale(now=now)
    kicked = 0
    for task in MessageTask.objects.filter(status=TaskStatus.RUNNING).order_by("priority", "id")[:500]:
        if finish_if_done(task.pk):
            continue
        kicked += dispatch.ensure_dispatchers(task)
    return {"started": started, "reclaimed": reclaimed, "kicked": kicked}


# --- Inbound (re-exported for the webhook intake) ---------------------------------------------

def handle_message_status(instance, event):
    from . import inbound

    return inbound.handle_message_status(instance, event)


def handle_message_received(instance, event):
    from . import inbound

    return inbound.handle_message_received(instance, event)


def message_shard(when=None, create=True):
    return shards.model_for(Message, when, create=create)


def recent_window():
    return timezone.now() - timedelta(days=1)


def handle_instance_event(instance, event):
    """Hook called by instances.services.handle_message_event for message.* events."""
    from . import inbound

    return inbound.handle_instance_event(instance, event)
