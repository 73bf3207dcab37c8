"""Forms of the messaging pages: compose (one message or a broadcast) and template preview.

The compose form builds the page's `TaskRequest` (services/requests.py) and shows its rules'
messages on its fields: `clean()` runs the checks that need no database, `add_request_errors()`
places the service's refusals."""
import json

from django import forms
from django.db.models.utils import get_blank_choice_label
from django.utils.translation import gettext_lazy as _

from . import rendering
from .content import FIELDS_BY_TYPE
from .errors import MessagingInvalid
from .models import MessageTemplate, MessageType, TaskPriority, TaskType
from .services.requests import PRIORITY_ERROR, SEND_INTERVAL_ERROR, SEND_INTERVAL_MAX, TaskRequest
from .services.templates import compose_templates

# Which content fields each message type uses (the page shows only those).
TYPE_FIELDS = {
    "text": ["text"],
    "image": ["url"],
    "video": ["url", "thumb_url", "duration_s"],
    "file": ["url", "filename", "size"],
    "link": ["title", "url", "desc", "thumb_url"],
    "card": ["contact_id"],
    "location": ["latitude", "longitude", "title", "address"],
}
CONTENT_FIELDS = ["text", "url", "thumb_url", "duration_s", "filename", "size", "title", "desc", "contact_id",
                  "latitude", "longitude", "address"]


def parse_variables(text):
    """`name=value` lines → dict (blank lines ignored)."""
    values = {}
    for number, line in enumerate((text or "").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if "=" not in line:
            raise forms.ValidationError(_("Line %(n)d: write name=value.") % {"n": number})
        name, value = line.split("=", 1)
        values[name.strip()] = value.strip()
    return values


class VariableDeclarationsField(forms.CharField):
    """A template's variables edited one per line as `name | label | default` (label and
    default optional; a variable without a default is required), stored as the design's JSON
    list of {"name", "label", "default", "required"}."""

    widget = forms.Textarea(attrs={"rows": 4})

    def __init__(self, *, encoder=None, decoder=None, **kwargs):  # JSONField's arguments
        kwargs.setdefault("help_text", _("One variable per line: name | label | default. A variable "
                                         "without a default must be given when sending."))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, str) or value is None:
            return value or ""
        try:
            declarations = rendering.normalize_declarations(value)
        except rendering.DeclarationError:
            return str(value)
        lines = []
        for d in declarations:
            parts = [d["name"], d["label"] if d["label"] != d["name"] else ""]
            if d["default"] is not None:
                parts.append(str(d["default"]))
            lines.append(" | ".join(parts).rstrip(" |"))
        return "\n".join(lines)

    def to_python(self, value):
        declarations = []
        for number, line in enumerate((super().to_python(value) or "").splitlines(), 1):
            if not line.strip():
                continue
            name, label, default = ([part.strip() for part in line.split("|", 2)] + ["", ""])[:3]
            if not name:
                raise forms.ValidationError(_("Line %(n)d: the variable needs a name.") % {"n": number})
            declarations.append({"name": name, "label": label or name,
                                 "default": default if default != "" else None, "required": default == ""})
        return declarations or None

    def has_changed(self, initial, data):
        try:
            return self.prepare_value(initial) != self.prepare_value(self.to_python(data))
        except forms.ValidationError:
            return True


#: The content parts of a structured template, one form field each (prefix "part_"); text
#: templates use the `content` box itself.
TEMPLATE_PART_LABELS = {
    "url": _("URL (image, video, file or link)"), "thumb_url": _("Thumbnail URL"),
    "duration_s": _("Duration (s)"), "filename": _("File name"), "size": _("File size (bytes)"),
    "title": _("Title"), "desc": _("Description"), "contact_id": _("Contact to share (WeCom ID)"),
    "latitude": _("Latitude"), "longitude": _("Longitude"), "address": _("Address"),
}
TEMPLATE_PART_FIELDS = [f"part_{name}" for name in TEMPLATE_PART_LABELS]
_NUMERIC_PARTS = ("duration_s", "size", "latitude", "longitude")


def _number_or_text(value):
    """A number where one is typed, the text otherwise (a placeholder such as {{ lat }})."""
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number


