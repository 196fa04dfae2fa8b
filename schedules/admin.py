"""Admin for backup jobs (schedule preview, enable/disable, run now, cleanup dry run),
retention policies and cleanup plans. Writes go through ``schedules.services`` so beat's
``PeriodicTask`` and the audit log follow, exactly as from the APIs."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from backupplatform import humanize
from backupplatform.admin_forms import ServiceAdminMixin, ServiceModelForm
from backupplatform.errors import DomainError
from backups.models import Backup
from tenants.models import Tenant
from tenants.scoping import TenantScopedAdminMixin, admin_tenant_ids

from . import drills, evidence, selectors, services
from .models import BackupJob, CleanupPlan, Drill, RetentionPolicy
from .retention import plan_retention

EDITABLE = [
    "tenant",
    "name",
    "description",
    "enabled",
    "server",
    "database_name",
    "application",
    "source_path",
    "storage",
    "backup_type",
    "schedule_type",
    "cron_expression",
    "schedule_time",
    "timezone",
    "days_of_week",
    "day_of_month",
    "retention_policy",
    "retention_days",
    "retention_count",
    "retention",
    "auto_purge",
    "priority",
    "options",
    "notifications",
]


DRILL_FIELDS = ["drill_cron_expression", "drill_assertions", "drill_server"]


def retention_outlook(jobs) -> str:
    """What the jobs' retention rules keep and delete today among their backups (a read:
    no cleanup plan is written), newest first."""

    lines, now = [], timezone.now()
    for job in jobs:
        backups = list(
            Backup.objects.filter(job=job).exclude(status__in=("pending", "running")).order_by("-created_at")
        )
        rules = selectors.rules_for_job(job)
        plan = plan_retention([selectors.backup_info(b) for b in backups], rules, now)
        doomed = [b for b in backups if not plan.is_kept(b.pk)]
        listing = ", ".join(f"{b.name or b.pk} ({b.created_at:%d %b %H:%M})" for b in doomed[:10])
        more = f" and {len(doomed) - 10} more" if len(doomed) > 10 else ""
        lines.append(
            (
                job.name,
                len(backups),
                len(backups) - len(doomed),
                f"would delete {len(doomed)}: {listing}{more}" if doomed else "nothing to delete",
            )
        )
    if not lines:
        return "No job uses these rules yet."
    return format_html_join("", "<div><b>{}</b>: of {} backup(s) keeps {}, {}</div>", lines)


WEEKDAYS = [(1, "Mon"), (2, "Tue"), (3, "Wed"), (4, "Thu"), (5, "Fri"), (6, "Sat"), (7, "Sun")]


class BackupJobForm(forms.ModelForm):
    """A job's schedule as frequency, time and days (or a cron expression), its options and
    retention as fields; the next five runs are shown as they are chosen."""

    days_of_week = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Weekly and daily schedules: the days to run on (none ticked: every day; weekly: Sunday).",
    )
    compression = forms.ChoiceField(
        choices=[("zstd", "zstd (fast, small)"), ("gzip", "gzip"), ("none", "none")],
        initial="zstd",
        help_text="Backups are always encrypted (AES-256-GCM).",
    )
    verify_after = forms.BooleanField(required=False, label="Verify each backup after it is stored")
    notify_on_failure = forms.BooleanField(required=False, initial=True, label="Notify on failure")
    notify_on_success = forms.BooleanField(required=False, label="Notify on success")
    keep_daily = forms.IntegerField(required=False, min_value=0, label="Keep daily", help_text="GFS: newest per day")
    keep_weekly = forms.IntegerField(required=False, min_value=0, label="Keep weekly")
    keep_monthly = forms.IntegerField(required=False, min_value=0, label="Keep monthly")
    keep_yearly = forms.IntegerField(required=False, min_value=0, label="Keep yearly")

    class Meta:
        model = BackupJob
        fields = [*(f for f in EDITABLE if f not in ("options", "notifications", "retention")), *DRILL_FIELDS]
        widgets = {"schedule_time": forms.TimeInput(attrs={"type": "time"}, format="%H:%M")}
        help_texts = {
            "drill_cron_expression": "Restore drills: a cron expression in the job's timezone (e.g. '0 5 * * 0', "
            "Sundays 05:00); empty: no scheduled drills.",
            "drill_assertions": 'A JSON list, e.g. [{"type": "row_count", "table": "public.orders", "min": 1}, '
            '{"type": "sql", "sql": "SELECT count(*) > 0 FROM users"}, '
            '{"type": "file", "path": "uploads/logo.png", "sha256": "..."}].',
            "drill_server": "Restore drills into a new database on this server (default: the backup's own server).",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        job = self.instance
        options = job.options or {}
        compression = options.get("compression")
        self.fields["compression"].initial = (
            "none" if compression is False else "gzip" if compression is True else compression or "zstd"
        )
        self.fields["verify_after"].initial = bool(options.get("verify_integrity"))
        notes = {**services.DEFAULT_NOTIFICATIONS, **(job.notifications or {})}
        self.fields["notify_on_failure"].initial = bool(notes.get("on_failure"))
        self.fields["notify_on_success"].initial = bool(notes.get("on_success"))
        for period in ("daily", "weekly", "monthly", "yearly"):
            self.fields[f"keep_{period}"].initial = (job.retention or {}).get(period)
        cron_help = "For 'Cron expression' and 'Custom cron' only: minute hour day month weekday, e.g. 30 2 * * 1-5"
        self.fields["cron_expression"].help_text = cron_help
        self.fields["schedule_time"].help_text = "Local time in the job's time zone (daily, weekly, monthly)"

    def clean(self):
        cleaned = super().clean()
        options = dict(self.instance.options or {})
        options["compression"] = cleaned.get("compression") or "zstd"
        options["verify_integrity"] = bool(cleaned.get("verify_after"))
        cleaned["options"] = options
        cleaned["notifications"] = {
            **(self.instance.notifications or {}),
            "on_failure": bool(cleaned.get("notify_on_failure")),
            "on_success": bool(cleaned.get("notify_on_success")),
        }
        cleaned["retention"] = {
            p: cleaned[f"keep_{p}"] for p in ("daily", "weekly", "monthly", "yearly") if cleaned.get(f"keep_{p}")
        }
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
        try:
            drills.drill_check(
                tenant_id=job.tenant_id,
                job=job,
                cron_expression=cleaned.get("drill_cron_expression"),
                assertions=cleaned.get("drill_assertions"),
                scratch_server=cleaned.get("drill_server"),
            )
        except DomainError as exc:
            for field, msgs in (exc.details or {"__all__": [exc.message]}).items():
                self.add_error(field if field in self.fields else None, msgs)
        return cleaned

    @property
    def changed_data(self):
        changed = list(super().changed_data)
        if {"compression", "verify_after"} & set(changed):
            changed.append("options")
        if {"notify_on_failure", "notify_on_success"} & set(changed):
            changed.append("notifications")
        if any(f"keep_{p}" in changed for p in ("daily", "weekly", "monthly", "yearly")):
            changed.append("retention")
        return changed


@admin.register(BackupJob)
class BackupJobAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    form = BackupJobForm
    list_display = ("name", "tenant", "target", "enabled", "schedule", "last_result", "next_run")
    ordering = ("name",)
    list_filter = ("enabled", "schedule_type", "tenant")
    search_fields = ("name", "public_id")
    readonly_fields = (
        "public_id",
        "schedule_preview",
        "retention_preview",
        "last_run_at",
        "next_run_at",
        "drill_next_run_at",
    )
    fieldsets = [
        (None, {"fields": ["tenant", "name", "description", "enabled"]}),
        (
            "What to back up",
            {
                "fields": ["application", "server", "database_name", "source_path", "storage", "backup_type"],
                "description": "An application (all its sources), or a server and one database.",
            },
        ),
        (
            "When",
            {
                "fields": [
                    "schedule_type",
                    "schedule_time",
                    "days_of_week",
                    "day_of_month",
                    "cron_expression",
                    "timezone",
                    "schedule_preview",
                ],
                "classes": ["job-schedule"],
            },
        ),
        (
            "Retention",
            {
                "fields": [
                    "retention_policy",
                    "retention_days",
                    "retention_count",
                    "keep_daily",
                    "keep_weekly",
                    "keep_monthly",
                    "keep_yearly",
                    "auto_purge",
                    "retention_preview",
                ],
                "description": "A named policy, or the rules here; 'Cleanup dry run' in the list shows "
                "what they would delete.",
            },
        ),
        ("Options", {"fields": ["compression", "verify_after", "priority", "notify_on_failure", "notify_on_success"]}),
        (
            "Restore drills",
            {
                "fields": ["drill_cron_expression", "drill_assertions", "drill_server", "drill_next_run_at"],
                "description": "Restore the latest backup on a schedule, check it, and keep the evidence.",
            },
        ),
    ]
    actions = ["enable_jobs", "disable_jobs", "run_now", "drill_now", "cleanup_dry_run"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        ids = admin_tenant_ids(request)
        # Staff choose among their own workspaces' servers, applications, storages, policies.
        if ids is not None and db_field.name in (
            "server",
            "drill_server",
            "application",
            "storage",
            "retention_policy",
        ):
            kwargs["queryset"] = db_field.remote_field.model.objects.filter(tenant_id__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

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
        return format_html(
            "{} {} {}",
            humanize.badge(last.status),
            f"{last.created_at:%d %b %H:%M}",
            format_html('<div class="error-text">{}</div>', last.error_message[:200]) if last.error_message else "",
        )

    @admin.display(description="What retention keeps today")
    def retention_preview(self, job):
        return retention_outlook([job]) if job.pk else "Shown once the job is saved."

    @admin.display(description="next 5 runs")
    def schedule_preview(self, job):
        from django.urls import reverse

        url = reverse("admin:console_schedule_preview")
        if not job.pk:
            return format_html('<div id="schedule-preview" data-url="{}">-</div>', url)
        runs = selectors.job_next_runs(job, count=5)
        if not runs:
            return "disabled"
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(job.timezone)
        return format_html(
            '<div id="schedule-preview" data-url="{}">{}</div>',
            url,
            format_html_join(
                "",
                "<div>{} UTC &mdash; {} {}</div>",
                (
                    (r.strftime("%a %Y-%m-%d %H:%M"), r.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"), job.timezone)
                    for r in runs
                ),
            ),
        )

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in EDITABLE if name != "tenant" and name in form.cleaned_data}
        if change:
            changed = {k: v for k, v in fields.items() if k in form.changed_data}
            saved = services.job_update(job=obj, **changed)
        else:
            saved = services.job_create(tenant=form.cleaned_data["tenant"], actor=request.user, **fields)
        drill = {name: form.cleaned_data.get(name) for name in DRILL_FIELDS if name in form.changed_data}
        if drill:
            drills.drill_configure(
                job=saved,
                **{
                    {
                        "drill_cron_expression": "cron_expression",
                        "drill_assertions": "assertions",
                        "drill_server": "scratch_server",
                    }[k]: v
                    for k, v in drill.items()
                },
            )
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

    @admin.action(description="Run a restore drill now")
    def drill_now(self, request, queryset):
        for job in queryset:
            try:
                drill = drills.drill_start(tenant=job.tenant, job=job, actor=request.user)
                self.message_user(request, f"{job.name}: drill {drill.pk} of backup {drill.backup_ref} started")
            except DomainError as exc:
                self.message_user(request, f"{job.name}: {exc.message}", level=messages.ERROR)

    @admin.action(description="Cleanup dry run (show what retention would delete)")
    def cleanup_dry_run(self, request, queryset):
        for job in queryset:
            plan = services.cleanup_analyse(tenant=job.tenant, actor=request.user, job=job, reason="admin dry run")
            doomed = Backup.objects.filter(pk__in=plan.backup_ids).order_by("created_at")
            listing = ", ".join(
                f"#{b.pk} {b.name or ''} ({b.created_at:%Y-%m-%d %H:%M}, {b.status})" for b in doomed[:50]
            )
            more = f" and {len(plan.backup_ids) - 50} more" if len(plan.backup_ids) > 50 else ""
            a = plan.analysis
            self.message_user(
                request,
                (
                    f"{job.name}: {a['eligible_for_removal']} of {a['total_backups']} backup(s) would go "
                    f"({a['space_to_free']}), {a['backups_to_keep']} kept, {a['protected_backups']} protected; "
                    f"plan {plan.public_id} (valid until {timezone.localtime(plan.expires_at):%H:%M}). "
                    f"{listing}{more}"
                ),
                level=messages.WARNING if plan.backup_ids else messages.INFO,
            )


class RetentionPolicyForm(ServiceModelForm):
    class Meta:
        model = RetentionPolicy
        fields = ["tenant", *services.POLICY_FIELDS]

    def write(self) -> RetentionPolicy:
        data = {k: v for k, v in self.cleaned_data.items() if k in services.POLICY_FIELDS}
        if self.instance.pk:
            current = RetentionPolicy.objects.get(pk=self.instance.pk)
            return services.retention_policy_update(
                policy=current, **{k: v for k, v in data.items() if k in self.changed_data}
            )
        return services.retention_policy_create(tenant=self.cleaned_data["tenant"], **data)


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(ServiceAdminMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    form = RetentionPolicyForm
    list_display = (
        "name",
        "tenant",
        "keep_last_n",
        "keep_days",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "keep_yearly",
        "min_verified_kept",
    )
    list_filter = ("tenant",)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "tenant", "preview"] if obj is not None else fields

    @admin.display(description="What it keeps today")
    def preview(self, policy):
        return retention_outlook(policy.jobs.select_related("retention_policy"))

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


class EvidenceForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), label="Workspace")
    format = forms.ChoiceField(choices=[("pdf", "PDF"), ("json", "JSON")])
    start_date = forms.DateField(required=False, help_text="YYYY-MM-DD (default: 29 days before the end)")
    end_date = forms.DateField(required=False, help_text="YYYY-MM-DD (default: today, UTC)")


@admin.register(Drill)
class DrillAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Restore drills: the evidence rows (read-only), and the workspace's evidence report."""

    list_display = (
        "id",
        "tenant",
        "job_name",
        "backup_ref",
        "trigger",
        "status",
        "rto_seconds",
        "rpo_seconds",
        "created_at",
    )
    list_filter = ("status", "trigger", "tenant")
    search_fields = ("job_name", "backup_checksum")
    date_hierarchy = "created_at"
    list_select_related = ("tenant",)
    readonly_fields = [f.name for f in Drill._meta.fields]
    change_list_template = "admin/schedules/drill/change_list.html"

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        return [
            path("evidence/", self.admin_site.admin_view(self.evidence_view), name="schedules_drill_evidence"),
            *super().get_urls(),
        ]

    def evidence_view(self, request):
        """Download a workspace's drill evidence (PDF or JSON); staff see their workspaces only."""
        if not self.has_view_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        ids = admin_tenant_ids(request)
        tenants = Tenant.objects.all() if ids is None else Tenant.objects.filter(pk__in=ids)
        form = EvidenceForm(request.POST or None)
        form.fields["tenant"].queryset = tenants.order_by("name")
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                report = evidence.evidence_generate(
                    tenant=data["tenant"], format=data["format"], start=data["start_date"], end=data["end_date"]
                )
            except DomainError as exc:
                form.add_error(None, f"{exc.message} {exc.details or ''}")
            else:
                response = StreamingHttpResponse(report.chunks, content_type=report.content_type)
                response["Content-Disposition"] = f'attachment; filename="{report.filename}"'
                return response
        return render(
            request,
            "admin/schedules/drill/evidence.html",
            {**self.admin_site.each_context(request), "form": form, "title": "Download restore drill evidence"},
        )
