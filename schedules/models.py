"""What to do when, and how long to keep it: one ``BackupJob`` behind four APIs (platform
schedules, api-layer jobs, workspace backup-policy, console schedules)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from tenants.models import TenantOwnedModel


class RetentionPolicy(TenantOwnedModel):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    keep_last_n = models.PositiveIntegerField(null=True, blank=True)
    keep_days = models.PositiveIntegerField(null=True, blank=True)
    keep_daily = models.PositiveIntegerField(null=True, blank=True)
    keep_weekly = models.PositiveIntegerField(null=True, blank=True)
    keep_monthly = models.PositiveIntegerField(null=True, blank=True)
    keep_yearly = models.PositiveIntegerField(null=True, blank=True)
    # The safety net: never delete the last N successful backups whose verification or drill passed.
    min_verified_kept = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "retention policies"
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="unique_retention_policy_name")]

    def __str__(self) -> str:
        return self.name


class ScheduleType(models.TextChoices):
    CRON = "cron", "Cron expression"
    HOURLY = "hourly", "Hourly"
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    CUSTOM = "custom", "Custom cron"


def job_public_id() -> str:
    return f"schedule_{secrets.token_hex(6)}"


class BackupJob(TenantOwnedModel):
    """One "back this up, on this schedule, keep it this long" (DESIGN.md "One model, many facades").

    ``public_id`` is the stable string id the console (``schedule_id``) and the workspace
    (policy ``id``) facades show; the platform and jobs facades show ``id``.
    """

    public_id = models.CharField(max_length=64, default=job_public_id, db_index=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # What: a database on a server, an application, or a path (api-layer.md ``source_path``).
    server = models.ForeignKey("backups.Server", null=True, blank=True, on_delete=models.PROTECT, related_name="jobs")
    database_name = models.CharField(max_length=200, blank=True)
    db_type = models.CharField(max_length=20, blank=True)
    application = models.ForeignKey(
        "backups.Application", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    source_path = models.CharField(max_length=1024, blank=True)
    components = models.JSONField(default=list, blank=True)
    storage = models.ForeignKey(
        "backups.Storage", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    backup_type = models.CharField(max_length=30, default="full")
    # When.
    schedule_type = models.CharField(max_length=20, choices=ScheduleType.choices, default=ScheduleType.CRON)
    cron_expression = models.CharField(max_length=120, blank=True)
    schedule_time = models.TimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    days_of_week = models.JSONField(default=list, blank=True)
    day_of_month = models.PositiveSmallIntegerField(null=True, blank=True)
    # How long.
    retention_policy = models.ForeignKey(
        RetentionPolicy, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    retention_count = models.PositiveIntegerField(null=True, blank=True)
    retention = models.JSONField(default=dict, blank=True, help_text="GFS: daily/weekly/monthly/yearly")
    auto_purge = models.BooleanField(default=False)
    # How.
    options = models.JSONField(default=dict, blank=True)
    notifications = models.JSONField(default=dict, blank=True)
    priority = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1), MaxValueValidator(10)])
    enabled = models.BooleanField(default=True)
    # When beat dispatches the job next (UTC; NULL while disabled): schedules/beat.py.
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    # Restore drills (schedules/drills.py): when (a cron expression in the job's timezone,
    # empty: none scheduled), what to check, where to restore (a scratch server; default the
    # backup's own server), and when beat dispatches the next one (UTC; NULL: none).
    drill_cron_expression = models.CharField(max_length=120, blank=True)
    drill_assertions = models.JSONField(default=list, blank=True)
    drill_server = models.ForeignKey(
        "backups.Server", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    drill_next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="unique_job_name"),
            models.UniqueConstraint(fields=["tenant", "public_id"], name="unique_job_public_id"),
            # workspace-backup-api.md: an application has one backup policy.
            models.UniqueConstraint(
                fields=["application"], condition=models.Q(application__isnull=False), name="one_policy_per_application"
            ),
        ]

    def __str__(self) -> str:
        return self.name


def cleanup_plan_public_id() -> str:
    return f"ANALYSIS-{secrets.token_hex(6).upper()}"


CLEANUP_PLAN_TTL = timedelta(hours=1)


def cleanup_plan_expiry():
    return timezone.now() + CLEANUP_PLAN_TTL


class CleanupPlan(TenantOwnedModel):
    """A retention dry run (system-backup-recovery.rst "Cleanup Operations"): the exact backups
    it would delete. Executing it deletes exactly these (still deletable) backups, once,
    before ``expires_at``."""

    public_id = models.CharField(max_length=40, unique=True, default=cleanup_plan_public_id, editable=False)
    job = models.ForeignKey(BackupJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    backup_ids = models.JSONField(default=list, blank=True)
    rules = models.JSONField(default=dict, blank=True, help_text="what was asked (retention, max age, storages)")
    analysis = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=cleanup_plan_expiry)
    executed_at = models.DateTimeField(null=True, blank=True)
    operation = models.ForeignKey(
        "backups.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.public_id


class ScheduledRun(TenantOwnedModel):
    """One due time of a job, claimed by the first ``run_job`` that handles it.

    Beat restarted around a due time may dispatch it twice; the unique constraint makes the
    second dispatch a no-op (logged), even when the first run already finished. The row
    also says what the dispatch did: ``started`` (``operation`` is the backup's) or
    ``skipped`` (a previous run still active, the tenant at its concurrency cap).
    """

    job = models.ForeignKey(BackupJob, on_delete=models.CASCADE, related_name="scheduled_runs")
    scheduled_for = models.DateTimeField()
    outcome = models.CharField(max_length=20, default="started")
    operation = models.ForeignKey(
        "backups.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-scheduled_for", "-id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "job", "scheduled_for"], name="unique_job_due_time")]

    def __str__(self) -> str:
        return f"{self.job_id} @ {self.scheduled_for:%Y-%m-%d %H:%M}"


class DrillStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"


class Drill(TenantOwnedModel):
    """One restore drill of a job: its latest completed backup restored into scratch copies,
    checked, and dropped (schedules/drills.py). The row is the evidence, so it keeps what it
    proved even after the backup or the job is deleted: the backup's id, checksum and data time,
    the timings (RTO: time to restore; RPO: age of the restored data at drill time), and each
    assertion with its result.

    Status: ``pending`` -> ``running`` (claimed by one worker) -> ``passed`` | ``failed``.
    """

    job = models.ForeignKey(BackupJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="drills")
    job_name = models.CharField(max_length=200, blank=True)
    backup = models.ForeignKey(
        "backups.Backup", null=True, blank=True, on_delete=models.SET_NULL, related_name="drills"
    )
    # Copied from the backup when the drill starts (evidence outlives the backup row).
    backup_ref = models.BigIntegerField(null=True, blank=True, help_text="id of the backup drilled")
    backup_checksum = models.CharField(max_length=80, blank=True)
    backup_taken_at = models.DateTimeField(null=True, blank=True, help_text="when the backup read its data")
    trigger = models.CharField(max_length=20, default="manual")
    scheduled_for = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=DrillStatus.choices, default=DrillStatus.PENDING, db_index=True)
    passed = models.BooleanField(null=True, blank=True)
    checksum_verified = models.BooleanField(null=True, blank=True)
    rto_seconds = models.FloatField(null=True, blank=True, help_text="time to restore the scratch copy")
    rpo_seconds = models.FloatField(null=True, blank=True, help_text="age of the restored data at drill time")
    duration_seconds = models.FloatField(null=True, blank=True)
    assertions = models.JSONField(default=list, blank=True, help_text="each assertion and its result")
    scratch = models.JSONField(default=dict, blank=True, help_text="where it restored, and whether it was dropped")
    error_message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Refreshed while a worker runs the drill; a running drill whose heartbeat stopped is
    # failed by ``drill_reap`` and its scratch copy dropped (its names are in ``scratch``).
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at", "-id"], name="drill_tenant_recent")]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "scheduled_for"],
                condition=models.Q(scheduled_for__isnull=False),
                name="one_drill_per_job_due_time",
            )
        ]

    def __str__(self) -> str:
        return f"drill {self.pk} of {self.job_name or self.job_id}"
