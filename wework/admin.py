"""Base admin classes: every app's ModelAdmin derives from PlatformModelAdmin, so that paging,
soft delete and (in accounts/) permission scoping behave the same on every page."""
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _, ngettext


class EstimatedCountPaginator(Paginator):
    """Never runs COUNT(*) over a big table: counts up to a cap and reports the cap beyond it."""

    count_cap = 10_000

    @cached_property
    def count(self):
        capped = self.object_list[: self.count_cap + 1]
        try:
            return len(capped.values_list("pk", flat=True))
        except (AttributeError, TypeError):
            return len(capped)


class PlatformModelAdmin(admin.ModelAdmin):
    """Defaults for big operational tables."""

    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50


class DeletedFilter(admin.SimpleListFilter):
    title = _("deleted")
    parameter_name = "deleted"

    def lookups(self, request, model_admin):
        return (("no", _("Not deleted")), ("yes", _("Deleted")), ("all", _("All")))

    def choices(self, changelist):
        # "Not deleted" is the default, so the "All" entry of Django means that one.
        for lookup, title in self.lookup_choices:
            selected = self.value() == lookup or (self.value() is None and lookup == "no")
            yield {
                "selected": selected,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or "no"
        if value == "no":
            return queryset.filter(deleted_at__isnull=True)
        if value == "yes":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


class SoftDeleteAdminMixin:
    """Shows deleted rows on demand (filter "deleted") and restores them (action)."""

    actions = ["restore_selected"]

    def get_queryset(self, request):
        qs = self.model.all_objects.get_queryset()
        ordering = self.get_ordering(request)
        if ordering:
            qs = qs.order_by(*ordering)
        return qs

    def get_list_filter(self, request):
        return (DeletedFilter, *super().get_list_filter(request))

    @admin.action(description=_("Restore selected deleted rows"), permissions=["change"])
    def restore_selected(self, request, queryset):
        restored = queryset.filter(deleted_at__isnull=False).update(deleted_at=None)
        self.message_user(
            request,
            ngettext("%(count)d row restored.", "%(count)d rows restored.", restored)
            % {"count": restored},
            messages.SUCCESS,
        )
