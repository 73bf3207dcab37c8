"""The contacts list's tag filters (all of / any of / none of) and bulk actions (add tags,
remove tags, opt out), mixed into the contacts app's ContactAdmin by scrm's admin."""
from collections import defaultdict

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _, ngettext

from contacts.models import WeworkAccount
from wework.errors import DomainError

from .forms import TagsForm
from .models import Tag
from .services import access, optouts, segments, tags as tag_services


class _TagsFilter(admin.SimpleListFilter):
    """`?<parameter>=vip,lead`: contacts by tag names (a choice per tag, or a list in the URL)."""

    field = ""

    def lookups(self, request, model_admin):
        return [(name, name) for name in Tag.objects.order_by("name").values_list("name", flat=True)[:100]]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        names = tuple(n.strip() for n in value.split(",") if n.strip())
        return segments.apply_filters(queryset, segments.SegmentFilters(**{self.field: names}))


class TagsAllFilter(_TagsFilter):
    title = _("with all of the tags")
    parameter_name = field = "tags_all"


class TagsAnyFilter(_TagsFilter):
    title = _("with any of the tags")
    parameter_name = field = "tags_any"


class TagsNoneFilter(_TagsFilter):
    title = _("with none of the tags")
    parameter_name = field = "tags_none"


def _by_account(queryset):
    wxids = defaultdict(list)
    for account_id, wxid in queryset.values_list("account_id", "wxid"):
        wxids[account_id].append(wxid)
    accounts = WeworkAccount.all_objects.in_bulk(list(wxids))
    return [(accounts[pk], found) for pk, found in wxids.items() if pk in accounts]


class ContactTagsAdminMixin:
    actions = ["add_tags", "remove_tags", "opt_out_selected"]

    def get_list_filter(self, request):
        return [*super().get_list_filter(request), TagsAllFilter, TagsAnyFilter, TagsNoneFilter]

    def get_list_display(self, request):
        return [*super().get_list_display(request), "tags"]

    def _may(self, request, perm):
        instance_id = self.chosen_instance_id(request)
        return instance_id is not None and access.allowed(request.user, perm, instance_id)

    def has_tag_permission(self, request):
        return self._may(request, access.TAG_CONTACTS)

    def has_untag_permission(self, request):
        return self._may(request, access.UNTAG_CONTACTS)

    def has_opt_out_permission(self, request):
        return self._may(request, access.CHANGE_OPT_OUT)

    def _tags_page(self, request, queryset, title):
        """The form asking which tags, or the chosen tags once it was posted valid; (None, [])
        when none of the selected rows is in the user's shard (nothing to ask about)."""
        if not queryset.exists():
            return None, []
        form = TagsForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            return None, list(form.cleaned_data["tags"])
        context = {
            **self.admin_site.each_context(request), "title": title, "form": form, "opts": self.model._meta,
            "count": queryset.count(), "action": request.POST.get("action", ""),
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "instance": request.GET.get("instance", ""),
        }
        return TemplateResponse(request, "admin/scrm/tag_contacts.html", context), None

    def _each_account(self, request, queryset, fn, done_message):
        done = 0
        for account, wxids in _by_account(queryset):
            try:
                done += fn(account, wxids)
            except DomainError as exc:
                self.message_user(request, f"{account}: {exc.message}", messages.ERROR)
        self.message_user(request, done_message(done), messages.SUCCESS)

    @admin.action(description=_("Add tags to the selected contacts"), permissions=["tag"])
    def add_tags(self, request, queryset):
        page, chosen = self._tags_page(request, queryset, _("Add tags to the selected contacts"))
        if page is not None:
            return page
        self._each_account(request, queryset, lambda account, wxids: tag_services.tag_contacts(
            request.user, account, wxids, chosen, strict=False),
            lambda n: ngettext("%(n)d tag added.", "%(n)d tags added.", n) % {"n": n})
        return None

    @admin.action(description=_("Remove tags from the selected contacts"), permissions=["untag"])
    def remove_tags(self, request, queryset):
        page, chosen = self._tags_page(request, queryset, _("Remove tags from the selected contacts"))
        if page is not None:
            return page
        self._each_account(request, queryset, lambda account, wxids: tag_services.untag_contacts(
            request.user, account, wxids, chosen, strict=False),
            lambda n: ngettext("%(n)d tag removed.", "%(n)d tags removed.", n) % {"n": n})
        return None

    @admin.action(description=_("Opt the selected contacts out of broadcasts"), permissions=["opt_out"])
    def opt_out_selected(self, request, queryset):
        self._each_account(request, queryset, lambda account, wxids: optouts.opt_out_by_operator(
            request.user, account, wxids),
            lambda n: ngettext("%(n)d contact opted out.", "%(n)d contacts opted out.", n) % {"n": n})
        return None
