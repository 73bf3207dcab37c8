"""Base admin classes: every app's ModelAdmin derives from PlatformModelAdmin, so that paging,
soft delete and (in accounts/) permission scoping behave the same on every page.

Database routing (wework/routers.py): the changelist GET is a pure read and may be served by a
read replica (the user's own recent writes still read from the primary); the change form, GET
and POST, reads the primary, since what it shows is what it writes back.
"""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import models
from django.http import Http404
from django.template.response import SimpleTemplateResponse, TemplateResponse
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _, ngettext

from accounts.decorators import sudo_redirect
from accounts.scoping import may_use_model, model_perm, scope_queryset
from accounts.services.otp import in_sudo
from wework import routers
from wework.admin_large import LargeTableAdminMixin


class EstimatedCountPaginator(Paginator):
    """Never runs COUNT(*) over a big table: counts up to a cap and reports the cap beyond it."""

    count_cap = 10_000

    @cached_property
    def count(self):
        try:
            # counted by the server over the capped id list (COUNT(*) FROM (SELECT id ... LIMIT
            # cap + 1)): the same number as reading the ids, without sending 10,001 of them
            return self.object_list.values("pk")[: self.count_cap + 1].count()
        except (AttributeError, TypeError):
            return len(self.object_list[: self.count_cap + 1])


class NullableJSONFormField(forms.JSONField):
    """An empty box for a NULL JSON column (Django shows the word "null", which users took for
    a value to keep or type around); an empty box is saved as NULL again."""

    def prepare_value(self, value):
        if value is None:
            return ""
        return super().prepare_value(value)


def confirm_action(modeladmin, request, queryset, *, question, consequence=""):
    """For bulk actions that interrupt work (restart, logout): an intermediate page lists what
    the action touches and asks for confirmation; returns that page, or None once confirmed
    (the action then runs). The action's own permission checks still apply after."""
    if request.POST.get("confirmed") == "yes":
        return None
    shown = list(queryset[:101])
    if not shown:  # nothing in the user's scope: the action has nothing to ask about
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": question, "question": question, "consequence": consequence,
        "objects": shown[:100], "more": max(len(shown) - 100, 0),
        "opts": modeladmin.model._meta, "action": request.POST.get("action", ""),
        "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/confirm_action.html", context)


class TagListFormField(forms.CharField):
    """A JSON list of tags edited as "vip, 北京, lead" (commas, Chinese commas or new lines);
    saved as a list without blanks or repeats, an empty box as NULL."""

    SEPARATORS = (",", "，", "\n", "、")

    def __init__(self, *, encoder=None, decoder=None, **kwargs):  # JSONField's arguments
        kwargs.setdefault("help_text", _("Separate tags with commas."))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(str(tag) for tag in value)
        return "" if value is None else value

    def to_python(self, value):
        text = super().to_python(value) or ""
        for separator in self.SEPARATORS[1:]:
            text = text.replace(separator, ",")
        tags = []
        for tag in (part.strip() for part in text.split(",")):
            if tag and tag not in tags:
                tags.append(tag)
        return tags or None

    def has_changed(self, initial, data):
        return (initial or None) != self.to_python(data)


