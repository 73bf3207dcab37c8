"""Admin of private-domain operations, and the tag and opt-out actions on the contacts list
(the contacts app's admin extended from here, as contacts extends the instance admin)."""
from django.contrib import admin, messages
from django.db.models import Count
from django.utils.translation import gettext_lazy as _, ngettext

from contacts.admin import ContactAdmin
from contacts.models import Contact
from wework.admin import PlatformModelAdmin
from wework.errors import DomainError

from .admin_contacts import ContactTagsAdminMixin
from .forms import AutoReplyForm, SegmentForm, TagRuleForm, WelcomeMessageForm
from .models import (
    AutoReply,
    ContactTag,
    OptOut,
    OptOutKeyword,
    RuleKind,
    Segment,
    SensitiveWord,
    Tag,
    TagGroup,
    TagRule,
    WelcomeMessage,
    WelcomeSent,
)
from .services import optouts, segments, tags as tag_services


class OwnedAdmin(PlatformModelAdmin):
    """Rules that send or tag on behalf of whoever set them up."""

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(TagGroup)
class TagGroupAdmin(PlatformModelAdmin):
    small_table = True  # a few dozen groups: any order, their tags counted
    list_display = ["name", "sort_order", "tag_count"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_tags=Count("tags"))

    @admin.display(description=_("tags"), ordering="n_tags")
    def tag_count(self, obj):
        return obj.n_tags

    def has_delete_permission(self, request, obj=None):
        # a group with tags is kept: move or delete its tags first
        if obj is not None and obj.tags.exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request, queryset):
        kept = queryset.filter(tags__isnull=False).distinct()
        if kept.exists():
            self.message_user(request, _("Groups with tags were kept: move or delete their tags first."),
                              messages.WARNING)
        super().delete_queryset(request, queryset.exclude(pk__in=kept.values("pk")))


@admin.register(Tag)
class TagAdmin(PlatformModelAdmin):
    small_table = True  # hundreds of tags: any order
    list_display = ["name", "group", "color", "sort_order"]
    list_filter = ["group"]
    search_fields = ["name"]
    list_select_related = ["group"]

    def delete_model(self, request, obj):
        tag_services.delete_tag(request.user, obj)

    def delete_queryset(self, request, queryset):
        for tag in queryset:
            tag_services.delete_tag(request.user, tag)


@admin.register(TagRule)
class TagRuleAdmin(OwnedAdmin):
    form = TagRuleForm
    list_display = ["name", "kind", "tag", "account", "keyword", "match_type", "task", "is_enabled",
                    "applied_count"]
    list_filter = ["kind", "is_enabled"]
    search_fields = ["name", "keyword"]
    raw_id_fields = ["task"]
    readonly_fields = ["applied_count"]
    list_select_related = ["tag", "account"]
    actions = ["apply_selected"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.kind == RuleKind.CAMPAIGN and obj.is_enabled:
            tag_services.apply_campaign_rule(request.user, obj)

    @admin.action(description=_("Tag the receivers of the selected campaign rules now"), permissions=["change"])
    def apply_selected(self, request, queryset):
        done = 0
        for rule in queryset.filter(kind=RuleKind.CAMPAIGN).select_related("account"):
            try:
                tag_services.apply_campaign_rule(request.user, rule)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{rule}: {exc.message}", messages.ERROR)
        self.message_user(request, ngettext("%(n)d rule applied.", "%(n)d rules applied.", done) % {"n": done},
                          messages.SUCCESS)


@admin.register(Segment)
class SegmentAdmin(OwnedAdmin):
    form = SegmentForm
    list_display = ["name", "instance", "account", "tags_all", "tags_any", "tags_none", "opted_out"]
    list_filter = ["opted_out"]
    search_fields = ["name"]
    raw_id_fields = ["account"]
    readonly_fields = ["live_count"]
    list_select_related = ["instance", "account"]

    @admin.display(description=_("contacts now"))
    def live_count(self, obj):
        if obj is None or not obj.pk:
            return "-"
        return str(segments.count(obj))


@admin.register(OptOutKeyword)
class OptOutKeywordAdmin(PlatformModelAdmin):
    list_display = ["keyword", "match_type", "is_enabled"]
    list_filter = ["match_type", "is_enabled"]
    search_fields = ["keyword"]


@admin.register(OptOut)
class OptOutAdmin(PlatformModelAdmin):
    list_display = ["contact_wxid", "account", "is_opted_out", "keyword", "opted_out_at", "opted_in_at",
                    "confirmation_task"]
    list_filter = ["is_opted_out"]
    search_fields = ["=contact_wxid"]
    list_select_related = ["account"]
    readonly_fields = ["account", "contact_wxid", "is_opted_out", "keyword", "event_id", "opted_out_at",
                       "opted_in_at", "confirmation_task", "created_at", "updated_at"]
    actions = ["opt_in_selected"]

    def has_add_permission(self, request):
        return False  # contacts opt out by themselves, or from the contacts list

    @admin.action(description=_("Opt the selected contacts back in"), permissions=["change"])
    def opt_in_selected(self, request, queryset):
        try:
            done = optouts.opt_in(request.user, queryset.select_related("account"))
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, ngettext("%(n)d contact opted back in.", "%(n)d contacts opted back in.", done)
                          % {"n": done}, messages.SUCCESS)


@admin.register(WelcomeMessage)
class WelcomeMessageAdmin(OwnedAdmin):
    form = WelcomeMessageForm
    list_display = ["account", "kind", "content", "is_enabled", "created_by"]
    list_filter = ["kind", "is_enabled"]
    list_select_related = ["account", "created_by"]


@admin.register(WelcomeSent)
class WelcomeSentAdmin(PlatformModelAdmin):
    list_display = ["target", "account", "kind", "task", "created_at"]
    list_filter = ["kind"]
    search_fields = ["=target"]
    list_select_related = ["account"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AutoReply)
class AutoReplyAdmin(OwnedAdmin):
    form = AutoReplyForm
    list_display = ["keyword", "match_type", "account", "reply", "sort_order", "is_enabled"]
    list_filter = ["match_type", "is_enabled"]
    search_fields = ["keyword"]
    list_select_related = ["account"]


@admin.register(SensitiveWord)
class SensitiveWordAdmin(PlatformModelAdmin):
    list_display = ["word", "is_enabled", "created_at"]
    list_filter = ["is_enabled"]
    search_fields = ["word"]


@admin.register(ContactTag)
class ContactTagAdmin(PlatformModelAdmin):
    list_display = ["contact_wxid", "tag", "account", "source", "created_at"]
    list_filter = ["source", "tag"]
    search_fields = ["=contact_wxid"]
    list_select_related = ["tag", "account"]

    def has_add_permission(self, request):
        return False  # through the contacts list, rules and the API: the design's column follows

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        tag_services.untag_contacts(request.user, obj.account, [obj.contact_wxid], [obj.tag], strict=False)

    def delete_queryset(self, request, queryset):
        for row in queryset.select_related("account", "tag"):
            self.delete_model(request, row)


class ScrmContactAdmin(ContactTagsAdminMixin, ContactAdmin):
    """The contacts app's contact list, with tag filters and the tag and opt-out actions."""


admin.site.unregister(Contact)
admin.site.register(Contact, ScrmContactAdmin)