class TemplateAdminForm(forms.ModelForm):
    """A template's content edited as fields: the text box for text templates, one field per
    part (URL, title, ...) for the other types, instead of raw JSON; variables one per line and
    tags as words (the admin's field classes). The service validates the assembled content."""

    locals().update({f"part_{name}": forms.CharField(label=label, required=False, max_length=500)
                     for name, label in TEMPLATE_PART_LABELS.items()})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance.pk and instance.message_type != "text" and instance.content:
            try:
                parts = json.loads(instance.content)
            except ValueError:
                parts = None
            if isinstance(parts, dict):
                for name, value in parts.items():
                    if f"part_{name}" in self.fields:
                        self.initial[f"part_{name}"] = value
                self.initial["content"] = ""
        if "content" in self.fields:
            self.fields["content"].required = False
            self.fields["content"].label = _("Text")
            self.fields["content"].help_text = _("For text templates. You may use {{ receiver_name }} and "
                                                 "the variables declared below.")

    def clean(self):
        data = super().clean()
        message_type = data.get("message_type")
        if message_type and message_type != "text":
            parts = {}
            for name in FIELDS_BY_TYPE.get(message_type, {}):
                value = (data.get(f"part_{name}") or "").strip()
                if value:
                    parts[name] = _number_or_text(value) if name in _NUMERIC_PARTS else value
            data["content"] = json.dumps(parts, ensure_ascii=False)
        elif message_type == "text" and not (data.get("content") or "").strip():
            self.add_error("content", _("Write the text of the template."))
        return data


