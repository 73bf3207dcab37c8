"""Admin for messaging: messages (by month shard), tasks with progress and actions, receivers,
templates with preview."""
import re
from urllib.parse import quote

from django.contrib import admin, messages as flash
from django.contrib.admin.views.main import ChangeList
from django.db.models import prefetch_related_objects
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import RFC3986_SUBDELIMS, urlencode
from django.utils.translation import gettext_lazy as _

from contacts.models import WeworkAccount
from wework import shards
from wework.admin import PlatformModelAdmin, ShardedModelAdmin, SoftDeleteAdminMixin
from wework.admin_rows import ChangeUrlsOnce, split_around

from . import display, permissions
from .errors import MessagingInvalid, SendPermissionDenied, error_messages
from .forms import TEMPLATE_PART_FIELDS, TemplateAdminForm, VariableDeclarationsField
from .models import ChatType, Message, MessageReceiver, MessageTask, MessageTemplate
from .services import lifecycle, templates


def _current_month():
    return timezone.localdate().strftime("%Y%m")


class DirectionFilter(admin.SimpleListFilter):
    title = _("direction")
    parameter_name = "direction"

    def lookups(self, request, model_admin):
        return (("out", _("Sent")), ("in", _("Received")))

    def queryset(self, request, queryset):
        if self.value() == "out":
            return queryset.filter(task_id__isnull=False)
        if self.value() == "in":
            return queryset.filter(task_id__isnull=True)
        return queryset


UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
#: chat_wxid's length: a longer term names no chat.
MAX_WXID = 100


class ShardPageChangeList(ChangeUrlsOnce, ChangeList):
    """The page's rows come from the month's shard alone; their accounts follow in one query by
    id (a join would let the server start from the accounts and sort the whole month). Change
    links: one reverse() a page (ChangeUrlsOnce)."""

    def get_ordering(self, request, queryset):
        # by id only (a column header's ?o= on another column is dropped): the primary key
        ordering = [o for o in super().get_ordering(request, queryset)
                    if isinstance(o, str) and o.lstrip("-") in ("pk", "id")]
        return ordering or ["-pk"]

    def get_results(self, request):
        super().get_results(request)
        rows = list(self.result_list)
        prefetch_related_objects(rows, "account")
        self.result_list = rows


class ConversationLinks:
    """messaging:conversation's path for (account id, chat WeCom ID) from one reverse(): the
    same path as reverse() (its quoting of a path, RFC 3986), for the 50 rows of a page."""

    def __init__(self):
        self._parts = {}  # by (script prefix, urlconf): what reverse() depends on

    def __call__(self, account_id, chat_wxid):
        if not chat_wxid or "/" in chat_wxid:  # what <str:> refuses: reverse() says so
            return reverse("messaging:conversation", args=[account_id, chat_wxid])
        key = (get_script_prefix(), get_urlconf())
        parts = self._parts.get(key)
        if parts is None:
            parts = self._parts[key] = split_around(
                reverse("messaging:conversation", args=[1, "c"]), "/1/c/", 1)
        head, tail = parts
        return f"{head}{int(account_id)}/{quote(chat_wxid, safe=PATH_SAFE)}{tail}"


PATH_SAFE = RFC3986_SUBDELIMS + "/~:@"


