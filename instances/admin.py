"""Admin of instances: instances (restart, push config, QR login), configs (encrypted values
write-only), metrics (weekly shards, one shard at a time) and the webhook event inbox."""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import scoping
from accounts.scoping import has_global_perm
from instances.services import endpoint as endpoint_service
from wework import shards
from wework.admin import PlatformModelAdmin, SoftDeleteAdminMixin, confirm_action

from . import permissions, services
from .models import (
    ConfigType,
    InstanceConfig,
    InstanceEvent,
    InstanceMonitor,
    WeworkInstance,
)

#: Where the platform sends an instance's API token and webhook secret: changing them goes
#: through instances.services.endpoint (its permission, sudo mode, re-keying, audit), and so
#: does giving a token (see WeworkInstanceAdmin.change_view and save_model).
ENDPOINT_FIELDS = ("api_url", "proxy_host", "proxy_port", "proxy_username", "proxy_password",
                   "clear_proxy_password", "token")


class WeworkInstanceForm(forms.ModelForm):
    """The proxy password is write-only: never rendered, empty keeps the stored one."""

    #: Set by the admin: whether this user may change ENDPOINT_FIELDS of an existing instance.
    may_move_endpoint = True

    proxy_password = forms.CharField(
        label=_("proxy password"), required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Leave empty to keep the stored password."),
    )
    clear_proxy_password = forms.BooleanField(label=_("clear the proxy password"),
                                              required=False)
    token = forms.CharField(
        label=_("API token"), required=False, max_length=500,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("The instance's token at its address. Moving an instance (API URL, proxy) "
                    "withholds the stored token until its token at the new address is given "
                    "here."),
    )

    class Meta:
        model = WeworkInstance
        exclude = ["proxy_password_encrypted"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "created_by" in self.fields and self.instance.pk is None:
            # Empty on a new instance: the user saving it (WeworkInstanceAdmin.save_model).
            self.fields["created_by"].required = False

    def clean_name(self):
        name = (self.cleaned_data.get("name") or "").strip()
        taken = WeworkInstance.objects.filter(name=name, deleted_at__isnull=True)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise ValidationError(_("Another instance is already named %(name)s.")
                                  % {"name": name})
        return name

    def clean_api_url(self):
        value = (self.cleaned_data.get("api_url") or "").strip()
        if value:
            URLValidator(schemes=["http", "https"],
                         message=_("Enter an http:// or https:// URL."))(value)
        return value or None

    def _positive(self, field, low, high):
        value = self.cleaned_data.get(field)
        if value is not None and not low <= value <= high:
            raise ValidationError(_("Enter a number from %(low)d to %(high)d.")
                                  % {"low": low, "high": high})
        return value

    def clean_max_accounts(self):
        return self._positive("max_accounts", 1, 10000)

    def clean_heartbeat_interval(self):
        return self._positive("heartbeat_interval", 1, 86400)

    def clean_proxy_port(self):
        return self._positive("proxy_port", 1, 65535)

    def endpoint_values(self):
        """The endpoint values of this form for instances.services.endpoint."""
        data = self.cleaned_data
        password = "" if data.get("clear_proxy_password") else (data.get("proxy_password") or None)
        return {"api_url": data.get("api_url"), "proxy_host": data.get("proxy_host"),
                "proxy_port": data.get("proxy_port"), "proxy_username": data.get("proxy_username"),
                "proxy_password": password}

    def endpoint_changes(self):
        """The endpoint fields (and the token) this form changes on an existing instance."""
        if self.instance.pk is None:
            return ["token"] if self.cleaned_data.get("token") else []
        changed = [name for name in ENDPOINT_FIELDS[:4] if name in self.changed_data]
        if self.cleaned_data.get("proxy_password") or self.cleaned_data.get("clear_proxy_password"):
            changed.append("proxy_password")
        if self.cleaned_data.get("token"):
            changed.append("token")
        return changed

    def clean(self):
        cleaned = super().clean()
        if not self.may_move_endpoint:
            for name in self.endpoint_changes():
                self.add_error(name if name in self.fields else None, _(
                    "Changing where an instance's API token and webhook secret are sent needs the "
                    "permission to change instance endpoints (a role); ask an administrator."))
        return cleaned

    def save(self, commit=True):
        instance = super().save(commit=False)
        if instance.pk is None:  # a new instance holds no secret yet: its address is set here
            if self.cleaned_data.get("proxy_password"):
                instance.proxy_password_encrypted = self.cleaned_data["proxy_password"]
        if commit:
            instance.save()
        return instance


def _run_on_each(modeladmin, request, queryset, perm, func, done_message):
    done, failed = 0, []
    for instance in queryset:
        if not permissions.allowed(request.user, perm, instance.pk):
            failed.append("%s: %s" % (instance.name, _("permission denied")))
            continue
        try:
            func(instance)
            done += 1
        except services.ServiceError as exc:
            failed.append(f"{instance.name}: {exc.message}")
    if done:
        modeladmin.message_user(request, done_message(done), messages.SUCCESS)
    for line in failed:
        modeladmin.message_user(request, line, messages.ERROR)


@admin.register(WeworkInstance)
class WeworkInstanceAdmin(SoftDeleteAdminMixin, PlatformModelAdmin):
    form = WeworkInstanceForm
    list_display = ["name", "status", "version", "current_accounts", "max_accounts",
                    "last_heartbeat", "restart_count", "error_message_short", "qr_login_link"]
    list_filter = ["status"]
    search_fields = ["name", "instance_uuid", "api_url"]
    list_select_related = ["created_by"]
    raw_id_fields = ["created_by"]
    readonly_fields = ["instance_uuid", "version", "status", "webhook_url", "current_accounts",
                       "last_heartbeat", "error_message", "restart_count", "last_restart_time",
                       "total_messages", "today_messages", "created_at", "updated_at"]
    actions = ["restore_selected", "restart_selected", "push_config_selected"]

    @admin.display(description=_("error"))
    def error_message_short(self, obj):
        return (obj.error_message or "")[:80]

    @admin.display(description=_("QR login"))
    def qr_login_link(self, obj):
        from django.utils.html import format_html

        url = reverse("admin:instances_weworkinstance_qr_login", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Log an account in"))

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # An instance grant lets an operator edit the instance, not send its secrets elsewhere.
        form.may_move_endpoint = endpoint_service.may_change_endpoint(request.user)
        return form

    def add_view(self, request, form_url="", extra_context=None):
        if request.method == "POST" and request.POST.get("token"):
            redirect = self.sudo_redirect(request)
            if redirect is not None:
                return redirect
        return super().add_view(request, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "POST" and self._moves_endpoint(request, object_id):
            redirect = self.sudo_redirect(request)
            if redirect is not None:
                return redirect
        return super().change_view(request, object_id, form_url, extra_context)

    def _moves_endpoint(self, request, object_id):
        """Whether the POSTed form changes where the instance's secrets go."""
        obj = self.get_queryset(request).filter(pk=object_id).first()
        if obj is None:
            return False
        for name in ENDPOINT_FIELDS[:4]:
            posted = (request.POST.get(name) or "").strip()
            if posted != str(getattr(obj, name) or ""):
                return True
        return bool(request.POST.get("proxy_password") or request.POST.get("clear_proxy_password")
                    or request.POST.get("token"))

    def has_add_permission(self, request):
        # A new instance is outside every instance grant: adding one needs the permission on
        # all instances (a role grant), not a grant on some instance.
        return has_global_perm(request.user, self._perm("add"))

    def save_model(self, request, obj, form, change):
        moves = form.endpoint_changes()
        if not change:
            obj.created_by = obj.created_by if obj.created_by_id else request.user
            if not obj.instance_uuid:
                obj.instance_uuid = shards.new_uuid()
        else:
            # The endpoint is written by its service below, never by the ordinary save.
            stored = WeworkInstance.all_objects.get(pk=obj.pk)
            for column in ("api_url", "proxy_host", "proxy_port", "proxy_username",
                           "proxy_password_encrypted"):
                setattr(obj, column, getattr(stored, column))
        super().save_model(request, obj, form, change)
        if not obj.webhook_url:
            obj.webhook_url = services.webhook_url(obj)
            obj.save(update_fields=["webhook_url", "updated_at"])
        if moves:
            result = endpoint_service.change_endpoint(
                obj, user=request.user, request=request, token=form.cleaned_data.get("token") or None,
                via="admin", **form.endpoint_values())
            self._report_endpoint(request, result)

    def _report_endpoint(self, request, result):
        if result.rekeyed:
            self.message_user(request, _("The instance moved: its webhook secret was replaced."),
                              messages.INFO)
        if result.token_withheld or (result.moved and not result.token_given):
            self.message_user(request, _(
                "The platform sends the instance no secret until its API token at the new address "
                "is given (the API token field)."), messages.WARNING)
        if result.pushed:
            self.message_user(request, _("Configuration pushed to the instance at its new address."),
                              messages.SUCCESS)
        elif result.push_error:
            self.message_user(request, _("The configuration push failed: %(error)s")
                              % {"error": result.push_error}, messages.ERROR)

    @admin.action(description=_("Restart the selected instances"))
    def restart_selected(self, request, queryset):
        confirm = confirm_action(self, request, queryset, question=_("Restart these instances?"),
                                 consequence=_("Their WeCom clients stop and start again: accounts are offline "
                                               "and sending pauses for a minute or so."))
        if confirm is not None:
            return confirm
        _run_on_each(self, request, queryset, permissions.RESTART,
                     lambda i: services.restart_instance(i, reason="admin"),
                     lambda n: ngettext("%(n)d instance restarting.",
                                        "%(n)d instances restarting.", n) % {"n": n})

    @admin.action(description=_("Push the configuration to the selected instances"))
    def push_config_selected(self, request, queryset):
        _run_on_each(self, request, queryset, permissions.PUSH_CONFIG, services.push_config,
                     lambda n: ngettext("Configuration pushed to %(n)d instance.",
                                        "Configuration pushed to %(n)d instances.", n)
                     % {"n": n})


class InstanceConfigForm(forms.ModelForm):
    """`config_value` of an encrypted config is write-only: empty keeps the stored value."""

    value = forms.CharField(label=_("value"), required=False, widget=forms.Textarea(
        attrs={"rows": 3}))

    class Meta:
        model = InstanceConfig
        fields = ["instance", "config_key", "config_type", "is_encrypted", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        config = self.instance
        if config.pk and config.is_encrypted:
            self.fields["value"].help_text = _(
                "Encrypted: the stored value is never shown. Leave empty to keep it.")
            self.fields["value"].widget = forms.PasswordInput(render_value=False)
        elif config.pk and config.config_value is not None:
            self.fields["value"].initial = config.config_value
        if config.pk:
            self.fields["config_key"].disabled = True
            self.fields["instance"].disabled = True

    def clean(self):
        data = super().clean()
        value = data.get("value")
        config_type = data.get("config_type") or ConfigType.STRING
        keep = self.instance.pk and self.instance.is_encrypted and not value
        if not keep and value not in (None, ""):
            try:
                services.format_config_value(config_type, value)
            except ValidationError as exc:
                self.add_error("value", exc)
        if self.instance.pk and self.instance.is_system:
            raise ValidationError(_("System configuration is managed by the platform."))
        if not self.instance.pk and data.get("config_key") in services.RESERVED_KEYS:
            self.add_error("config_key", _(
                "This key is the platform's own (the instance's secrets and where they go); set "
                "it through the instance's endpoint."))
        return data

    def save(self, commit=True):
        data = self.cleaned_data
        config = self.instance
        if config.pk and config.is_encrypted and not data.get("value"):
            value = services.config_value(config)
        else:
            value = data.get("value") if data.get("value") != "" else None
        saved = services.set_config(
            data["instance"], data["config_key"], value,
            config_type=data.get("config_type") or ConfigType.STRING,
            encrypted=data.get("is_encrypted", False), description=data.get("description"),
        )
        self.instance = saved
        return saved

    def save_m2m(self):
        return None


@admin.register(InstanceConfig)
class InstanceConfigAdmin(PlatformModelAdmin):
    form = InstanceConfigForm
    list_display = ["config_key", "instance", "config_type", "shown_value", "is_encrypted",
                    "is_system", "updated_at"]
    list_filter = ["config_type", "is_encrypted", "is_system"]
    search_fields = ["config_key", "description", "instance__name"]
    list_select_related = ["instance"]

    @admin.display(description=_("value"))
    def shown_value(self, obj):
        if obj.is_encrypted:
            return services.MASK if obj.config_value else "-"
        return (obj.config_value or "")[:80]

    def save_model(self, request, obj, form, change):
        form.save()

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_system:
            return False
        return super().has_delete_permission(request, obj)


class ShardWeekFilter(admin.SimpleListFilter):
    """Chooses the weekly shard to browse; the newest by default (no COUNT over all weeks)."""

    title = _("week")
    parameter_name = "shard"

    def lookups(self, request, model_admin):
        try:
            models = shards.shard_models(InstanceMonitor)
        except shards.ShardError:
            return []
        return [(m._meta.db_table, m._meta.db_table) for m in models]

    def queryset(self, request, queryset):
        return queryset


@admin.register(InstanceMonitor)
class InstanceMonitorAdmin(PlatformModelAdmin):
    """Metrics, one weekly shard at a time (read-only)."""

    list_display = ["collected_at", "instance_column", "metric_name", "metric_value", "metric_unit"]
    list_filter = [ShardWeekFilter]
    # A week of metrics holds millions of rows (wework/admin_large.py): no search (the metric's
    # index starts with the instance), sorted by time or instance only.
    large_table = True
    list_display_links = None

    @admin.display(description=_("instance"), ordering="instance_id")
    def instance_column(self, obj):
        return obj.instance_id

    def get_queryset(self, request):
        if not shards.is_sharded(InstanceMonitor):
            return super().get_queryset(request)
        try:
            models = shards.shard_models(InstanceMonitor)
        except shards.ShardError:
            models = []
        chosen = request.GET.get("shard")
        model = next((m for m in models if m._meta.db_table == chosen), None)
        if model is None:
            model = models[0] if models else None
        if model is None:
            return InstanceMonitor.objects.none()
        qs = model._default_manager.order_by("-id")
        ids = _visible_ids(request.user, "instances.view_instancemonitor")
        return qs if ids is None else qs.filter(instance_id__in=ids)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _visible_ids(user, perm):
    return scoping.visible_instance_ids(user, perm)


@admin.register(InstanceEvent)
class InstanceEventAdmin(PlatformModelAdmin):
    list_display = ["received_at", "instance", "seq", "event_type", "account_wxid", "state",
                    "attempts", "replayed", "error"]
    list_filter = ["state", "event_type", "replayed"]
    search_fields = ["event_id", "account_wxid"]
    list_select_related = ["instance"]
    readonly_fields = [f.name for f in InstanceEvent._meta.fields]
    actions = ["reprocess_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Process the selected events again"),
                  permissions=["view"])
    def reprocess_selected(self, request, queryset):
        from .models import EventState

        count = 0
        for event in queryset.filter(state=EventState.FAILED):
            if permissions.allowed(request.user, "instances.view_instanceevent",
                                   event.instance_id):
                services.process_event(event.pk)
                count += 1
        self.message_user(request, ngettext("%(n)d event processed again.",
                                            "%(n)d events processed again.", count)
                          % {"n": count}, messages.SUCCESS)
