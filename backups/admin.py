"""Admin for servers, applications (sources inline) and storages.

Secrets are never rendered: credentials are write-only form fields (blank keeps the stored
value). The "Test connection" and "Test storage" actions call the same services as the
APIs, which record the audit event; the result is shown as an admin message.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse

from backupplatform.errors import DomainError
from backups import services
from backups.models import (
    Application,
    Backup,
    Operation,
    Restore,
    Server,
    Source,
    Storage,
    Verification,
)
from backups.services import backups as backup_services
from backups.services import restores as restore_services
from backups.services import verifications as verification_services
from backups.storage import validate_config
from tenants.scoping import AuditedAdminMixin, TenantScopedAdminMixin, admin_tenant_ids

KEEP = "Leave blank to keep the stored value."


class ServerForm(forms.ModelForm):
    username = forms.CharField(required=False, max_length=200)
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False), help_text=KEEP)
    ssh_key = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}),
                              help_text=f"Private key (OpenSSH or PEM). {KEEP}")
    clear_secrets = forms.BooleanField(required=False, help_text="Remove the stored password and SSH key.")

    class Meta:
        model = Server
        fields = ["tenant", "name", "description", "type", "environment", "host", "port", "tags"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["username"].initial = (self.instance.credentials or {}).get("username", "")
        self.fields["ssh_key"].initial = ""

    def save(self, commit=True):
        server = super().save(commit=False)
        creds = dict(server.credentials or {})
        if self.cleaned_data.get("clear_secrets"):
            creds.pop("password", None)
            creds.pop("ssh_key", None)
        if self.cleaned_data.get("username") is not None:
            if self.cleaned_data["username"]:
                creds["username"] = self.cleaned_data["username"]
            else:
                creds.pop("username", None)
        for key in ("password", "ssh_key"):
            if self.cleaned_data.get(key):
                creds[key] = self.cleaned_data[key]
        server.credentials = creds
        if commit:
            server.save()
        return server


class TestActionMixin:
    def _tenant_rows(self, request, queryset):
        ids = admin_tenant_ids(request)
        return queryset if ids is None else queryset.filter(tenant_id__in=ids)


@admin.register(Server)
class ServerAdmin(AuditedAdminMixin, TenantScopedAdminMixin, TestActionMixin, admin.ModelAdmin):
    form = ServerForm
    list_display = ["name", "tenant", "type", "host", "port", "environment", "health_status", "last_heartbeat"]
    list_filter = ["type", "health_status", "environment", "tenant"]
    search_fields = ["name", "host"]
    readonly_fields = ["health_status", "health_message", "last_heartbeat", "created_at", "updated_at"]
    actions = ["test_connection"]
    audit_resource_type = "server"

    @admin.action(description="Test connection")
    def test_connection(self, request, queryset):
        for server in self._tenant_rows(request, queryset):
            result = services.server_test_connection(server=server)
            level = messages.SUCCESS if result.success else messages.WARNING
            self.message_user(request, f"{server.name}: {result.message} ({result.latency_ms} ms)", level)


class SourceInline(admin.TabularInline):
    model = Source
    extra = 0
    fields = ["name", "type", "server", "database_name", "path", "include", "exclude", "component", "position"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "server":
            ids = admin_tenant_ids(request)
            if ids is not None:
                kwargs["queryset"] = Server.objects.filter(tenant_id__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Application)
class ApplicationAdmin(AuditedAdminMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "tenant", "namespace", "is_default", "updated_at"]
    list_filter = ["is_default", "tenant"]
    search_fields = ["name", "namespace"]
    inlines = [SourceInline]
    audit_resource_type = "application"

    def save_formset(self, request, form, formset, change):
        # Sources belong to the application's tenant, whatever the form said.
        instances = formset.save(commit=False)
        for source in instances:
            source.tenant_id = form.instance.tenant_id
            source.save()
        for obj in formset.deleted_objects:
            obj.delete()
        formset.save_m2m()


class StorageForm(forms.ModelForm):
    new_credentials = forms.JSONField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text=f'Credentials as JSON, e.g. {{"access_key_id": "...", "secret_access_key": "..."}}. '
                  f"Replaces the stored ones. {KEEP}")

    class Meta:
        model = Storage
        fields = ["tenant", "name", "description", "type", "status", "configuration", "labels", "is_default",
                  "price_per_gb_month", "quota_bytes"]

    def clean(self):
        data = super().clean()
        creds = data.get("new_credentials")
        if creds not in (None, "") and not isinstance(creds, dict):
            raise forms.ValidationError({"new_credentials": "Enter a JSON object."})
        effective = creds if creds else (self.instance.credentials or {})
        if data.get("type"):
            errors = validate_config(data["type"], data.get("configuration") or {}, effective)
            if errors:
                raise forms.ValidationError({
                    (k if k in self.fields else ("new_credentials" if k == "credentials" else "configuration")):
                    v for k, v in errors.items()})
        return data

    def save(self, commit=True):
        storage = super().save(commit=False)
        if self.cleaned_data.get("new_credentials"):
            storage.credentials = self.cleaned_data["new_credentials"]
        if commit:
            storage.save()
        return storage


@admin.register(Storage)
class StorageAdmin(AuditedAdminMixin, TenantScopedAdminMixin, TestActionMixin, admin.ModelAdmin):
    form = StorageForm
    list_display = ["name", "tenant", "type", "status", "price_per_gb_month", "is_default", "last_test_ok",
                    "last_tested_at"]
    list_filter = ["type", "status", "tenant"]
    search_fields = ["name"]
    readonly_fields = ["stored_credentials", "last_tested_at", "last_test_ok", "last_test_message", "created_at",
                       "updated_at"]
    actions = ["test_storage"]
    audit_resource_type = "storage"

    def get_readonly_fields(self, request, obj=None):
        # The price is the platform operator's to set (usage costs), not the tenant's.
        fields = list(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else [*fields, "price_per_gb_month"]

    @admin.display(description="Stored credentials")
    def stored_credentials(self, obj: Storage) -> str:
        return json.dumps(services.storage_public_credentials(obj.credentials))

    @admin.action(description="Test storage")
    def test_storage(self, request, queryset):
        for storage in self._tenant_rows(request, queryset):
            result = services.storage_probe(storage=storage)
            level = messages.SUCCESS if result.ok else messages.WARNING
            self.message_user(request, f"{storage.name}: {result.message} ({result.latency_ms} ms)", level)


# --- backups, operations, restores, verifications ---------------------------------------------


class RestoreToForm(forms.Form):
    target_server = forms.ModelChoiceField(queryset=Server.objects.none(), required=False,
                                           help_text="Default: the backup's own server")
    target_database = forms.CharField(max_length=63, required=False)
    target_path = forms.CharField(max_length=1024, required=False, help_text="For file sources of an application")
    strategy = forms.ChoiceField(choices=[("create_new", "Create new"), ("overwrite", "Overwrite")])
    masking_rules = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)

    def clean_masking_rules(self):
        rules = {}
        for line in self.cleaned_data["masking_rules"].splitlines():
            if not line.strip():
                continue
            column, sep, rule = line.partition("=")
            if not sep:
                raise forms.ValidationError(f"Use column=rule, not {line!r}")
            rules[column.strip()] = rule.strip()
        return rules


@admin.register(Backup)
class BackupAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ["id", "name", "tenant", "status", "trigger", "db_type", "storage", "stored_bytes", "verified",
                    "created_at", "completed_at"]
    list_filter = ["status", "trigger", "db_type", "verified", "compression", "tenant", "storage"]
    search_fields = ["name", "database_name", "checksum"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant", "storage"]
    readonly_fields = [f.name for f in Backup._meta.fields]
    actions = ["verify_decrypt", "verify_checksum", "download"]

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        return [path("<int:pk>/restore/", self.admin_site.admin_view(self.restore_view), name="backups_backup_restore"),
                *super().get_urls()]

    def _verify(self, request, queryset, test_type):
        started = 0
        for backup in queryset:
            try:
                verification_services.verification_start(tenant=backup.tenant, backup=backup, actor=request.user,
                                                         test_type=test_type)
                started += 1
            except DomainError as exc:
                self.message_user(request, f"Backup {backup.pk}: {exc.message}", messages.ERROR)
        if started:
            self.message_user(request, f"Verification started for {started} backup(s).")

    @admin.action(description="Verify (authenticated decrypt)")
    def verify_decrypt(self, request, queryset):
        self._verify(request, queryset, "decrypt")

    @admin.action(description="Verify (checksum)")
    def verify_checksum(self, request, queryset):
        self._verify(request, queryset, "checksum")

    @admin.action(description="Download")
    def download(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose one backup to download.", messages.WARNING)
            return None
        try:
            url, _ = backup_services.backup_download_link(backup=queryset.get(), request=request)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return None
        return HttpResponseRedirect(url)

    def restore_view(self, request, pk: int):
        backup = get_object_or_404(self.get_queryset(request), pk=pk)
        form = RestoreToForm(request.POST or None)
        form.fields["target_server"].queryset = Server.objects.filter(tenant=backup.tenant)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                restore = restore_services.restore_start(
                    tenant=backup.tenant, backup=backup, actor=request.user, target_server=data["target_server"],
                    target_database=data["target_database"], target_path=data["target_path"],
                    strategy=data["strategy"], masking_rules=data["masking_rules"])
            except DomainError as exc:
                form.add_error(None, f"{exc.message} {exc.details or ''}")
            else:
                self.message_user(request, f"Restore {restore.pk} queued.")
                return HttpResponseRedirect(reverse("admin:backups_restore_change", args=[restore.pk]))
        return render(request, "admin/backups/restore_to.html",
                      {**self.admin_site.each_context(request), "backup": backup, "form": form,
                       "title": f"Restore backup {backup.pk}"})

    @admin.display(description="Restore to…")
    def restore_link(self, obj):
        from django.utils.html import format_html

        return format_html('<a href="{}">Restore to…</a>', reverse("admin:backups_backup_restore", args=[obj.pk]))

    def get_list_display(self, request):
        return [*self.list_display, "restore_link"]


class ReadOnlyTenantAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Operation)
class OperationAdmin(ReadOnlyTenantAdmin):
    list_display = ["public_id", "kind", "tenant", "status", "progress", "step", "bytes_done", "heartbeat_at",
                    "created_at"]
    list_filter = ["kind", "status", "tenant"]
    readonly_fields = [f.name for f in Operation._meta.fields]
    actions = ["cancel"]

    @admin.action(description="Cancel (cleans partial data)")
    def cancel(self, request, queryset):
        from backups.services.operations import operation_cancel

        for op in queryset:
            try:
                operation_cancel(tenant=op.tenant, public_id=op.public_id, reason="admin")
            except DomainError as exc:
                self.message_user(request, f"{op.public_id}: {exc.message}", messages.WARNING)


@admin.register(Restore)
class RestoreAdmin(ReadOnlyTenantAdmin):
    list_display = ["id", "backup", "tenant", "status", "target_server", "target_database", "strategy", "created_at"]
    list_filter = ["status", "strategy", "tenant"]
    readonly_fields = [f.name for f in Restore._meta.fields]


@admin.register(Verification)
class VerificationAdmin(ReadOnlyTenantAdmin):
    list_display = ["id", "backup", "tenant", "test_type", "status", "passed", "created_at"]
    list_filter = ["test_type", "status", "passed", "tenant"]
    readonly_fields = [f.name for f in Verification._meta.fields]
