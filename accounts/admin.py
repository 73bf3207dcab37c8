"""Admin pages of accounts/: users (unlock), roles, grants, sessions ("my sessions" for
everyone), login history (auditors), permissions (read-only)."""
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import AdminForm
from django.contrib.admin.views.main import ChangeList
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _, ngettext

from accounts.forms import UserCreationForm
from accounts.models import (
    InstanceGrant, LoginLog, Permission, Role, User, UserRole, UserSession,
    UserStatus,
)
from accounts.scoping import has_global_perm
from accounts.services import otp as otp_services
from accounts.services import permissions as perm_services
from accounts.services import roles as role_services
from accounts.services import sessions as session_services
from accounts.services import users as user_services
from wework.admin import PlatformModelAdmin, SoftDeleteAdminMixin
from wework.errors import DomainError


def _manages_roles(request):
    return role_services.may_manage_roles(request.user)


class UserRoleInline(admin.TabularInline):
    """Role grants of a user; editing needs accounts.manage_roles and sudo mode."""

    model = UserRole
    fk_name = "user"
    extra = 0
    fields = ("role", "expires_at", "granted_by", "created_at")
    readonly_fields = ("granted_by", "created_at")
    verbose_name_plural = _("role grants (every instance)")

    def _may_edit(self, request):
        return _manages_roles(request) and otp_services.in_sudo(request)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("accounts.view_userrole") or _manages_roles(request)

    def has_add_permission(self, request, obj=None):
        return self._may_edit(request)

    def has_change_permission(self, request, obj=None):
        return self._may_edit(request)

    def has_delete_permission(self, request, obj=None):
        return self._may_edit(request)


@admin.register(User)
class UserAdmin(SoftDeleteAdminMixin, PlatformModelAdmin):
    sudo_views = ("delete_view",)
    add_form = UserCreationForm
    list_display = (
        "username", "email", "nickname", "status", "is_superuser", "two_factor_enabled",
        "locked_until", "login_fail_count", "last_login", "last_login_ip",
    )
    list_filter = ("status", "is_superuser", "two_factor_enabled")
    search_fields = ("username", "email", "phone", "nickname")
    ordering = ("username",)
    readonly_fields = (
        "password_form_link", "last_login", "last_login_ip", "login_fail_count", "locked_until",
        "two_factor_enabled", "created_at", "updated_at", "deleted_at",
    )
    fieldsets = (
        (None, {"fields": ("username", "email", "phone", "nickname", "avatar_url")}),
        (_("Access"), {"fields": ("status", "is_superuser", "email_verified", "phone_verified")}),
        (_("Security"), {"fields": (
            "password_form_link", "two_factor_enabled", "login_fail_count", "locked_until", "last_login",
            "last_login_ip",
        )}),
        (_("Dates"), {"fields": ("created_at", "updated_at", "deleted_at")}),
    )
    add_fieldsets = ((None, {"fields": ("username", "email", "password1", "password2")}),)
    inlines = [UserRoleInline]
    actions = ["restore_selected", "unlock_users", "disable_users", "enable_users", "end_sessions"]

    @admin.display(description=_("password"))
    def password_form_link(self, obj):
        if obj is None or obj.pk is None:
            return ""
        return format_html('<a href="{}">{}</a>', reverse("admin:accounts_user_password", args=[obj.pk]),
                           _("Set a new password"))

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
            kwargs["fields"] = ("username", "email", "password1", "password2")
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields.append("is_superuser")  # only super admins make super admins
        if obj is not None and obj.pk == request.user.pk:
            fields.append("status")  # nobody changes their own status
        return fields

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False  # only super admins edit super admins
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and not user_services.may_delete(request.user, obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_inlines(self, request, obj):
        return [] if obj is None else super().get_inlines(request, obj)

    def get_urls(self):
        return [
            path("<int:object_id>/password/", self.admin_site.admin_view(self.set_password_view),
                 name="accounts_user_password"),
            *super().get_urls(),
        ]

    def set_password_view(self, request, object_id):
        """Set another user's password: change permission on that user and sudo mode; ends the
        user's API sessions."""
        user = self.get_queryset(request).filter(pk=object_id).first()
        if user is None:
            raise Http404
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        redirect = self.sudo_redirect(request)
        if redirect is not None:
            return redirect
        form = AdminPasswordChangeForm(user, request.POST or None)
        if request.method == "POST" and form.is_valid():
            form.save()
            self.log_change(request, user, _("Changed password."))
            self.message_user(request, _("Password changed."), messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:accounts_user_change", args=[user.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Change password: %s") % user.get_username(),
            "adminForm": AdminForm(form, [(None, {"fields": list(form.base_fields)})], {}),
            "form": form, "is_popup": False, "add": True, "change": False,
            "has_delete_permission": False, "has_change_permission": True, "has_absolute_url": False,
            "opts": self.opts, "original": user, "save_as": False, "show_save": True,
        }
        return TemplateResponse(request, "admin/auth/user/change_password.html", context)

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)  # the add form sets the password
            return
        if not request.user.has_perm(self._perm("change"), obj):
            raise PermissionDenied
        user_services.save_user(request.user, obj, form.changed_data)

    def delete_model(self, request, obj):
        user_services.delete_user(request.user, obj)

    @admin.action(description=_("Unlock selected users"), permissions=["change"])
    def unlock_users(self, request, queryset):
        count = user_services.unlock(request.user, user_services.changeable(request.user, queryset))
        self.message_user(request, ngettext("%(n)d user unlocked.", "%(n)d users unlocked.", count) % {"n": count})

    @admin.action(description=_("Disable selected users"), permissions=["change"])
    def disable_users(self, request, queryset):
        count = user_services.set_status(request.user, queryset, UserStatus.DISABLED)
        self.message_user(request, ngettext("%(n)d user disabled.", "%(n)d users disabled.", count) % {"n": count})

    @admin.action(description=_("Enable selected users"), permissions=["change"])
    def enable_users(self, request, queryset):
        count = user_services.set_status(request.user, queryset, UserStatus.ENABLED)
        self.message_user(request, ngettext("%(n)d user enabled.", "%(n)d users enabled.", count) % {"n": count})

    @admin.action(description=_("End all sessions of selected users"), permissions=["change"])
    def end_sessions(self, request, queryset):
        count = sum(session_services.revoke_all_for_user(u, reason="admin") for u in queryset)
        self.message_user(request, ngettext("%(n)d session ended.", "%(n)d sessions ended.", count) % {"n": count})


class PermissionChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return f"{perm_services.permission_label(obj.name, obj.display_name)} ({obj.name})"


class RoleForm(forms.ModelForm):
    permission_names = PermissionChoiceField(
        label=_("Permissions"), queryset=Permission.objects.filter(status=1), required=False,
        widget=FilteredSelectMultiple(_("permissions"), is_stacked=False),
    )

    class Meta:
        model = Role
        fields = ("name", "display_name", "description", "status", "require_two_factor",
                  "is_default", "sort_order")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["permission_names"].initial = list(self.instance.permissions.values_list("pk", flat=True))
        if self.instance.is_system:
            self.fields["permission_names"].disabled = True
            self.fields["permission_names"].help_text = _("System roles are kept in step by `seed_roles`.")


@admin.register(Role)
class RoleAdmin(SoftDeleteAdminMixin, PlatformModelAdmin):
    form = RoleForm
    sudo_views = ("changeform_post", "delete_view", "actions")
    list_display = ("name", "display_label", "status", "is_system", "require_two_factor", "sort_order")
    list_filter = ("status", "is_system", "require_two_factor")
    search_fields = ("name", "display_name")

    @admin.display(description=_("display name"), ordering="display_name")
    def display_label(self, obj):
        return obj.label()

    def get_readonly_fields(self, request, obj=None):
        return ("name", "is_system") if obj is not None and obj.is_system else ("is_system",)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and _manages_roles(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and _manages_roles(request)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_system:
            return False
        return super().has_delete_permission(request, obj) and _manages_roles(request)

    def save_model(self, request, obj, form, change):
        if not request.user.has_perm(self._perm("change" if change else "add"), obj):
            raise PermissionDenied
        permissions = None if obj.is_system else list(form.cleaned_data.get("permission_names") or [])
        role_services.save_role(obj, actor=request.user, permissions=permissions)

    def delete_model(self, request, obj):
        role_services.delete_role(obj, actor=request.user)


@admin.register(Permission)
class PermissionAdmin(PlatformModelAdmin):
    small_table = True  # the platform's permissions (about a hundred): any order
    list_display = ("name", "label", "module", "resource", "action", "status")
    list_filter = ("module", "status")
    search_fields = ("name", "display_name")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # kept in step with the code by seed_roles / migrate

    @admin.display(description=_("display name"), ordering="display_name")
    def label(self, obj):
        return perm_services.permission_label(obj.name, obj.display_name)


ROLE_GRANT_SCOPE_HELP = _("A role granted here applies to every instance. To limit a user to some "
                          "instances, give no role here and use Instance grants instead.")


class UserRoleForm(forms.ModelForm):
    class Meta:
        model = UserRole
        fields = ("user", "role", "expires_at")
        help_texts = {"role": ROLE_GRANT_SCOPE_HELP}


@admin.register(UserRole)
class UserRoleAdmin(PlatformModelAdmin):
    """Grants: need accounts.manage_roles and sudo mode; granted_by is the current user."""

    form = UserRoleForm
    sudo_views = ("changeform_post", "delete_view", "actions")
    list_display = ("user", "role", "expires_at", "granted_by", "created_at")
    list_filter = ("role",)
    search_fields = ("user__username", "role__name")
    list_select_related = ("user", "role", "granted_by")
    raw_id_fields = ("user",)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and _manages_roles(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and _manages_roles(request)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and _manages_roles(request)

    def save_model(self, request, obj, form, change):
        try:
            perm_services.grant_role(obj.user, obj.role, request.user, obj.expires_at)
        except DomainError as exc:
            raise PermissionDenied(exc.message) from exc


@admin.register(UserSession)
class UserSessionAdmin(PlatformModelAdmin):
    """Everyone sees their own sessions ("my sessions") and may end them; holders of
    accounts.view_usersession see all, of accounts.change_usersession may end any."""

    list_display = ("user", "kind", "device_type", "ip_address", "location", "created_at",
                    "last_activity", "expires_at", "is_active", "revoke_reason")
    list_filter = ("kind", "is_active")
    search_fields = ("user__username", "ip_address", "device_id")
    list_select_related = ("user",)
    actions = ["end_sessions"]
    readonly_fields = [f.name for f in UserSession._meta.fields if f.name not in ("access_token_hash", "refresh_token_hash")]
    exclude = ("access_token_hash", "refresh_token_hash")

    def _sees_all(self, request):
        return has_global_perm(request.user, "accounts.view_usersession")

    def get_queryset(self, request):
        qs = self.get_base_queryset(request)
        return qs if self._sees_all(request) else qs.filter(user=request.user)

    def has_module_permission(self, request):
        return request.user.is_active

    def has_view_permission(self, request, obj=None):
        if not request.user.is_active:
            return False
        return obj is None or obj.user_id == request.user.pk or self._sees_all(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _may_end(self, request, session):
        return session.user_id == request.user.pk or has_global_perm(request.user, "accounts.change_usersession")

    @admin.action(description=_("End selected sessions"), permissions=["view"])
    def end_sessions(self, request, queryset):
        count = 0
        for row in queryset:
            if self._may_end(request, row):
                count += session_services.revoke(row, reason="admin" if row.user_id != request.user.pk else "user")
        self.message_user(request, ngettext("%(n)d session ended.", "%(n)d sessions ended.", count) % {"n": count},
                          messages.SUCCESS)


@admin.register(LoginLog)
class LoginLogAdmin(PlatformModelAdmin):
    """Login history: read-only, for auditors (accounts.view_loginlog)."""

    list_display = ("created_at", "username", "user", "success", "result", "channel", "ip_address", "location")
    list_filter = ("success", "result", "channel")
    search_fields = ("username", "ip_address")
    list_select_related = ("user",)
    date_hierarchy = None

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in LoginLog._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class InstanceGrantForm(forms.ModelForm):
    """Grant a role's per-instance permissions, or chosen permissions, on one instance."""

    grant_user = forms.ModelChoiceField(label=_("User"), queryset=User.objects.order_by("username"))
    grant_instance = forms.ModelChoiceField(label=_("Instance"), queryset=None)
    grant_role = forms.ModelChoiceField(
        label=_("Role"), queryset=Role.objects.usable(), required=False,
        help_text=_("Grants every permission of the role that applies per instance, on this "
                    "instance only. A role given on the user's page (role grants) already covers "
                    "every instance."),
    )
    grant_permissions = forms.MultipleChoiceField(
        label=_("Permissions"), required=False, choices=(),
        widget=FilteredSelectMultiple(_("permissions"), is_stacked=False),
    )

    class Meta:
        model = InstanceGrant
        fields = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        model = perm_services.instance_model()
        self.fields["grant_instance"].queryset = model.objects.order_by("name") if model else User.objects.none()
        names = [n for n in Permission.objects.filter(status=1).values_list("name", flat=True)
                 if perm_services.grantable_on_instance(n)]
        self.fields["grant_permissions"].choices = [(n, f"{perm_services.permission_label(n)} ({n})")
                                                    for n in names]

    def clean(self):
        data = super().clean()
        if not data.get("grant_role") and not data.get("grant_permissions"):
            raise ValidationError(_("Choose a role or at least one permission."))
        return data


class _GrantChangeList(ChangeList):
    """The grants' page with their instances' names, read in one query (not one per row)."""

    def get_results(self, request):
        super().get_results(request)
        rows = list(self.result_list)
        model = perm_services.instance_model()
        ids = {int(r.object_pk) for r in rows if str(r.object_pk).isdigit()}
        names = dict(model.all_objects.filter(pk__in=ids).values_list("pk", "name")) if model and ids else {}
        for row in rows:
            row.instance_name = names.get(int(row.object_pk)) if str(row.object_pk).isdigit() else None
        self.result_list = rows


@admin.register(InstanceGrant)
class InstanceGrantAdmin(PlatformModelAdmin):
    """Per-instance object grants (guardian's table). Viewing: accounts.view_instancegrant;
    granting and revoking: accounts.manage_roles and sudo mode. Only super admins may grant
    themselves."""
    small_table = True  # users x instances granted (thousands): ordered by user name

    form = InstanceGrantForm
    sudo_views = ("changeform_post", "delete_view", "actions")
    list_display = ("user_label", "instance_label", "permission_label")
    search_fields = ("user__username", "permission__codename")
    list_select_related = ("user", "permission__content_type")

    def get_base_queryset(self, request):
        model = perm_services.instance_model()
        return InstanceGrant.objects.filter(content_type=ContentType.objects.get_for_model(model)).order_by(
            "user__username", "object_pk"
        )

    def get_queryset(self, request):
        return self.get_base_queryset(request) if self.has_view_permission(request) else InstanceGrant.objects.none()

    @admin.display(description=_("user"), ordering="user__username")
    def user_label(self, obj):
        return obj.user  # guardian's own "user" label is not translated

    def get_changelist(self, request, **kwargs):
        return _GrantChangeList

    @admin.display(description=_("instance"))
    def instance_label(self, obj):
        if hasattr(obj, "instance_name"):  # the changelist's page: names read at once
            name = obj.instance_name
        else:
            model = perm_services.instance_model()
            instance = model.all_objects.filter(pk=obj.object_pk).only("name").first() if model else None
            name = instance.name if instance else None
        return f"{name} (#{obj.object_pk})" if name else f"#{obj.object_pk}"

    @admin.display(description=_("permission"))
    def permission_label(self, obj):
        return obj.permission_name

    def has_view_permission(self, request, obj=None):
        return has_global_perm(request.user, "accounts.view_instancegrant") or _manages_roles(request)

    def has_add_permission(self, request):
        return _manages_roles(request)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return _manages_roles(request)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        target, instance = data["grant_user"], data["grant_instance"]
        if target.pk == request.user.pk and not request.user.is_superuser:
            raise PermissionDenied
        names = perm_services.grant_instance(
            target, instance, list(data.get("grant_permissions") or []) or data["grant_role"],
            granted_by=request.user,
        )
        row = self.get_base_queryset(request).filter(user=target, object_pk=str(instance.pk)).first()
        if row is not None:
            obj.__dict__.update({k: v for k, v in row.__dict__.items() if not k.startswith("_")})
        self.message_user(request, _("Granted: %(names)s") % {"names": ", ".join(names)}, messages.SUCCESS)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        perm_services.forget_user(obj.user_id)

    def delete_queryset(self, request, queryset):
        users = set(queryset.values_list("user_id", flat=True))
        super().delete_queryset(request, queryset)
        for user_id in users:
            perm_services.forget_user(user_id)


# Django's groups are not used: roles (with expiring grants) replace them.
if admin.site.is_registered(Group):
    admin.site.unregister(Group)