class PlatformModelAdmin(LargeTableAdminMixin, admin.ModelAdmin):
    """Defaults for big operational tables, and permission checks with object scoping.

    Permissions come from roles (every object) or per-instance object grants (the instance
    and every row below it, via the model's INSTANCE_PATH): see accounts/scoping.py. The
    changelist, change pages, foreign key choices and bulk actions only ever see rows in the
    user's scope; a row outside it answers 404. Tables of millions set `large_table = True`
    (wework/admin_large.py: indexed orderings and searches, relations after the page).
    """

    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    formfield_overrides = {models.JSONField: {"form_class": NullableJSONFormField}}

    # --- permissions -----------------------------------------------------------------------

    def _perm(self, action):
        return model_perm(self.model, action)

    def _can(self, request, action, obj=None):
        if obj is None:
            return may_use_model(request.user, self._perm(action), self.model)
        return request.user.has_perm(self._perm(action), obj)

    def has_view_permission(self, request, obj=None):
        return self._can(request, "view", obj) or self._can(request, "change", obj)

    def has_add_permission(self, request):
        return self._can(request, "add")

    def has_change_permission(self, request, obj=None):
        return self._can(request, "change", obj)

    def has_delete_permission(self, request, obj=None):
        return self._can(request, "delete", obj)

    def has_module_permission(self, request):
        return request.user.has_module_perms(self.opts.app_label)

    # --- scoping ---------------------------------------------------------------------------

    def get_base_queryset(self, request):
        """The unscoped queryset (SoftDeleteAdminMixin widens it to deleted rows)."""
        return super().get_queryset(request)

    def get_queryset(self, request):
        return scope_queryset(
            self.get_base_queryset(request), request.user, self._perm("view"), self._perm("change")
        )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # The design's `tags` columns are JSON lists: edited as words, never as raw JSON.
        if isinstance(db_field, models.JSONField) and db_field.name == "tags":
            kwargs["form_class"] = TagListFormField
            return db_field.formfield(**kwargs)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        if "queryset" not in kwargs and getattr(related, "INSTANCE_PATH", None) is not None:
            kwargs["queryset"] = scope_queryset(
                related._default_manager.all(), request.user, model_perm(related, "view")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not request.user.has_perm(self._perm("change" if change else "add"), obj):
            raise PermissionDenied
        super().save_model(request, obj, form, change)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Outside the user's scope or missing: 404, not a redirect that hints either way.
        raise Http404

    # --- database routing ---------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        if request.method not in ("GET", "HEAD"):
            return super().changelist_view(request, extra_context)

        def read():
            response = super(PlatformModelAdmin, self).changelist_view(request, extra_context)
            if isinstance(response, SimpleTemplateResponse):
                # Templates read lazily: render inside the pure-read block, so that a replica
                # that fails while rendering is retried on the primary too.
                response.render()
            return response

        return routers.read_only_call(read, user=request.user)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        with routers.primary():
            return super().changeform_view(request, object_id, form_url, extra_context)

    # --- sudo mode ----------------------------------------------------------------------------
    # The one sudo mechanism of the admin. `sudo_views` names what needs a one-time code entered
    # in the last minutes (accounts.services.otp.in_sudo): "delete_view", "delete_action" (bulk
    # delete), "actions" (any bulk action), "add_view" / "change_view" (opening the form),
    # "changeform_post" (saving it). None means: deleting needs sudo on the instance model
    # (INSTANCE_PATH == ""), nothing else. Custom views call `sudo_redirect()` themselves.
    sudo_views = None

    def get_sudo_views(self):
        if self.sudo_views is not None:
            return self.sudo_views
        if getattr(self.model, "INSTANCE_PATH", None) == "":
            return ("delete_view", "delete_action")
        return ()

    @staticmethod
    def in_sudo(request):
        return in_sudo(request)

    def sudo_redirect(self, request, name=None):
        """The redirect to the sudo page when `request` is not in sudo mode (and, with `name`,
        when that view is one of `sudo_views`), else None."""
        if name is not None and name not in self.get_sudo_views():
            return None
        return None if in_sudo(request) else sudo_redirect(request)

    def delete_view(self, request, object_id, extra_context=None):
        return self.sudo_redirect(request, "delete_view") or super().delete_view(
            request, object_id, extra_context
        )

    def add_view(self, request, form_url="", extra_context=None):
        redirect = self.sudo_redirect(request, "add_view")
        if redirect is None and request.method == "POST":
            redirect = self.sudo_redirect(request, "changeform_post")
        return redirect or super().add_view(request, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        redirect = self.sudo_redirect(request, "change_view")
        if redirect is None and request.method == "POST":
            redirect = self.sudo_redirect(request, "changeform_post")
        return redirect or super().change_view(request, object_id, form_url, extra_context)

    def response_action(self, request, queryset, *args, **kwargs):
        redirect = self.sudo_redirect(request, "actions")
        if redirect is None and request.POST.get("action") == "delete_selected":
            redirect = self.sudo_redirect(request, "delete_action")
        return redirect or super().response_action(request, queryset, *args, **kwargs)


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

    def get_base_queryset(self, request):
        # PlatformModelAdmin.get_queryset() scopes this; it must stay a hook, not get_queryset,
        # so that the mixin works in either base-class order.
        qs = self.model.all_objects.get_queryset()
        ordering = self.get_ordering(request)
        if ordering:
            qs = qs.order_by(*ordering)
        return qs

    def get_list_filter(self, request):
        return (DeletedFilter, *super().get_list_filter(request))

    @admin.action(description=_("Restore selected deleted rows"), permissions=["change"])
    def restore_selected(self, request, queryset):
        restored = queryset.restore()  # audited row by row
        self.message_user(
            request,
            ngettext("%(count)d row restored.", "%(count)d rows restored.", restored)
            % {"count": restored},
            messages.SUCCESS,
        )


# --- Lists over shards ----------------------------------------------------------------------
# A month of messages, an instance's contacts, groups or members: the changelist browses one
# shard at a time, chosen on the right like a filter (always one selected, the admin's default
# when none is asked for). Subclasses say which shards there are and which model holds one;
# the rows are scoped like every other list. System logs page a day by id on a page of their
# own (monitoring/admin.py) and pick their day in its form.


class ShardChoiceFilter(admin.SimpleListFilter):
    """The shard a ShardedModelAdmin browses; choosing it is the admin's get_queryset()."""

    def __init__(self, request, params, model, model_admin):
        self.title = model_admin.shard_title
        self.parameter_name = model_admin.shard_parameter
        self.current = model_admin.chosen_shard_key(request)
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        return model_admin.shard_choices(request)

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": str(self.current) == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        return queryset  # the shard is chosen in ShardedModelAdmin.get_queryset


class ShardedModelAdmin(PlatformModelAdmin):
    """A changelist over one shard at a time (see ShardChoiceFilter). Subclasses define
    `shard_parameter`, `shard_title`, `shard_choices(request)` [(key, label)],
    `default_shard_key(request)` and `shard_model(key)` (None when that shard does not exist),
    and may narrow the rows in `scope_shard(request, queryset)`."""

    large_table = True
    shard_parameter = "shard"
    shard_title = _("shard")

    def shard_choices(self, request):
        raise NotImplementedError

    def default_shard_key(self, request):
        raise NotImplementedError

    def shard_model(self, key):
        raise NotImplementedError

    def scope_shard(self, request, queryset):
        return queryset

    def chosen_shard_key(self, request):
        """The shard asked for when it is one of the choices, else the default."""
        raw = request.GET.get(self.shard_parameter)
        if raw and raw in {str(key) for key, _label in self.shard_choices(request)}:
            return raw
        return self.default_shard_key(request)

    def get_list_filter(self, request):
        return [ShardChoiceFilter, *super().get_list_filter(request)]

    def get_queryset(self, request):
        key = self.chosen_shard_key(request)
        model = self.shard_model(key) if key is not None else None
        if model is None:
            return self.model._default_manager.none()
        return self.scope_shard(request, model._default_manager.all())
