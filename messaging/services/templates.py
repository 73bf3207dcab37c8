"""Message templates: validation (syntax, declarations, shape), preview, saving, use counts."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User

from wework import shards

from .. import content as content_mod, extensions, rendering
from ..errors import invalid, invalid_field
from ..models import MessageTemplate, TemplateStatus

#: Fields of a template that `save_template` takes from its data.
TEMPLATE_FIELDS = ("name", "category", "message_type", "content", "variables", "tags", "thumbnail_url",
                   "is_public", "status", "sort_order")


def compose_templates() -> QuerySet:
    """The templates the compose page offers (enabled ones), in their display order."""
    return MessageTemplate.objects.filter(status=TemplateStatus.ENABLED).order_by("sort_order", "name")


def validate_template(message_type: str, content_text, variables, *,
                      thumbnail_url: str | None = None) -> tuple[list[dict], dict]:
    """Check type, syntax and declarations (and the thumbnail's URL when given); return
    (normalized declarations, checked content dict). Raises MessagingInvalid naming the field
    (`message_type`, `variables`, `content`, `thumbnail_url`)."""
    if message_type not in content_mod.MESSAGE_TYPES:
        raise invalid("message_type", _("Unknown message type."))
    if thumbnail_url and not content_mod.is_http_url(thumbnail_url):
        raise invalid("thumbnail_url", _("Use an http(s) URL of at most 500 characters."))
    try:
        declarations = rendering.normalize_declarations(variables)
    except rendering.DeclarationError as exc:
        raise invalid_field("variables", exc) from None
    content = content_mod.parse_content(message_type, content_text)
    extensions.check_content(message_type, content)
    try:
        rendering.placeholders(content)
        rendering.check_declared(content, declarations)
    except (rendering.TemplateSyntaxError, rendering.DeclarationError) as exc:
        raise invalid_field("content", exc) from None
    # The shape must be valid once rendered with sample values (URLs etc. not checked online).
    sample = {d["name"]: (d["default"] if d["default"] is not None else d["name"]) for d in declarations}
    sample.update({k: k for k in rendering.BUILTIN_VARIABLES})
    try:
        rendered = rendering.render(content, sample)
    except rendering.TemplateSyntaxError as exc:  # RenderedTooLongError: far over any limit
        raise invalid_field("content", exc) from None
    content_mod.validate_content(message_type, rendered, check_media=False)
    return declarations, content_mod.validate_unrendered(message_type, content)


def validate_plain_text(text) -> str:
    """A text sent without a template (scrm's welcome messages and auto-replies): the template
    syntax with only the built-in variables (what a send fills for every receiver:
    `receivers.values_for_receivers`), and the text rules once rendered. Raises MessagingInvalid
    under `content`, as a task with the same text would be refused."""
    content = content_mod.validate_unrendered("text", {"text": text})
    try:
        names = rendering.placeholders(content)
    except rendering.TemplateSyntaxError as exc:
        raise invalid_field("content", exc) from None
    unknown = names - set(rendering.BUILTIN_VARIABLES)
    if unknown:
        raise invalid("content", _("Unknown template variables: %(names)s. This text can use %(builtins)s.")
                      % {"names": ", ".join(sorted(unknown)), "builtins": ", ".join(rendering.BUILTIN_VARIABLES)})
    try:
        rendered = rendering.render(content, {name: name for name in rendering.BUILTIN_VARIABLES})
    except rendering.TemplateSyntaxError as exc:
        raise invalid_field("content", exc) from None
    content_mod.validate_content("text", rendered, check_media=False)
    return content["text"]


def preview_template(template_or_data: MessageTemplate | tuple, values: Mapping | None = None) -> dict:
    """Render with `values` over the declared defaults; missing ones show as «name».
    `template_or_data` is a template or (message_type, content, variables)."""
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
        raise invalid_field("values", exc) from None
    return {
        "message_type": message_type,
        "content": rendered,
        "text": rendered.get("text") if message_type == "text" else content_mod.summary(message_type, rendered),
        "missing": sorted(missing),
        "variables": declarations,
    }


def prepare_template(template: MessageTemplate) -> MessageTemplate:
    """Validate a template's content and variables; normalize them and fill the preview."""
    declarations, content = validate_template(template.message_type, template.content, template.variables,
                                              thumbnail_url=template.thumbnail_url)
    tags = template.tags
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise invalid("tags", _("Tags must be a list of strings."))
    template.content = content_mod.content_to_text(template.message_type, content)
    template.variables = declarations
    template.preview_content = content_mod.content_to_text(
        template.message_type,
        preview_template((template.message_type, template.content, declarations))["content"],
    )
    return template


@transaction.atomic
def save_template(user: User | None, data: Mapping, template: MessageTemplate | None = None) -> MessageTemplate:
    """Create or update a template from a dict of fields; validates content and variables.
    Only a superuser sets `is_system`."""
    if template is None:
        template = MessageTemplate(template_uuid=shards.new_uuid(), created_by=user)
    for field in TEMPLATE_FIELDS:
        if field in data:
            setattr(template, field, data[field])
    if "is_system" in data and user is not None and user.is_superuser:
        template.is_system = bool(data["is_system"])
    if not template.name:
        raise invalid("name", _("A template needs a name."))
    prepare_template(template)
    template.save()
    return template


def mark_template_used(template_id: int, now: datetime | None = None) -> None:
    MessageTemplate.all_objects.filter(pk=template_id).update(
        use_count=F("use_count") + 1, last_used_at=now or timezone.now()
    )
