"""Admin: a tenant's Acronis configuration (secret write-only), a "Check health" action and a
read-only overview page of agents and recent backups. Writes go through ``acronis.services``
(one code path with the API: validation, audit, cache invalidation)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from acronis import selectors, services
from acronis.errors import AcronisError
from acronis.models import AcronisAgentState, AcronisConfig
from backupplatform.errors import DomainError, ValidationFailed
from tenants.scoping import TenantScopedAdminMixin


class AcronisConfigForm(forms.ModelForm):
    base_url = forms.CharField(max_length=500, help_text="Data-center URL, e.g. https://eu2-cloud.acronis.com/api/")
    client_secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Write-only. Leave empty to keep the stored secret.",
    )

    class Meta:
        model = AcronisConfig
        fields = ["tenant", "base_url", "client_id", "client_secret", "grant_type", "tenant_scope"]

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and not data.get("client_secret"):
            self.add_error("client_secret", "Required for a new configuration.")
        if not data.get("base_url") or not data.get("client_id"):
            return data  # already reported as missing
        try:
            checked = services.config_check(
                base_url=data["base_url"],
                client_id=data["client_id"],
                client_secret=data.get("client_secret") or None,
                grant_type=data.get("grant_type") or "client_credentials",
                tenant_scope=data.get("tenant_scope") or "",
            )
        except ValidationFailed as exc:
            for field, errors in (exc.details or {}).items():
                self.add_error(field if field in self.fields else None, errors)
            return data
        data["tenant_scope"] = checked["tenant_scope"]
        return data

    def _post_clean(self):
        # Never let the model form copy an empty secret over the stored one.
        secret = self.cleaned_data.get("client_secret")
        if not secret:
            self.cleaned_data.pop("client_secret", None)
        super()._post_clean()


@admin.register(AcronisConfig)
class AcronisConfigAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    form = AcronisConfigForm
    list_display = ["tenant", "base_url", "client_id", "tenant_scope", "last_updated", "overview_link"]
    search_fields = ["tenant__slug", "base_url", "client_id"]
    readonly_fields = ["last_updated"]
    actions = ["check_health"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "last_updated"] if obj is not None else ["last_updated"]

    @admin.display(description="Overview")
    def overview_link(self, obj):
        url = reverse("admin:acronis_acronisconfig_overview", args=[obj.pk])
        return format_html('<a href="{}">Agents and backups</a>', url)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            saved = services.config_save(
                tenant=obj.tenant,
                base_url=data["base_url"],
                client_id=data["client_id"],
                client_secret=data.get("client_secret") or None,
                grant_type=data.get("grant_type") or "client_credentials",
                tenant_scope=data.get("tenant_scope") or "",
                create=not change,
            )
        except DomainError as exc:
            messages.error(request, exc.message)
            return
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.config_delete(tenant=obj.tenant)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    @admin.action(description="Check health")
    def check_health(self, request, queryset):
        for config in queryset.select_related("tenant"):
            ok, data, error = selectors.health_check(tenant=config.tenant)
            if ok:
                self.message_user(
                    request, f"{config.tenant.slug}: connected in {data['response_time_ms']} ms", messages.SUCCESS
                )
            else:
                detail = "; ".join(data.get("errors", []))
                code = f" [{error.code}]" if error else ""
                self.message_user(
                    request, f"{config.tenant.slug}: {data['api_status']}: {detail}{code}", messages.ERROR
                )

    def get_urls(self):
        custom = [
            path(
                "<int:pk>/overview/",
                self.admin_site.admin_view(self.overview_view),
                name="acronis_acronisconfig_overview",
            )
        ]
        return custom + super().get_urls()

    def overview_view(self, request, pk: int):
        config = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_view_permission(request, config):
            raise PermissionDenied
        agents: list = []
        backups: list = []
        error = None
        try:
            agents, _ = selectors.agents_list(tenant=config.tenant)
            stats, _ = selectors.backup_statistics(tenant=config.tenant, days=7, limit=10)
            for workload_id, group in stats["workload_data"].items():
                for backup in group["backups"]:
                    backups.append({**backup, "hostname": group["hostname"], "workload_id": workload_id})
            backups.sort(key=lambda b: b["backup_id"], reverse=True)
        except AcronisError as exc:
            error = f"{exc.message} [{exc.code}]"
        context = {
            **self.admin_site.each_context(request),
            "title": f"Acronis: {config.tenant.slug}",
            "opts": self.model._meta,
            "config": config,
            "agents": agents,
            "backups": backups[:50],
            "summary": stats["summary"] if not error else None,
            "error": error,
        }
        return TemplateResponse(request, "admin/acronis/overview.html", context)


@admin.register(AcronisAgentState)
class AcronisAgentStateAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ["tenant", "hostname", "agent_id", "online", "online_since", "last_seen_at"]
    list_filter = ["online"]
    search_fields = ["hostname", "agent_id"]

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False
