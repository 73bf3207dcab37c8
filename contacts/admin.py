"""Admin of contacts: WeCom accounts (sync, logout actions) and the per-instance shards of
contacts, groups and members, browsed one instance at a time (read-only)."""
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _, ngettext

from instances import permissions
from instances.admin import WeworkInstanceAdmin
from instances.models import WeworkInstance
from instances.services import ServiceError
from wework import shards
from wework.admin import PlatformModelAdmin, ShardedModelAdmin, SoftDeleteAdminMixin, confirm_action

from . import services
from .admin_qr_login import InstanceQrLoginAdminMixin
from .models import Contact, Group, GroupMember, WeworkAccount


@admin.register(WeworkAccount)
class WeworkAccountAdmin(SoftDeleteAdminMixin, PlatformModelAdmin):
    list_display = ["wxid", "nickname", "instance", "status", "is_logged_in", "login_method",
                    "last_login_time", "contact_count", "group_count", "last_sync_time", "related_links"]
    list_filter = ["status", "is_logged_in", "login_method"]
    search_fields = ["wxid", "nickname", "phone"]
    list_select_related = ["instance"]
    raw_id_fields = ["instance"]
    readonly_fields = ["status", "is_logged_in", "last_login_time", "last_sync_time",
                       "sync_state", "contact_count", "group_count", "total_messages",
                       "today_messages", "created_at", "updated_at"]
    actions = ["restore_selected", "sync_selected", "logout_selected"]

    @admin.display(description=_("see"))
    def related_links(self, obj):
        """Where an operator goes from an account: its contacts, group chats and send tasks."""
        shard = {"instance": obj.instance_id, "account": obj.pk}
        return format_html(
            '<a href="{}?{}">{}</a> · <a href="{}?{}">{}</a> · <a href="{}?{}">{}</a>',
            reverse("admin:contacts_contact_changelist"), urlencode(shard), _("contacts"),
            reverse("admin:contacts_group_changelist"), urlencode(shard), _("group chats"),
            reverse("admin:messaging_messagetask_changelist"), urlencode({"account__id__exact": obj.pk}),
            _("tasks"))

    @admin.display(description=_("contact sync"))
    def sync_state(self, obj):
        """The current or last sync of the account (automatic or started by an operator)."""
        if obj is None or not obj.pk:
            return "-"
        return services.sync_run_label(services.sync_run(obj))

    # current_accounts follows every change of the set of live, logged-in accounts
    @admin.action(description=_("Restore selected deleted rows"), permissions=["change"])
    def restore_selected(self, request, queryset):
        instance_ids = set(queryset.values_list("instance_id", flat=True))
        super().restore_selected(request, queryset)
        for instance_id in instance_ids:
            services.recount_accounts(instance_id)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        services.recount_accounts(obj.instance_id)

    def delete_queryset(self, request, queryset):
        instance_ids = set(queryset.values_list("instance_id", flat=True))
        super().delete_queryset(request, queryset)
        for instance_id in instance_ids:
            services.recount_accounts(instance_id)

    @admin.action(description=_("Sync contacts, groups and members of the selected accounts"))
    def sync_selected(self, request, queryset):
        queued, refused = 0, []
        for account in queryset:
            if not permissions.allowed(request.user, permissions.SYNC_CONTACTS,
                                       account.instance_id):
                refused.append("%s: %s" % (account, _("permission denied")))
            elif not account.is_logged_in:
                refused.append("%s: %s" % (account, _("not logged in")))
            elif not services.request_sync(account).queued:
                busy = _("a sync is already queued or running")
                refused.append(f"{account}: {busy}")
            else:
                queued += 1
        if queued:
            self.message_user(request, ngettext("Sync started for %(n)d account.",
                                                "Sync started for %(n)d accounts.", queued)
                              % {"n": queued}, messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.ERROR)

    @admin.action(description=_("Log the selected accounts out"))
    def logout_selected(self, request, queryset):
        confirm = confirm_action(self, request, queryset, question=_("Log these accounts out?"),
                                 consequence=_("They stop receiving and sending until someone scans a new QR "
                                               "code on the instance."))
        if confirm is not None:
            return confirm
        done = 0
        for account in queryset.select_related("instance"):
            if not permissions.allowed(request.user, permissions.LOGIN_ACCOUNT,
                                       account.instance_id):
                self.message_user(request, "%s: %s" % (account, _("permission denied")),
                                  messages.ERROR)
                continue
            try:
                services.logout(account)
                done += 1
            except ServiceError as exc:
                self.message_user(request, f"{account}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, ngettext("%(n)d account logged out.",
                                                "%(n)d accounts logged out.", done)
                              % {"n": done}, messages.SUCCESS)


class RowOfFilter(admin.SimpleListFilter):
    """Rows of one account (contacts, groups) or one group chat (members), reached by a link
    (`?account=<id>`, `?group=<id>`); shown as a choice that can be cleared."""

    field = ""

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, self.describe(value))] if value and value.isdigit() else []

    def describe(self, value):
        return value

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(**{self.field: int(value)})
        return queryset


