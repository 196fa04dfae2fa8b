"""The audit log in the admin: read-only, filterable, never editable or deletable."""

from __future__ import annotations

from django.contrib import admin

from tenants.scoping import TenantScopedAdminMixin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "tenant", "actor_name", "action", "resource_type", "resource_id",
                    "ip_address", "source"]
    list_filter = ["action", "resource_type", "source", "tenant"]
    search_fields = ["action", "actor_name", "resource_id"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    list_select_related = ["tenant"]

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