class ComposeForm(forms.Form):
    account = forms.ChoiceField(label=_("Send from account"))
    contacts = forms.MultipleChoiceField(label=_("Contacts"), required=False, widget=forms.CheckboxSelectMultiple)
    groups = forms.MultipleChoiceField(label=_("Group chats"), required=False, widget=forms.CheckboxSelectMultiple)
    use_filters = forms.BooleanField(
        label=_("Instead of picking, send to every contact or group matching the filters below"), required=False
    )
    filter_source = forms.ChoiceField(
        label=_("Filter: send to"), required=False,
        choices=[("contacts", _("Contacts")), ("groups", _("Group chats")), ("all", _("Contacts and group chats"))],
    )
    filter_tags = forms.CharField(label=_("Filter: with any of these tags (comma separated)"), required=False)
    filter_tags_all = forms.CharField(label=_("Filter: with all of these tags (comma separated)"), required=False)
    filter_tags_none = forms.CharField(label=_("Filter: with none of these tags (comma separated)"), required=False)
    filter_segment = forms.IntegerField(
        label=_("Filter: a saved segment (its id) instead of the filters above"), required=False, min_value=1)
    template = forms.ModelChoiceField(
        label=_("Template (optional)"), required=False, queryset=MessageTemplate.objects.none(),
        help_text=_("With a template, its content is used and the fields below only fill its variables."),
    )
    variables = forms.CharField(
        label=_("Template variables"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One per line: name=value. {{ receiver_name }} is filled in for every receiver."),
    )
    message_type = forms.ChoiceField(label=_("Message type"), choices=MessageType.choices, initial="text")
    text = forms.CharField(label=_("Text"), required=False, widget=forms.Textarea(attrs={"rows": 4}),
                           help_text=_("You may use {{ receiver_name }}."))
    url = forms.URLField(label=_("URL (image, video, file or link)"), required=False, max_length=500)
    thumb_url = forms.URLField(label=_("Thumbnail URL"), required=False, max_length=500)
    duration_s = forms.IntegerField(label=_("Duration (s)"), required=False, min_value=0)
    filename = forms.CharField(label=_("File name"), required=False, max_length=255)
    size = forms.IntegerField(label=_("File size (bytes)"), required=False, min_value=0)
    title = forms.CharField(label=_("Title"), required=False, max_length=200)
    desc = forms.CharField(label=_("Description"), required=False, max_length=500)
    contact_id = forms.CharField(label=_("Contact to share (WeCom ID)"), required=False, max_length=100)
    latitude = forms.FloatField(label=_("Latitude"), required=False, min_value=-90, max_value=90)
    longitude = forms.FloatField(label=_("Longitude"), required=False, min_value=-180, max_value=180)
    address = forms.CharField(label=_("Address"), required=False, max_length=200)
    at_members = forms.CharField(
        label=_("@ members (group chats)"), required=False,
        help_text=_("Member WeCom IDs separated by commas, or \"all\"."),
    )
    reply_to = forms.IntegerField(label=_("Reply to message ID"), required=False, min_value=1)
    scheduled_time = forms.DateTimeField(
        label=_("Send at (leave empty to send now)"), required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
    )
    task_name = forms.CharField(label=_("Name (for the task list)"), required=False, max_length=200)
    priority = forms.TypedChoiceField(label=_("Priority"), choices=TaskPriority.choices, coerce=int,
                                      initial=TaskPriority.MEDIUM, error_messages={"invalid_choice": PRIORITY_ERROR})
    send_interval = forms.IntegerField(
        label=_("Minimum seconds between receivers"), required=False, min_value=0, max_value=SEND_INTERVAL_MAX,
        initial=0, error_messages={"min_value": SEND_INTERVAL_ERROR, "max_value": SEND_INTERVAL_ERROR},
        help_text=_("The account's own pacing (a random 3-5 s pause, at most 30 a minute) always applies."),
    )

    #: Where a TaskRequest field's messages show (None: above the form).
    REQUEST_FIELDS = {
        "receivers": None, "filters": "filter_tags", "template_variables": "variables", "task_type": None,
        "account": "account", "message_type": "message_type", "reply_to": "reply_to", "at_members": "at_members",
        "template": "template", "send_interval": "send_interval", "priority": "priority",
        "scheduled_time": "scheduled_time",
    }

    def __init__(self, *args, accounts=(), contacts=(), groups=(), **kwargs):
        super().__init__(*args, **kwargs)
        # Django's blank label ("- Select an option -", translated), as on every other select
        self.fields["account"].choices = [("", get_blank_choice_label())] + [
            # the instance too: the same WeCom account may be logged in on two instances
            (str(a.pk), f"{a.nickname or a.wxid} ({a.wxid}, {a.instance.name}, {a.get_status_display()})")
            for a in accounts
        ]
        self.fields["contacts"].choices = contacts
        self.fields["groups"].choices = groups
        self.fields["template"].queryset = compose_templates()

    def clean_variables(self):
        return parse_variables(self.cleaned_data.get("variables"))

    def clean(self):
        data = super().clean()
        mtype = data.get("message_type")
        if not data.get("template") and mtype in FIELDS_BY_TYPE:
            # Name the missing field on the field itself (the service would say "url is
            # required." about the whole message).
            for name, required in FIELDS_BY_TYPE[mtype].items():
                if required and name not in self.errors and data.get(name) in (None, ""):
                    self.add_error(name, forms.ValidationError(
                        self.fields[name].error_messages["required"], code="required"))
        if not self.errors:
            for field, messages in self.task_request().input_errors().items():
                self._add_request_error(field, messages)
        return data

    def clean_at_members(self):
        return (self.cleaned_data.get("at_members") or "").strip() or None

    def task_request(self, account=None) -> TaskRequest:
        """The TaskRequest of the (cleaned) form, sending from `account`."""
        data = self.cleaned_data
        filters = self.filters()
        receivers = self.receivers()
        single = self.is_single()
        request = TaskRequest(
            account=account,
            task_type=TaskType.SINGLE if single else TaskType.BROADCAST,
            task_name=data.get("task_name") or None,
            priority=data.get("priority"),
            scheduled_time=data.get("scheduled_time"),
            send_interval=data.get("send_interval") or 0,
            at_members=data.get("at_members"),
            reply_to=data.get("reply_to"),
            template_variables=data.get("variables") or None,
        )
        if filters:
            request.filters = filters
        else:
            request.receivers = receivers
        if data.get("template"):
            request.template = data["template"]
        else:
            request.message_type = data.get("message_type")
            request.content = self.content()
        return request

    def add_request_errors(self, exc: MessagingInvalid):
        """Show a refusal of the service on the fields it names (content on the text field for a
        text message), the rest above the form."""
        if not exc.fields:
            self.add_error(None, exc.message)
        for field, messages in exc.fields.items():
            self._add_request_error(field, messages)

    def _add_request_error(self, field, messages):
        if field == "content":
            target = "text" if self.cleaned_data.get("message_type") == "text" else None
        else:
            target = self.REQUEST_FIELDS.get(field)
        for message in messages:
            self.add_error(target if target in self.fields else None, message)

    def content(self):
        """The content dict of the chosen type from the fields it uses."""
        mtype = self.cleaned_data.get("message_type")
        if mtype not in TYPE_FIELDS:
            return {}
        out = {}
        for name in TYPE_FIELDS[mtype]:
            value = self.cleaned_data.get(name)
            if value not in (None, ""):
                out[name] = value
        return out

    def is_single(self) -> bool:
        """One message to one picked receiver (else a broadcast, confirmed before it goes out)."""
        return not self.filters() and len(self.receivers()) == 1

    def receivers(self):
        out = [{"wxid": w, "type": "contact"} for w in self.cleaned_data.get("contacts") or []]
        out += [{"wxid": w, "type": "group"} for w in self.cleaned_data.get("groups") or []]
        return out

    def filters(self):
        if not self.cleaned_data.get("use_filters"):
            return None
        if self.cleaned_data.get("filter_segment"):
            return {"segment": self.cleaned_data["filter_segment"]}

        def names(field):
            return [t.strip() for t in (self.cleaned_data.get(field) or "").split(",") if t.strip()]

        return {"source": self.cleaned_data.get("filter_source") or "contacts", "tags": names("filter_tags"),
                "tags_all": names("filter_tags_all"), "tags_none": names("filter_tags_none")}


class PreviewForm(forms.Form):
    values = forms.CharField(
        label=_("Values"), required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("One per line: name=value."),
    )

    def clean_values(self):
        return parse_variables(self.cleaned_data.get("values"))