class AccountRowsFilter(RowOfFilter):
    title = _("account")
    parameter_name = field = "account"

    def describe(self, value):
        account = WeworkAccount.all_objects.filter(pk=int(value)).values_list("nickname", "wxid").first()
        return f"{account[0] or account[1]}" if account else value


class GroupRowsFilter(RowOfFilter):
    title = _("group chat")
    parameter_name = field = "group"


class InstanceShardAdmin(ShardedModelAdmin):
    """Rows of one instance's shard (the first visible instance by default); read-only (the
    sync writes them)."""

    view_perm = None
    list_display_links = None
    shard_parameter = "instance"
    shard_title = _("instance")

    def visible_instances(self, request):
        qs = WeworkInstance.objects.order_by("name")
        ids = permissions.scoping.visible_instance_ids(request.user, self.view_perm)
        return qs if ids is None else qs.filter(pk__in=sorted(ids))

    def shard_choices(self, request):
        return [(str(pk), name) for pk, name in self.visible_instances(request).values_list("pk", "name")[:200]]

    def default_shard_key(self, request):
        first = self.visible_instances(request).values_list("pk", flat=True).first()
        return None if first is None else str(first)

    def chosen_shard_key(self, request):
        # any visible instance, also beyond the 200 listed on the right
        raw = request.GET.get(self.shard_parameter)
        if raw and raw.isdigit() and self.visible_instances(request).filter(pk=int(raw)).exists():
            return raw
        return self.default_shard_key(request)

    def chosen_instance_id(self, request):
        key = self.chosen_shard_key(request)
        return None if key is None else int(key)

    def shard_model(self, key):
        try:
            return shards.model_for(self.model, instance_id=int(key), create=False)
        except shards.ShardError:
            return None

    def scope_shard(self, request, queryset):
        return queryset.order_by("-id")

    #: Columns an index serves together with the account: (account, wxid), (account, group_wxid).
    account_indexed = ("wxid", "group_wxid")

    def indexed_search_scope(self, request, attname):
        if attname not in self.account_indexed:
            return {}
        accounts = WeworkAccount.all_objects.filter(instance_id=self.chosen_instance_id(request))
        return {"account_id__in": sorted(accounts.values_list("pk", flat=True))}

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.display(description=_("account"), ordering="account_id")
def account_column(obj):
    """The account as people know it (nickname and WeCom id); the accounts of a page come in
    one query after it (page_prefetch), never joined into the shard's page."""
    account = obj.account
    return f"{account.nickname} ({account.wxid})" if account.nickname else account.wxid


@admin.display(description=_("conversation"))
def conversation_column(obj):
    """A link to the account's conversation with the contact or group chat (the messaging
    app's workspace, named by its URL)."""
    wxid = getattr(obj, "group_wxid", None) or obj.wxid
    return format_html('<a href="{}">{}</a>', reverse("messaging:conversation", args=[obj.account_id, wxid]),
                       _("Open"))


@admin.display(description=_("group chat"), ordering="group_id")
def group_column(obj):
    """The group's name, a link to its members (groups and accounts come after the page)."""
    group = obj.group
    return format_html('<a href="{}?{}">{}</a>', reverse("admin:contacts_groupmember_changelist"),
                       urlencode({"instance": group.account.instance_id, "group": group.pk}),
                       group.group_name or group.group_wxid)


@admin.register(Contact)
class ContactAdmin(InstanceShardAdmin):
    view_perm = "contacts.view_contact"
    list_display = ["wxid", "nickname", "remark", account_column, "contact_type",
                    "friend_status", "last_sync_time", "deleted_at", conversation_column]
    list_filter = [AccountRowsFilter, "contact_type", "sync_status"]
    search_fields = ["=wxid", "^nickname", "^remark"]
    page_prefetch = ("account",)


@admin.register(Group)
class GroupAdmin(InstanceShardAdmin):
    view_perm = "contacts.view_group"
    list_display = ["group_wxid", "group_name", account_column, "members_link", "my_role",
                    "is_active", "last_sync_time", "deleted_at", conversation_column]
    list_filter = [AccountRowsFilter, "my_role", "is_active"]
    search_fields = ["=group_wxid", "^group_name"]
    page_prefetch = ("account",)

    @admin.display(description=_("members"), ordering="member_count")
    def members_link(self, obj):
        return format_html('<a href="{}?{}">{}</a>', reverse("admin:contacts_groupmember_changelist"),
                           urlencode({"instance": obj.account.instance_id, "group": obj.pk}), obj.member_count)


@admin.register(GroupMember)
class GroupMemberAdmin(InstanceShardAdmin):
    view_perm = "contacts.view_groupmember"
    list_display = ["member_wxid", "member_nickname", "group_nickname", group_column, "role",
                    "is_active", "join_time", "left_at"]
    list_filter = [GroupRowsFilter, "role", "is_active"]
    # nicknames have no index in a group's members; the group's name has one in the groups
    search_fields = ["=member_wxid", "^group__group_name"]
    page_prefetch = ("group__account",)


class WeworkInstanceWithLoginAdmin(InstanceQrLoginAdminMixin, WeworkInstanceAdmin):
    """The instance admin of the instances app, with this app's QR-login pages."""


admin.site.unregister(WeworkInstance)
admin.site.register(WeworkInstance, WeworkInstanceWithLoginAdmin)
