"""A request for a send task, and the one place its rules are checked.

`TaskRequest` holds what a caller asks for (the compose form, the API's serializers and code all
build one). `TaskRequest.input_errors()` checks what needs no database (options, the shape of the
receivers, @members): the form's `clean()` and the serializers' `validate()` call it, so they say
exactly what the service says. `TaskRequest.clean(account)` checks everything, with the database
(template, receivers among the account's contacts and groups, @members among the groups' members,
rendering for every receiver, media URLs), and returns the `ValidTask` the service writes. Every
refusal is a `MessagingInvalid` with field messages; nothing is written before `clean()` passed.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _, gettext_lazy

from contacts.models import WeworkAccount

from .. import conf, content as content_mod, extensions, rendering
from ..errors import MessagingInvalid, invalid, invalid_field, invalid_fields
from ..models import MessageTemplate, TaskPriority, TaskType, TemplateStatus
from . import receivers as receivers_mod
from .receivers import MENTIONS_KEY, REPLY_TO_KEY, Receiver
from .senders import check_account_can_send

# Option bounds and their messages, shared with the form's and the serializers' field
# declarations (HTML min/max, the OpenAPI schema) so that every entry point says the same.
SEND_INTERVAL_MAX = 3600
MAX_RETRY_MAX = 10
DEFAULT_MAX_RETRY = 3
PRIORITY_ERROR = gettext_lazy("Priority must be 1 (high), 2 (medium) or 3 (low).")
SEND_INTERVAL_ERROR = gettext_lazy("The interval must be between 0 and 3600 seconds.")
MAX_RETRY_ERROR = gettext_lazy("Retries must be between 0 and 10.")
TASK_TYPE_ERROR = gettext_lazy("Unknown task type.")
#: A scheduled time this far in the past still sends at once; an older one is refused.
SCHEDULE_GRACE = timedelta(minutes=5)
#: How far ahead a task may be scheduled.
SCHEDULE_HORIZON = timedelta(days=365)
#: Media URLs checked online per task (they usually differ only by a receiver's variable).
MEDIA_URLS_CHECKED = 5


@dataclass(frozen=True)
class ValidTask:
    """A checked request: what `sending.create_task` writes."""

    account: WeworkAccount
    task_type: str
    message_type: str
    body: dict
    template: MessageTemplate | None
    template_variables: dict
    receivers: list[Receiver]
    task_name: str | None
    priority: int
    send_interval: int
    max_retry: int
    scheduled_time: datetime | None


@dataclass
class TaskRequest:
    """A send task as asked for: one message (`task_type` single) or a batch/broadcast.

    `account` is an account or its id; `content` a dict, a JSON string or (text) plain text;
    `template` a template or its id (its content is then used and `template_variables` fill it);
    `receivers` an explicit list (wxids or {"wxid", "type", "name", "variables"}) or `filters`
    over the account's contacts and groups (not both); `at_members` a list of member ids, a
    comma-separated string or "all"; `reply_to` a message id of the same account.
    """

    account: Any = None
    message_type: str | None = None
    content: Any = None
    template: Any = None
    template_variables: Mapping | None = None
    receivers: Sequence | None = None
    filters: Mapping | None = None
    task_type: str | None = None
    task_name: str | None = None
    priority: Any = TaskPriority.MEDIUM
    scheduled_time: datetime | None = None
    send_interval: Any = 0
    max_retry: Any = DEFAULT_MAX_RETRY
    at_members: Any = None
    reply_to: Any = None

    @classmethod
    def from_data(cls, data: Mapping, **overrides) -> TaskRequest:
        """A request from a dict of its fields (validated serializer data, form data); other
        keys are ignored, None means "not given" for the options."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in {**data, **overrides}.items() if k in names}
        for option in ("priority", "send_interval", "max_retry"):
            if values.get(option) is None:
                values.pop(option, None)
        return cls(**values)

    @classmethod
    def single(cls, *, account, receiver_wxid: str, receiver_type: str = "contact", message_type: str | None,
               content, at_members=None, reply_to=None, scheduled_time: datetime | None = None) -> TaskRequest:
        """One message to one contact or group (a task of type single)."""
        return cls(
            account=account, message_type=message_type, content=content,
            receivers=[{"wxid": receiver_wxid, "type": receiver_type}], task_type=TaskType.SINGLE,
            at_members=at_members, reply_to=reply_to, scheduled_time=scheduled_time,
        )

    # --- checks without the database -----------------------------------------------------

    def permission_task_type(self) -> str:
        """The task type that decides the permission, before receivers are resolved: the given
        one, else a broadcast for filters or anything but one explicit receiver."""
        if self.task_type:
            return self.task_type
        if self.filters:
            return TaskType.BROADCAST
        return TaskType.SINGLE if len(self.receivers or ()) == 1 else TaskType.BROADCAST

    def input_errors(self) -> dict[str, list[str]]:
        """Field messages for what can be checked without the database: options, task type,
        receivers or filters (not both) and the receivers' number, @members' shape."""
        _options, errors = self._options()
        if self.task_type not in (None, "") and self.task_type not in TaskType.values:
            errors.setdefault("task_type", []).append(str(TASK_TYPE_ERROR))
        if self.receivers and self.filters:
            errors.setdefault("receivers", []).append(_("Give either a receiver list or filters, not both."))
        limit = receivers_mod.max_receivers()
        if isinstance(self.receivers, (list, tuple)) and len(self.receivers) > limit:
            errors.setdefault("receivers", []).extend(
                receivers_mod.too_many_receivers_error(len(self.receivers), limit).fields["receivers"])
        try:
            receivers_mod.parse_mentions(self._mentions_given())
        except MessagingInvalid as exc:
            errors.setdefault("at_members", []).extend(exc.fields["at_members"])
        schedule_error = scheduled_time_error(self.scheduled_time)
        if schedule_error:
            errors.setdefault("scheduled_time", []).append(schedule_error)
        return errors

    def _options(self) -> tuple[dict[str, int], dict[str, list[str]]]:
        """(priority, send_interval and max_retry as numbers; field messages)."""
        try:
            options = {
                "priority": int(self.priority or TaskPriority.MEDIUM),
                "send_interval": int(self.send_interval or 0),
                "max_retry": int(self.max_retry if self.max_retry is not None else DEFAULT_MAX_RETRY),
            }
        except (TypeError, ValueError):
            return {}, {"priority": [_("Priority, interval and retries must be whole numbers.")]}
        errors = {}
        if options["priority"] not in TaskPriority.values:
            errors["priority"] = [str(PRIORITY_ERROR)]
        if not 0 <= options["send_interval"] <= SEND_INTERVAL_MAX:
            errors["send_interval"] = [str(SEND_INTERVAL_ERROR)]
        if not 0 <= options["max_retry"] <= MAX_RETRY_MAX:
            errors["max_retry"] = [str(MAX_RETRY_ERROR)]
        return options, errors

    def _mentions_given(self):
        if self.at_members is not None:
            return self.at_members
        if isinstance(self.template_variables, Mapping):
            return self.template_variables.get(MENTIONS_KEY)
        return None

    # --- the whole check ----------------------------------------------------------------

    def clean(self, account: WeworkAccount) -> ValidTask:
        """Check everything for `account` (found by `senders.get_account`); MessagingInvalid on
        the first refusal, with field messages."""
        check_account_can_send(account)
        errors = self.input_errors()
        if errors:
            raise invalid_fields(errors)
        template, message_type, body, declarations = self._clean_content()
        extensions.check_content(message_type, body)
        variables = self._clean_variables(account)
        resolved = self._clean_receivers(account)
        mentions = variables.get(MENTIONS_KEY)
        if mentions:
            receivers_mod.check_mentions_are_members(account, mentions, resolved)
        task_type = self._clean_task_type(len(resolved))
        media_urls, card_ids = _check_rendering(message_type, body, declarations, variables, resolved)
        if message_type in content_mod.MEDIA_TYPES and conf.get("CHECK_MEDIA_URLS"):
            for url in media_urls:
                content_mod.check_media_url(url)
        if card_ids:
            unknown = receivers_mod.unknown_contacts(account, sorted(card_ids))
            if unknown:
                raise invalid("content", _("content.contact_id: %(list)s is not a contact of this account.")
                              % {"list": ", ".join(unknown[:10])})
        scheduled_time = _aware(self.scheduled_time)
        return ValidTask(
            account=account, task_type=task_type, message_type=message_type, body=body, template=template,
            template_variables=variables, receivers=resolved, task_name=(self.task_name or "")[:200] or None,
            scheduled_time=scheduled_time, **self._options()[0],
        )

    def _clean_content(self) -> tuple[MessageTemplate | None, str, dict, list]:
        """(template, message type, content dict, variable declarations) of a template or of the
        direct content."""
        if self.template not in (None, ""):
            template = self._template()
            if self.message_type and self.message_type != template.message_type:
                raise invalid("message_type", _("The template is for %(type)s messages.")
                              % {"type": template.message_type})
            body = content_mod.validate_unrendered(
                template.message_type, content_mod.parse_content(template.message_type, template.content))
            return template, template.message_type, body, rendering.normalize_declarations(template.variables)
        if not self.message_type:
            raise invalid("message_type", _("Choose a message type."))
        if self.message_type not in content_mod.MESSAGE_TYPES:
            raise invalid("message_type", _("Unknown message type %(type)r.") % {"type": self.message_type})
        body = content_mod.validate_unrendered(self.message_type,
                                               content_mod.parse_content(self.message_type, self.content))
        try:
            rendering.placeholders(body)
        except rendering.TemplateSyntaxError as exc:
            raise invalid_field("content", exc) from None
        return None, self.message_type, body, []

    def _template(self) -> MessageTemplate:
        template = self.template
        if not isinstance(template, MessageTemplate):
            template = MessageTemplate.objects.filter(pk=template).first() if str(template).isdigit() else None
        if template is None:
            raise invalid("template", _("Unknown template."))
        if template.status != TemplateStatus.ENABLED:
            raise invalid("template", _("The template is disabled."))
        return template

    def _clean_variables(self, account: WeworkAccount) -> dict:
        """The task's template variables, with @mentions and @reply_to under their reserved keys."""
        variables = dict(self.template_variables or {})
        if not all(isinstance(k, str) for k in variables):
            raise invalid("template_variables", _("Variable names must be text."))
        mentions = receivers_mod.parse_mentions(self._mentions_given())
        reply_to = self.reply_to if self.reply_to is not None else variables.get(REPLY_TO_KEY)
        parent_id = receivers_mod.check_reply_to(account, reply_to)
        variables.pop(MENTIONS_KEY, None)
        variables.pop(REPLY_TO_KEY, None)
        if mentions:
            variables[MENTIONS_KEY] = mentions
        if parent_id:
            variables[REPLY_TO_KEY] = parent_id
        return variables

    def _clean_receivers(self, account: WeworkAccount) -> list[Receiver]:
        if self.filters:
            resolved = receivers_mod.select_receivers(account, self.filters)
        else:
            resolved = receivers_mod.resolve_explicit_receivers(
                account, receivers_mod.normalize_receivers(self.receivers))
        if resolved and self.permission_task_type() != TaskType.SINGLE:
            # a broadcast leaves out whom the apps above exclude (scrm: contacts who opted out)
            excluded = extensions.excluded_receivers(account, resolved)
            if excluded:
                resolved = [r for r in resolved if (r["type"], r["wxid"]) not in excluded]
                if not resolved:
                    raise invalid("receivers", _("Every receiver of the task has opted out of broadcasts."))
        if not resolved:
            raise invalid("receivers", _("The task has no receivers; choose at least one contact or group."))
        limit = receivers_mod.max_receivers()
        if len(resolved) > limit:
            raise invalid("receivers", _("Too many receivers (limit %(limit)d).") % {"limit": limit})
        return resolved

    def _clean_task_type(self, n_receivers: int) -> str:
        task_type = self.task_type or (TaskType.SINGLE if n_receivers == 1 else TaskType.BROADCAST)
        if task_type == TaskType.SINGLE and n_receivers != 1:
            raise invalid("task_type", _("A single task has exactly one receiver."))
        return task_type


