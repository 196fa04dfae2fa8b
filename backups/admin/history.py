"""Admin for backups (restore, verify, download from the list and the page), operations,
restores and verifications: read-only history except for those actions."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils.html import format_html

from backupplatform import humanize
from backupplatform.admin_forms import (
    add_service_errors,
)
from backupplatform.errors import DomainError
from backups.models import (
    Backup,
    Operation,
    Restore,
    Server,
    Verification,
)
from backups.services import backups as backup_services
from backups.services import restores as restore_services
from backups.services import verifications as verification_services
from backups.services.operations import operation_cancel
from tenants.scoping import TenantScopedAdminMixin

# --- backups, operations, restores, verifications ---------------------------------------------


class RestoreToForm(forms.Form):
    target_server = forms.ModelChoiceField(
        queryset=Server.objects.none(), required=False, help_text="Default: the backup's own server"
    )
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
    list_display = ["id", "name_and_source", "tenant", "state", "size", "took", "error_short", "created"]
    ordering = ["-created_at"]
    list_filter = ["status", "trigger", "db_type", "verified", "compression", "tenant", "storage"]
    search_fields = ["name", "database_name", "checksum"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant", "storage", "server", "application"]
    readonly_fields = [f.name for f in Backup._meta.fields]
    actions = ["verify_decrypt", "verify_checksum", "verify_test_restore", "download"]

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Status", ordering="status")
    def state(self, obj: Backup):
        badge = humanize.badge(obj.status, obj.get_status_display(), backup_status=obj.pk)
        return format_html("{} {}", badge, humanize.badge("passed", "✔ verified")) if obj.verified else badge

    @admin.display(description="Backup", ordering="name")
    def name_and_source(self, obj: Backup):
        return format_html('{}<div class="sub">{}</div>', obj.name or f"#{obj.pk}", self.source(obj))

    @admin.display(description="Created", ordering="created_at")
    def created(self, obj: Backup):
        return f"{obj.created_at:%d %b %H:%M}"

    @admin.display(description="Source")
    def source(self, obj: Backup):
        if obj.application_id:
            return f"app {obj.application.name}" if obj.application else "application"
        return f"{obj.server.name if obj.server else obj.db_type} / {obj.database_name}"

    @admin.display(description="Size", ordering="stored_bytes")
    def size(self, obj: Backup):
        return humanize.size(obj.stored_bytes) if obj.stored_bytes else "-"

    @admin.display(description="Took")
    def took(self, obj: Backup):
        if obj.started_at and obj.completed_at:
            return humanize.clock((obj.completed_at - obj.started_at).total_seconds())
        return "-"

    @admin.display(description="Verified", ordering="verified")
    def verified_mark(self, obj: Backup):
        return humanize.badge("passed", "✔ verified") if obj.verified else ""

    @admin.display(description="Error")
    def error_short(self, obj: Backup):
        if not obj.error_message:
            return ""
        return format_html('<span class="error-text">{}</span>', obj.error_message[:240])

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {
            "verify_types": [
                ("checksum", "Verify checksum"),
                ("decrypt", "Verify by decrypting"),
                ("test_restore", "Test restore into a scratch database"),
            ]
        }
        backup = self.get_object(request, object_id)
        if backup is not None and not backup.server_id:
            extra["verify_types"] = extra["verify_types"][:2]
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def get_urls(self):
        return [
            path("<int:pk>/restore/", self.admin_site.admin_view(self.restore_view), name="backups_backup_restore"),
            *super().get_urls(),
        ]

    def _verify(self, request, queryset, test_type):
        started = 0
        for backup in queryset:
            try:
                verification_services.verification_start(
                    tenant=backup.tenant, backup=backup, actor=request.user, test_type=test_type
                )
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

    @admin.action(description="Verify (test restore into a scratch database)")
    def verify_test_restore(self, request, queryset):
        self._verify(request, queryset, "test_restore")

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
                    tenant=backup.tenant,
                    backup=backup,
                    actor=request.user,
                    target_server=data["target_server"],
                    target_database=data["target_database"],
                    target_path=data["target_path"],
                    strategy=data["strategy"],
                    masking_rules=data["masking_rules"],
                )
            except DomainError as exc:
                # An incompatible target's reason is the message itself (no field details to add);
                # other errors go next to the field they name, in words.
                if exc.code == "RESTORE_INCOMPATIBLE":
                    form.add_error(None, exc.message)
                else:
                    add_service_errors(form, exc, {"target_server_id": "target_server", "restore_strategy": "strategy"})
            else:
                self.message_user(request, f"Restore {restore.pk} queued.")
                for warning in restore_services.restore_warnings(restore):
                    self.message_user(request, f"Warning: {warning}", messages.WARNING)
                return HttpResponseRedirect(reverse("admin:backups_restore_change", args=[restore.pk]))
        return render(
            request,
            "admin/backups/restore_to.html",
            {
                **self.admin_site.each_context(request),
                "backup": backup,
                "form": form,
                "title": f"Restore backup {backup.pk}",
            },
        )

    @admin.display(description="")
    def restore_link(self, obj):
        if obj.status != "completed":
            return ""
        return format_html('<a href="{}">Restore…</a>', reverse("admin:console_restore", args=[obj.pk]))

    def get_list_display(self, request):
        return [*self.list_display, "restore_link"]


class ReadOnlyTenantAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Operation)
class OperationAdmin(ReadOnlyTenantAdmin):
    list_display = ["public_id", "kind", "tenant", "state", "progress_bar", "done", "step", "error_short", "created_at"]
    ordering = ["-created_at"]
    list_filter = ["kind", "status", "tenant"]
    readonly_fields = [f.name for f in Operation._meta.fields]
    actions = ["cancel"]

    @admin.display(description="Status", ordering="status")
    def state(self, obj: Operation):
        word = {"running": "running", "pending": "queued"}.get(obj.status, obj.status)
        return humanize.badge(word)

    @admin.display(description="Progress", ordering="progress")
    def progress_bar(self, obj: Operation):
        return format_html(
            '<div class="meter" style="min-width:80px" title="{} %"><span style="width:{}%"></span></div>{} %',
            obj.progress,
            obj.progress,
            obj.progress,
        )

    @admin.display(description="Bytes")
    def done(self, obj: Operation):
        text = humanize.size(obj.bytes_done)
        if obj.bytes_total:
            text += f" of {humanize.size(obj.bytes_total)}"
        if obj.throughput_bps and obj.status == "running":
            text += f" · {humanize.rate(obj.throughput_bps)}"
        return text

    @admin.display(description="Error")
    def error_short(self, obj: Operation):
        return format_html('<span class="error-text">{}</span>', obj.error_message[:240]) if obj.error_message else ""

    @admin.action(description="Cancel (cleans partial data)")
    def cancel(self, request, queryset):

        for op in queryset:
            try:
                operation_cancel(tenant=op.tenant, public_id=op.public_id, reason="admin")
            except DomainError as exc:
                self.message_user(request, f"{op.public_id}: {exc.message}", messages.WARNING)


@admin.register(Restore)
class RestoreAdmin(ReadOnlyTenantAdmin):
    list_display = ["id", "backup", "tenant", "state", "target", "strategy", "error_short", "created_at"]
    ordering = ["-created_at"]

    @admin.display(description="Status", ordering="status")
    def state(self, obj: Restore):
        return humanize.badge(obj.status)

    @admin.display(description="Target")
    def target(self, obj: Restore):
        if obj.target_database:
            return f"{obj.target_server.name if obj.target_server else ''} / {obj.target_database}"
        return obj.target_path or "original place"

    @admin.display(description="Error")
    def error_short(self, obj: Restore):
        return format_html('<span class="error-text">{}</span>', obj.error_message[:240]) if obj.error_message else ""

    list_filter = ["status", "strategy", "tenant"]
    readonly_fields = [f.name for f in Restore._meta.fields]


@admin.register(Verification)
class VerificationAdmin(ReadOnlyTenantAdmin):
    list_display = ["id", "backup", "tenant", "test_type", "state", "result", "created_at"]
    ordering = ["-created_at"]

    @admin.display(description="Status", ordering="status")
    def state(self, obj: Verification):
        return humanize.badge(obj.status)

    @admin.display(description="Result", ordering="passed")
    def result(self, obj: Verification):
        if obj.passed is None:
            return "-"
        return humanize.badge("passed" if obj.passed else "failed", "passed" if obj.passed else "did not pass")

    list_filter = ["test_type", "status", "passed", "tenant"]
    readonly_fields = [f.name for f in Verification._meta.fields]