@admin.register(Message)
class MessageAdmin(ShardedModelAdmin):
    """Messages live in monthly shards: the list shows one month (selector on the right).

    A month holds millions of rows (issue 13), so the page is read from the shard by its
    primary key: sorted by id only, scoped by account ids (no join), accounts attached after
    the page, and the search is exact on an index: a message UUID (uk_message_uuid), an
    account's WeCom ID (its messages, idx_account_chat) or a chat's WeCom ID (on the visible
    accounts: idx_account_chat's (account, chat) pairs), never an OR across a join."""

    shard_parameter = "month"
    shard_title = _("month")
    list_display = ("id", "created_at", "account", "chat_type", "conversation_link", "message_type",
                    "short_content", "send_status", "error_code", "task_id")
    list_filter = (DirectionFilter, "send_status", "message_type", "chat_type")
    search_fields = ("=message_uuid", "=account__wxid", "=chat_wxid")  # see get_search_results
    search_help_text = _("Exact: a message UUID, an account's WeCom ID or a chat's WeCom ID.")
    list_select_related = ()  # accounts: ShardPageChangeList
    sortable_by = ("id",)
    raw_id_fields = ("account",)
    ordering = ("-id",)
    readonly_fields = [f.name for f in Message._meta.fields]
    show_full_result_count = False
    conversation_url = ConversationLinks()

    def shard_choices(self, request):
        months = [model._shard_suffix for model in shards.shard_models(Message)
                  if getattr(model, "_shard_suffix", None)]
        months = months or [_current_month()]
        return [(month, f"{month[:4]}-{month[4:]}") for month in months]

    def default_shard_key(self, request):
        return _current_month()

    def shard_model(self, key):
        try:
            when = timezone.make_aware(timezone.datetime(int(key[:4]), int(key[4:6]), 15))
            return shards.model_for(Message, when, create=False)
        except (ValueError, shards.ShardError):
            return None

    def scope_shard(self, request, queryset):
        return queryset.filter(permissions.account_scope_q(request.user, "messaging.view_message"))

    def get_changelist(self, request, **kwargs):
        return ShardPageChangeList

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if UUID.match(term):
            return queryset.filter(message_uuid=term), False
        if len(term) > MAX_WXID or any(ch.isspace() for ch in term):
            self.message_user(request, _("Search one message UUID, account WeCom ID or chat WeCom ID, "
                                         "exactly: a month holds millions of messages and only these "
                                         "are indexed."), flash.WARNING)
            return queryset.none(), False
        visible = WeworkAccount._base_manager.filter(
            permissions.instance_q(request.user, "messaging.view_message", "instance_id"))
        senders = list(visible.filter(wxid=term).values_list("pk", flat=True))
        if senders:
            return queryset.filter(account_id__in=senders), False
        accounts = sorted(visible.values_list("pk", flat=True))
        return queryset.filter(account_id__in=accounts, chat_wxid=term), False

    def get_object(self, request, object_id, from_field=None):
        obj = shards.get_or_none(Message, object_id) if str(object_id).isdigit() else None
        if obj is None:
            return None
        same = type(obj)._default_manager.filter(pk=obj.pk)
        allowed = permissions.scope(same, request.user, "messaging.view_message")
        return obj if allowed.exists() else None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("chat WeCom ID"), ordering="chat_wxid")
    def conversation_link(self, obj):
        return format_html('<a href="{}">{}</a>', self.conversation_url(obj.account_id, obj.chat_wxid),
                           obj.chat_wxid)

    @admin.display(description=_("content"))
    def short_content(self, obj):
        return display.summary(obj.message_type, obj.message_content)

    @admin.display(description=_("content as sent or received"))
    def content_display(self, obj):
        rendered = display.render(obj.message_type, obj.message_content)
        conversation = format_html('<p><a class="button" href="{}">{}</a></p>', reverse(
            "messaging:conversation", args=[obj.account_id, obj.chat_wxid]), _("Open the conversation"))
        if obj.task_id is not None:  # sent by the platform
            return format_html("{}{}", rendered, conversation)
        # received: answer it from here, in its conversation, without copying ids
        key = "groups" if obj.chat_type == ChatType.GROUP else "contacts"
        query = urlencode({"account": obj.account_id, "reply_to": obj.pk, key: obj.chat_wxid})
        return format_html('{}<p><a class="button" href="{}?{}">{}</a></p>{}', rendered,
                           reverse("messaging:compose"), query, _("Reply"), conversation)

    def get_readonly_fields(self, request, obj=None):
        return ["content_display", *self.readonly_fields]


class ReceiverInline(admin.TabularInline):
    model = MessageReceiver
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("receiver_type", "receiver_wxid", "receiver_name", "send_status", "send_time",
              "retry_count", "error_code", "error_message")
    readonly_fields = fields
    show_change_link = True

    def get_queryset(self, request):
        # Failed receivers first (a broadcast has up to 100,000).
        return super().get_queryset(request).order_by("-send_status", "id")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(MessageTask)
