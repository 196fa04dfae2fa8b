"""Admin for backup jobs (schedule preview, enable/disable, run now, cleanup dry run),
retention policies and cleanup plans. Writes go through ``schedules.services`` so beat's
``PeriodicTask`` and the audit log follow, exactly as from the APIs."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from backupplatform import humanize
from backupplatform.admin_forms import ServiceAdminMixin, ServiceModelForm
from backupplatform.errors import DomainError
from backups.models import Backup
from tenants.scoping import TenantScopedAdminMixin

from . import selectors, services
from .models import BackupJob, CleanupPlan, RetentionPolicy

EDITABLE = [
    "tenant", "name", "description", "enabled", "server", "database_name", "application", "source_path", "storage",
    "backup_type", "schedule_type", "cron_expression", "schedule_time", "timezone", "days_of_week", "day_of_month",
    "retention_policy", "retention_days", "retention_count", "retention", "auto_purge", "priority", "options",
    "notifications",
]


class BackupJobForm(forms.ModelForm):
    class Meta:
        model = BackupJob
        fields = EDITABLE

    def clean(self):
        cleaned = super().clean()
        job = self.instance
        for name in EDITABLE:
            if name in cleaned:
                setattr(job, name, cleaned[name])
        if job.tenant_id is None:
            return cleaned
        try:
            services.job_check(job=job)
        except DomainError as exc:
            for field, msgs in (exc.details or {"__all__": [exc.message]}).items():
                field = field.removesuffix("_id")
                self.add_error(field if field in self.fields else None, msgs)
        return cleaned


@admin.register(BackupJob)
class BackupJobAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    form = BackupJobForm
    list_display = ("name", "tenant", "target", "enabled", "schedule", "last_result", "next_run")
    ordering = ("name",)
    list_filter = ("enabled", "schedule_type", "tenant")
    search_fields = ("name", "public_id")
    readonly_fields = ("public_id", "schedule_preview", "last_run_at", "next_run_at")
    actions = ["enable_jobs", "disable_jobs", "run_now", "cleanup_dry_run"]

    @admin.display(description="next run (UTC)")
    def next_run(self, job):
        run = selectors.job_next_run(job)
        return f"{run:%a %d %b %H:%M}" if run else "-"

    @admin.display(description="What")
    def target(self, job):
        if job.application_id:
            return f"app {job.application.name}"
        return f"{job.server.name if job.server else '?'} / {job.database_name}" if job.server_id else job.source_path

    @admin.display(description="Schedule", ordering="cron_expression")
    def schedule(self, job):
        return f"{job.cron_expression} ({job.timezone})" if job.cron_expression else job.schedule_type

    @admin.display(description="Last result")
    def last_result(self, job):
        last = Backup.objects.filter(job=job).order_by("-created_at").first()
        if last is None:
            return humanize.badge("never", "never run")
        return format_html("{} {} {}", humanize.badge(last.status), f"{last.created_at:%d %b %H:%M}",
                           format_html('<div class="error-text">{}</div>', last.error_message[:200])
                           if last.error_message else "")

    @admin.display(description="next 5 runs")
    def schedule_preview(self, job):
        if not job.pk:
            return "-"
        runs = selectors.job_next_runs(job, count=5)
        if not runs:
            return "disabled"
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(job.timezone)
        return format_html_join("", "<div>{} UTC &mdash; {} {}</div>",
                                ((r.strftime("%Y-%m-%d %H:%M"), r.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
                                  job.timezone) for r in runs))

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in EDITABLE if name != "tenant" and name in form.cleaned_data}
        if change:
            changed = {k: v for k, v in fields.items() if k in form.changed_data}
            saved = services.job_update(job=obj, **changed)
        else:
            saved = services.job_create(tenant=form.cleaned_data["tenant"], actor=request.user, **fields)
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.job_delete(job=obj)

    def delete_queryset(self, request, queryset):
        for job in queryset:
            services.job_delete(job=job)

    @admin.action(description="Enable selected jobs")
    def enable_jobs(self, request, queryset):
        for job in queryset:
            services.job_toggle(job=job, enabled=True)
        self.message_user(request, f"{queryset.count()} job(s) enabled")

    @admin.action(description="Disable selected jobs")
    def disable_jobs(self, request, queryset):
        for job in queryset:
            services.job_toggle(job=job, enabled=False)
        self.message_user(request, f"{queryset.count()} job(s) disabled")

    @admin.action(description="Run now")
    def run_now(self, request, queryset):
        for job in queryset:
            try:
                op = services.job_run(job=job, actor=request.user)
                self.message_user(request, f"{job.name}: backup {op.backup_id} started (operation {op.public_id})")
            except DomainError as exc:
                self.message_user(request, f"{job.name}: {exc.message}", level=messages.ERROR)

    @admin.action(description="Cleanup dry run (show what retention would delete)")
    def cleanup_dry_run(self, request, queryset):
        for job in queryset:
            plan = services.cleanup_analyse(tenant=job.tenant, actor=request.user, job=job, reason="admin dry run")
            doomed = Backup.objects.filter(pk__in=plan.backup_ids).order_by("created_at")
            listing = ", ".join(f"#{b.pk} {b.name or ''} ({b.created_at:%Y-%m-%d %H:%M}, {b.status})"
                                for b in doomed[:50])
            more = f" and {len(plan.backup_ids) - 50} more" if len(plan.backup_ids) > 50 else ""
            a = plan.analysis
            self.message_user(request, (
                f"{job.name}: {a['eligible_for_removal']} of {a['total_backups']} backup(s) would go "
                f"({a['space_to_free']}), {a['backups_to_keep']} kept, {a['protected_backups']} protected; "
                f"plan {plan.public_id} (valid until {timezone.localtime(plan.expires_at):%H:%M}). "
                f"{listing}{more}"), level=messages.WARNING if plan.backup_ids else messages.INFO)


class RetentionPolicyForm(ServiceModelForm):
    class Meta:
        model = RetentionPolicy
        fields = ["tenant", *services.POLICY_FIELDS]

    def write(self) -> RetentionPolicy:
        data = {k: v for k, v in self.cleaned_data.items() if k in services.POLICY_FIELDS}
        if self.instance.pk:
            current = RetentionPolicy.objects.get(pk=self.instance.pk)
            return services.retention_policy_update(
                policy=current, **{k: v for k, v in data.items() if k in self.changed_data})
        return services.retention_policy_create(tenant=self.cleaned_data["tenant"], **data)


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(ServiceAdminMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    form = RetentionPolicyForm
    list_display = ("name", "tenant", "keep_last_n", "keep_days", "keep_daily", "keep_weekly", "keep_monthly",
                    "keep_yearly", "min_verified_kept")
    list_filter = ("tenant",)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "tenant"] if obj is not None else fields

    def delete_model(self, request, obj):
        try:
            services.retention_policy_delete(policy=obj)
        except DomainError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)

    def delete_queryset(self, request, queryset):
        for policy in queryset:
            self.delete_model(request, policy)


@admin.register(CleanupPlan)
class CleanupPlanAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ("public_id", "tenant", "job", "created_at", "expires_at", "executed_at")
    readonly_fields = [f.name for f in CleanupPlan._meta.fields]

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
