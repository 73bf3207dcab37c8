"""Forms of scrm's admin: the checks live in the services and models; these only show them."""
from django import forms
from django.utils.translation import gettext_lazy as _

from messaging.errors import error_messages
from wework.errors import DomainError

from .models import AutoReply, RuleKind, Segment, Tag, TagRule, WelcomeMessage
from .services import autoreplies, segments, sensitive, welcome


class TagsForm(forms.Form):
    """The tags a bulk action puts on (or takes off) the selected contacts."""

    tags = forms.ModelMultipleChoiceField(queryset=Tag.objects.select_related("group").order_by("group__name", "name"),
                                          label=_("Tags"), widget=forms.CheckboxSelectMultiple)


def _names_field(label):
    return forms.ModelMultipleChoiceField(queryset=Tag.objects.order_by("name"), to_field_name="name",
                                          required=False, label=label)


class SegmentForm(forms.ModelForm):
    """Tag conditions chosen from the tags; stored as lists of tag names."""

    tags_all = _names_field(_("with all of the tags"))
    tags_any = _names_field(_("with any of the tags"))
    tags_none = _names_field(_("with none of the tags"))

    class Meta:
        model = Segment
        fields = ["name", "instance", "account", "tags_all", "tags_any", "tags_none", "added_after",
                  "added_before", "last_message_after", "last_message_before", "opted_out"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("tags_all", "tags_any", "tags_none"):
            self.initial[name] = list(Tag.objects.filter(name__in=getattr(self.instance, name) or [])
                                      .values_list("name", flat=True))

    def clean(self):
        data = super().clean()
        for name in ("tags_all", "tags_any", "tags_none"):
            data[name] = sorted(t.name for t in data.get(name) or [])
        segments.check_segment(data, self.add_error)
        return data

    def save(self, commit=True):
        for name in ("tags_all", "tags_any", "tags_none"):
            setattr(self.instance, name, self.cleaned_data[name])
        return super().save(commit)


class SensitiveTextForm(forms.ModelForm):
    """A text sent to customers: checked as its send will check it (`check`, a service's), and
    refused with the sensitive words it contains."""

    text_field = ""

    @staticmethod
    def check(text):
        return text

    def clean(self):
        data = super().clean()
        if data.get(self.text_field):
            try:
                self.check(data[self.text_field])
            except DomainError as exc:
                self.add_error(self.text_field, error_messages(exc))
                return data
        words = sensitive.found_words(data.get(self.text_field) or "")
        if words:
            self.add_error(self.text_field, _("The text contains sensitive words: %(words)s.")
                           % {"words": ", ".join(words)})
        return data


class WelcomeMessageForm(SensitiveTextForm):
    text_field = "content"
    check = staticmethod(welcome.check_content)

    class Meta:
        model = WelcomeMessage
        fields = ["account", "kind", "content", "is_enabled"]


class AutoReplyForm(SensitiveTextForm):
    text_field = "reply"
    check = staticmethod(autoreplies.check_reply)

    class Meta:
        model = AutoReply
        fields = ["account", "keyword", "match_type", "reply", "sort_order", "is_enabled"]


class TagRuleForm(forms.ModelForm):
    class Meta:
        model = TagRule
        fields = ["name", "kind", "tag", "account", "keyword", "match_type", "task", "is_enabled"]

    def clean(self):
        data = super().clean()
        return check_rule(data, self.add_error)


def check_rule(data, add_error):
    """A keyword rule needs its keyword; a campaign rule its campaign, of the same account."""
    if data.get("kind") == RuleKind.KEYWORD and not (data.get("keyword") or "").strip():
        add_error("keyword", _("A keyword rule needs a keyword."))
    if data.get("kind") == RuleKind.CAMPAIGN:
        task, account = data.get("task"), data.get("account")
        if task is None:
            add_error("task", _("A campaign rule needs a campaign."))
        elif account is not None and task.account_id != account.pk:
            add_error("task", _("The campaign was sent from another account."))
    return data