def _aware(when: datetime | None) -> datetime | None:
    if when is not None and timezone.is_naive(when):
        return timezone.make_aware(when)
    return when


def scheduled_time_error(when: datetime | None, now: datetime | None = None) -> str | None:
    """Why `when` cannot be a task's scheduled time, or None. A time up to SCHEDULE_GRACE in the
    past is sent at once (the time it takes to fill a form, clocks a little apart); an older one
    is a mistake; one beyond SCHEDULE_HORIZON is refused (docs/messaging.md, "Scheduling")."""
    if when is None:
        return None
    if not isinstance(when, datetime):
        return _("Give a date and time.")
    if timezone.is_naive(when):
        when = timezone.make_aware(when)
    now = now or timezone.now()
    if when < now - SCHEDULE_GRACE:
        return _("This time has passed: leave it empty to send now, or choose a later time.")
    if when > now + SCHEDULE_HORIZON:
        return _("A task can be scheduled at most %(days)d days ahead.") % {"days": SCHEDULE_HORIZON.days}
    return None


def _check_rendering(message_type: str, body: dict, declarations: list, variables: dict,
                     resolved: list[Receiver]) -> tuple[set[str], set[str]]:
    """Render for every receiver: a missing variable (named, with how many receivers lack it and
    one of them) or an over-long text is an error now, never when sending. Returns up to
    MEDIA_URLS_CHECKED media URLs to check, and the contacts a card shares."""
    defaults = rendering.defaults_of(declarations)
    limit = int(conf.get("TEXT_MAX_LENGTH"))
    missing_by_name: dict[str, list[str]] = {}
    first_rendered = None
    media_urls: set[str] = set()
    card_ids: set[str] = set()
    try:
        template = rendering.compile_content(body)  # parsed once, rendered per receiver
        values_of = receivers_mod.values_for_receivers(variables, defaults)
        for r in resolved:
            values = values_of(r)
            missing = template.missing(values)
            if missing:
                for name in missing:
                    missing_by_name.setdefault(name, []).append(r["wxid"])
                continue
            rendered = template.render_complete(values)
            if first_rendered is None:
                first_rendered = content_mod.validate_content(message_type, rendered, check_media=False)
            elif message_type == "text" and len(rendered.get("text", "")) > limit:
                raise invalid("content", _("The text for %(wxid)s has %(n)d characters; the limit is %(limit)d.")
                              % {"wxid": r["wxid"], "n": len(rendered["text"]), "limit": limit})
            if message_type == "card":
                card_ids.add(rendered.get("contact_id"))
            if message_type in content_mod.MEDIA_TYPES and len(media_urls) < MEDIA_URLS_CHECKED:
                media_urls.add(rendered.get("url"))
    except rendering.TemplateSyntaxError as exc:
        raise invalid_field("content", exc) from None
    if missing_by_name:
        parts = [
            _("%(name)s (for %(n)d receivers, e.g. %(wxid)s)") % {"name": name, "n": len(w), "wxid": w[0]}
            for name, w in sorted(missing_by_name.items())
        ]
        raise invalid("template_variables", _("Missing template variables: %(list)s.") % {"list": "; ".join(parts)})
    return {url for url in media_urls if url}, {c for c in card_ids if isinstance(c, str) and c}
