"""The shard registry in the admin: browse shard tables; rotate, export and drop them.

Each sharded model is browsed through its own facade admin (messaging, monitoring, instances and
contacts admins, one shard at a time, keyset pages, no COUNT(*)); this page is the registry.
Dropping needs the `shards.drop_shardtable` permission, a confirmation page and sudo mode (a
one-time code entered in the last minutes).
"""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _, ngettext

from wework.admin import PlatformModelAdmin

from . import exports, services
from .exceptions import ShardError
from .models import ShardState, ShardTable


@admin.register(ShardTable)
class ShardTableAdmin(PlatformModelAdmin):
    small_table = True  # one row per shard table: any order
    list_display = ("table_name", "model_label", "state", "period_start", "period_end",
                    "instance_id", "row_estimate", "created_by_tool", "schema_version", "exported_at")
    list_filter = ("state", "strategy", "created_by_tool", "model_label")
    search_fields = ("table_name",)
    ordering = ("model_label", "-period_start", "-instance_id")
    readonly_fields = [f.name for f in ShardTable._meta.fields]
    actions = ["rotate_models", "export_selected", "drop_selected"]

    # The registry is written by the shard tool only.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_rotate_permission(self, request):
        return request.user.has_perm("shards.rotate_shardtable")

    def has_drop_permission(self, request):
        return request.user.has_perm("shards.drop_shardtable")

    @admin.action(description=_("Rotate the models of the selected shards (no drops)"),
                  permissions=["rotate"])
    def rotate_models(self, request, queryset):
        labels = sorted(set(queryset.values_list("model_label", flat=True)))
        try:
            steps = services.rotate(labels=labels, drops=False)
            services.sync_schema(labels=labels)
        except ShardError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(
            request,
            ngettext("Rotation applied %(count)d step.", "Rotation applied %(count)d steps.", len(steps))
            % {"count": len(steps)},
            messages.SUCCESS,
        )

    @admin.action(description=_("Export the selected shards (gzip)"), permissions=["rotate"])
    def export_selected(self, request, queryset):
        done = 0
        for row in queryset.exclude(state=ShardState.DROPPED):
            try:
                services.export_shard(row)
                done += 1
            except ShardError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        self.message_user(
            request,
            ngettext("%(count)d shard exported.", "%(count)d shards exported.", done) % {"count": done},
            messages.SUCCESS,
        )

    @admin.action(description=_("Export then drop the selected shards"), permissions=["drop"])
    def drop_selected(self, request, queryset):
        if not self.has_drop_permission(request):
            raise PermissionDenied
        rows = list(queryset.exclude(state=ShardState.DROPPED))
        refused = [r for r in rows if not r.created_by_tool]
        problems = [_("%(table)s was not created by the shard tool, so it is not dropped.")
                    % {"table": r.table_name} for r in refused]
        droppable = []
        for row in rows:
            if row in refused:
                continue
            try:
                services.check_droppable(row)
            except ShardError as exc:
                problems.append(str(exc))
                continue
            droppable.append(row)
        if request.POST.get("confirm") == "yes":
            redirect = self.sudo_redirect(request)
            if redirect is not None:
                return redirect
            dropped = 0
            try:
                with services.global_lock():
                    for row in droppable:
                        services.drop_shard(row)
                        dropped += 1
            except ShardError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            for problem in problems:
                self.message_user(request, problem, messages.WARNING)
            self.message_user(
                request,
                ngettext("%(count)d shard exported and dropped.", "%(count)d shards exported and dropped.",
                         dropped) % {"count": dropped},
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Drop shard tables"),
            "opts": self.model._meta,
            "rows": droppable,
            "problems": problems,
            "action": "drop_selected",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "export_dir": str(exports.export_dir()),
            "needs_sudo": not self.in_sudo(request),
        }
        return TemplateResponse(request, "admin/shards/drop_confirmation.html", context)
