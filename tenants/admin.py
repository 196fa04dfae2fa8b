"""Admin for tenants (memberships inline), users and API keys."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.services import emit
from backupplatform import paths
from backupplatform.admin_forms import LinesField
from backupplatform.errors import DomainError
from tenants.scoping import (
    AuditedAdminMixin,
    OutOfScopeIs404AdminMixin,
    TenantScopedAdminMixin,
    admin_tenant_ids,
)

from . import services
from .models import ApiKey, Membership, Tenant

User = get_user_model()


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "is_active", "created_at"]
    readonly_fields = ["created_at"]


class TenantForm(forms.ModelForm):
    path_roots = LinesField(
        label="Folders",
        help_text="Folders of the platform's machines this tenant may use, one "
        "per line (empty: <root>/<slug> under each platform root).",
    )

    class Meta:
        model = Tenant
        fields = ["slug", "name", "plan", "max_concurrent_backups", "is_active", "require_two_factor", "path_roots"]

    def clean_path_roots(self):
        if self.instance.pk and "path_roots" not in self.data:
            return self.instance.path_roots  # not submitted: unchanged
        roots = self.cleaned_data.get("path_roots") or []
        slug = self.cleaned_data.get("slug") or self.instance.slug
        others = dict(Tenant.objects.exclude(pk=self.instance.pk).values_list("slug", "path_roots"))
        if errors := paths.path_roots_errors(slug, roots, others):
            raise forms.ValidationError(errors)
        return roots


@admin.register(Tenant)
class TenantAdmin(AuditedAdminMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    form = TenantForm
    list_display = ["slug", "name", "plan", "is_active", "created_at"]
    list_filter = ["plan", "is_active"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]
    tenant_field = "pk"
    # A tenant's own admins may rename it; its plan, limits, folders and state are the
    # platform operator's (a tenant that set its own folders would escape its confinement).
    OPERATOR_FIELDS = ["slug", "plan", "max_concurrent_backups", "is_active", "path_roots"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else [*fields, *self.OPERATOR_FIELDS]

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        # The sign-in policy changes through its service (who may, and its own audit event).
        wanted = obj.require_two_factor
        policy_changed = change and "require_two_factor" in form.changed_data
        if policy_changed:
            obj.require_two_factor = form.initial.get("require_two_factor", False)
        super().save_model(request, obj, form, change)
        if policy_changed:
            try:
                services.tenant_two_factor_set(tenant=obj, required=wanted, actor=request.user)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)

        for obj in formset.new_objects + [o for o, _ in formset.changed_objects]:
            emit(
                action="membership_update",
                tenant=obj.tenant,
                resource_type="user",
                resource_id=obj.user_id,
                details={"role": obj.role, "via": "admin"},
            )
        for obj in formset.deleted_objects:
            emit(
                action="membership_delete",
                tenant=obj.tenant,
                resource_type="user",
                resource_id=obj.user_id,
                details={"via": "admin"},
            )


class MembershipOfUserInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["tenant", "role", "is_active"]


class UserAdmin(AuditedAdminMixin, OutOfScopeIs404AdminMixin, BaseUserAdmin):
    """Users; staff who are not superusers see only members of the tenants they administer."""

    inlines = [MembershipOfUserInline]
    audit_resource_type = "user"
    actions = ["reset_two_factor"]

    @admin.action(description="Reset two-factor authentication (enrol again at next sign-in)")
    def reset_two_factor(self, request, queryset):
        for user in queryset:
            try:
                services.two_factor_reset(user=user, actor=request.user)
            except DomainError as exc:
                self.message_user(request, f"{user}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{user}: second factor reset", messages.SUCCESS)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        ids = admin_tenant_ids(request)
        if ids is None:
            return queryset
        return queryset.filter(memberships__tenant_id__in=ids).distinct()

    # Tenant admins (staff, not superusers) may view and edit the members of their tenants;
    # accounts are created through the users API, commands, or by a superuser.
    def _scoped_staff(self, request) -> bool:
        return not request.user.is_superuser and bool(admin_tenant_ids(request))

    def has_module_permission(self, request) -> bool:
        return super().has_module_permission(request) or self._scoped_staff(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return super().has_view_permission(request, obj) or self._scoped_staff(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) or self._scoped_staff(request)

    def get_readonly_fields(self, request, obj=None):
        if self._scoped_staff(request):
            return ["is_staff", "is_superuser", "groups", "user_permissions", "last_login", "date_joined"]
        return super().get_readonly_fields(request, obj)

    def _tenant_of(self, obj):
        membership = obj.memberships.select_related("tenant").first() if obj.pk else None
        return membership.tenant if membership else None


admin.site.unregister(User)
admin.site.register(User, UserAdmin)
# An authenticator's seed is shown once, to its owner, while enrolling: never in the admin
# (the reset action on users removes a lost one).
if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["tenant", "name", "role"]


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "tenant", "role", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant", "name", "role"]
        return ["tenant", "name", "role", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "tenant", "role"] if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw = services.api_key_create(tenant=obj.tenant, name=obj.name, role=obj.role, created_by=request.user)
        obj.pk = key.pk
        obj.__dict__.update(key.__dict__)
        messages.warning(request, f"API key created. Copy it now, it will not be shown again: {raw}")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # keys are revoked, not deleted, so their use stays in the audit log

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        count = 0
        for key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(key=key)
            count += 1
        self.message_user(request, f"{count} key(s) revoked.")
