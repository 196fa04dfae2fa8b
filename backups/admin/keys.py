"""Admin for backup keys: the tenant action that exports its key ring (password typed again)
and a read-only list of key rings showing which keys were never exported."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.http import HttpResponse
from django.shortcuts import render

from backupplatform.errors import DomainError
from backups.key_selectors import tenant_key_status
from backups.keys import MasterKeyError, tenant_key_export_reauthenticated
from backups.models import TenantKey
from tenants.admin import TenantAdmin
from tenants.models import Tenant
from tenants.scoping import TenantScopedAdminMixin


class KeyExportForm(forms.Form):
    password = forms.CharField(
        widget=forms.PasswordInput,
        strip=False,
        label="Your password",
        help_text="Type your own password again to export the key.",
    )


@admin.action(description="Export backup key ring (asks for your password)")
def export_backup_keys(modeladmin, request, queryset):
    """A tenant's admins (and platform operators) download its key ring file."""
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one workspace to export its backup keys.", messages.ERROR)
        return None
    tenant = queryset.get()
    form = KeyExportForm(request.POST if request.POST.get("export_keys_confirmed") else None)
    if form.is_valid():
        try:
            filename, content = tenant_key_export_reauthenticated(
                tenant=tenant, user=request.user, password=form.cleaned_data["password"], via="admin"
            )
        except DomainError as exc:
            form.add_error("password", exc.message)
        except MasterKeyError as exc:
            form.add_error(None, str(exc))
        else:
            response = HttpResponse(content, content_type="application/json")
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            response["Cache-Control"] = "no-store"
            return response
    return render(
        request,
        "admin/backups/export_keys.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": f"Export backup keys of {tenant.slug}",
            "tenant": tenant,
            "form": form,
            "queryset": queryset,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "status": tenant_key_status(tenant=tenant),
        },
    )


@admin.register(TenantKey)
class TenantKeyAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Key rings, read-only: which key is current, which master key wraps it, when it was last
    exported ("never" is the one to fix). The wrapped key itself is never shown."""

    list_display = [
        "key_id",
        "tenant",
        "is_current",
        "fingerprint",
        "created_at",
        "exported",
        "master_fingerprint",
        "abandoned_at",
    ]
    list_filter = ["is_current"]
    search_fields = ["key_id", "tenant__slug", "fingerprint"]
    fields = [
        "tenant",
        "key_id",
        "is_current",
        "fingerprint",
        "master_fingerprint",
        "created_at",
        "retired_at",
        "imported_at",
        "last_exported_at",
        "abandoned_at",
    ]
    readonly_fields = fields

    @admin.display(description="last exported", ordering="last_exported_at")
    def exported(self, obj: TenantKey) -> str:
        return obj.last_exported_at.strftime("%Y-%m-%d %H:%M") if obj.last_exported_at else "never"

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# The workspace's admin offers the export (tenants never import backups: the action joins
# the tenants' admin from here, the app above it).
class TenantWithKeyExportAdmin(TenantAdmin):
    actions = [*(TenantAdmin.actions or []), export_backup_keys]


admin.site.unregister(Tenant)
admin.site.register(Tenant, TenantWithKeyExportAdmin)