class MessageTaskAdmin(PlatformModelAdmin):
    list_display = ("id", "task_name", "task_type", "account", "message_type", "status",
                    "progress_bar", "success_count", "fail_count", "target_count", "priority",
                    "scheduled_time", "created_at")
    list_filter = ("status", "task_type", "message_type", "priority")
    search_fields = ("task_name", "=task_uuid")
    list_select_related = ("account", "created_by")
    raw_id_fields = ("account", "template", "created_by")
    ordering = ("-id",)
    readonly_fields = ("task_uuid", "target_count", "success_count", "fail_count", "progress",
                       "started_at", "completed_at", "created_at", "updated_at", "live_progress")
    actions = ["pause_tasks", "resume_tasks", "cancel_tasks", "resend_failed", "rebuild"]

    def has_add_permission(self, request):
        return False  # tasks are created from the compose page or the API (validation there)

    def changelist_view(self, request, extra_context=None):
        # No "add" here: the object tools link to the compose page instead, when allowed.
        extra_context = {**(extra_context or {}), "can_compose": permissions.may_compose(request.user)}
        return super().changelist_view(request, extra_context=extra_context)

    @admin.display(description=_("progress"))
    def progress_bar(self, obj):
        return format_html(
            '<progress max="100" value="{}" style="width:8em"></progress> {}%', obj.progress, obj.progress
        )

    @admin.display(description=_("live progress"))
    def live_progress(self, obj):
        if obj.pk is None:
            return "-"
        return _link("messaging:task_detail", obj.pk, _("Open the live progress page"))

    def _act(self, request, queryset, fn, done_msg):
        """Run the operator action `fn` of `lifecycle` on the selected tasks the user may manage."""
        allowed = permissions.scope(queryset, request.user, permissions.MANAGE_TASK)
        ok = 0
        for task in allowed:
            try:
                fn(request.user, task)
                ok += 1
            except (MessagingInvalid, SendPermissionDenied) as exc:
                self.message_user(request, f"{task}: {'; '.join(error_messages(exc))}", flash.WARNING)
        skipped = queryset.count() - allowed.count()
        if skipped:
            self.message_user(request, _("%(n)d tasks skipped: no permission.") % {"n": skipped}, flash.WARNING)
        self.message_user(request, done_msg % {"count": ok}, flash.SUCCESS)

    @admin.action(description=_("Pause selected tasks"))
    def pause_tasks(self, request, queryset):
        self._act(request, queryset, lifecycle.pause_task, _("%(count)d tasks paused."))

    @admin.action(description=_("Resume selected tasks"))
    def resume_tasks(self, request, queryset):
        self._act(request, queryset, lifecycle.resume_task, _("%(count)d tasks resumed."))

    @admin.action(description=_("Cancel selected tasks"))
    def cancel_tasks(self, request, queryset):
        self._act(request, queryset, lifecycle.cancel_task, _("%(count)d tasks cancelled."))

    @admin.action(description=_("Resend failed receivers"))
    def resend_failed(self, request, queryset):
        self._act(request, queryset, lifecycle.resend_failed, _("%(count)d tasks re-queued."))

    @admin.action(description=_("Rebuild counters from receivers"))
    def rebuild(self, request, queryset):
        self._act(request, queryset, lifecycle.recount_task, _("%(count)d tasks recounted."))


@admin.register(MessageReceiver)
class MessageReceiverAdmin(PlatformModelAdmin):
    list_display = ("id", "task", "receiver_type", "receiver_wxid", "receiver_name", "send_status",
                    "send_time", "retry_count", "error_code", "message_id")
    list_filter = ("send_status", "receiver_type")
    # A broadcast has up to 100,000 receivers: a large table (wework/admin_large.py). The WeCom
    # ID is indexed with its task: searched within the task chosen by ?task__id__exact=.
    large_table = True
    search_fields = ("=task", "=receiver_wxid")
    page_prefetch = ("task",)
    raw_id_fields = ("task",)
    ordering = ("-id",)
    readonly_fields = [f.name for f in MessageReceiver._meta.fields]

    def indexed_search_scope(self, request, attname):
        if attname != "receiver_wxid":
            return {}
        task = request.GET.get("task__id__exact", "")
        return {"task_id": int(task)} if task.isdigit() else None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(MessageTemplate)
class MessageTemplateAdmin(SoftDeleteAdminMixin, PlatformModelAdmin):
    small_table = True  # a few hundred templates: any order
    list_display = ("id", "name", "category", "message_type", "status", "use_count", "last_used_at",
                    "is_public", "is_system", "preview_link")
    list_filter = ("message_type", "status", "category", "is_public", "is_system")
    search_fields = ("name", "category", "=template_uuid")
    ordering = ("sort_order", "-id")
    readonly_fields = ("template_uuid", "use_count", "last_used_at", "preview_content",
                       "created_by", "created_at", "updated_at")
    form = TemplateAdminForm
    fields = ("name", "category", "message_type", "content", *TEMPLATE_PART_FIELDS, "variables", "tags", "thumbnail_url",
              "is_public", "is_system", "status", "sort_order", "template_uuid", "preview_content",
              "use_count", "last_used_at", "created_by", "created_at", "updated_at")

    class Media:
        js = ("messaging/template_form.js",)

    @admin.display(description=_("preview"))
    def preview_link(self, obj):
        return _link("messaging:template_preview", obj.pk, _("Preview"))

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "variables":
            kwargs["form_class"] = VariableDeclarationsField
            return db_field.formfield(**kwargs)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
            obj.template_uuid = shards.new_uuid()
        templates.prepare_template(obj)
        super().save_model(request, obj, form, change)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)

        class TemplateForm(form):
            def clean(self):
                data = super().clean()
                if data.get("message_type") and data.get("content") is not None:
                    try:
                        templates.validate_template(data["message_type"], data["content"], data.get("variables"),
                                                    thumbnail_url=data.get("thumbnail_url"))
                    except MessagingInvalid as exc:
                        for field, msgs in exc.fields.items():
                            self.add_error(field if field in self.fields else None, msgs)
                return data

        return TemplateForm


def _link(name, pk, label):
    try:
        return format_html('<a href="{}">{}</a>', reverse(name, args=[pk]), label)
    except NoReverseMatch:
        return "-"
