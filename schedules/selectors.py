"""Reads of the schedules domain: next runs, statistics, and the one mapping of every
facade's retention fields onto the retention engine's ``RetentionRules``."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Hashable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, F, Q, QuerySet
from django.utils import timezone

from backupplatform import units
from backupplatform.errors import NotFound, ValidationFailed
from backupplatform.filtering import QueryFilterSet, TrueFalseFilter
from backupplatform.tenancy import scoped
from backups.models import Backup, BackupStatus, Operation, OperationKind, OperationStatus
from backups.services.storage_settings import RETENTION_KEYS
from tenants.models import Tenant, TenantScope

from .models import BackupJob, CleanupPlan, Drill, RetentionPolicy
from .retention import BackupInfo, RetentionRules
from .timing import cron_next_runs

ACTIVE_OPS = (OperationStatus.PENDING, OperationStatus.RUNNING)


# --- schedule ---------------------------------------------------------------------------------


def job_next_runs(job: BackupJob, *, count: int = 1, after: datetime | None = None) -> list[datetime]:
    """The job's next run times (UTC, DST-correct in the job's timezone); ``[]`` when disabled."""
    if not job.enabled or not job.cron_expression:
        return []
    return cron_next_runs(job.cron_expression, job.timezone, after or timezone.now(), count)


def job_next_run(job: BackupJob, *, after: datetime | None = None) -> datetime | None:
    runs = job_next_runs(job, after=after)
    return runs[0] if runs else None


class JobFilter(QueryFilterSet):
    is_active = TrueFalseFilter(field_name="enabled")

    class Meta:
        model = BackupJob
        fields = ["is_active"]


def job_list(*, tenant: TenantScope, filters: Any = None) -> QuerySet[BackupJob]:
    """Jobs of ``tenant``; filters: ``is_active`` (true/false)."""
    qs = BackupJob.objects.select_related("retention_policy", "storage", "server", "application").for_tenant(tenant)
    return JobFilter.apply(filters, qs) if filters else qs


def job_active_operation(job: BackupJob) -> Operation | None:
    """The job's pending or running backup operation, if any (runs never overlap)."""
    return (
        Operation.objects.filter(kind=OperationKind.BACKUP, status__in=ACTIVE_OPS, backup__job=job)
        .select_related("backup")
        .order_by("created_at")
        .first()
    )


def job_statistics(job: BackupJob) -> dict:
    """workspace-backup-api.md "Get Backup Policy" ``statistics``."""
    stats = Backup.objects.filter(job=job).aggregate(
        total=Count("id"),
        ok=Count("id", filter=Q(status=BackupStatus.COMPLETED)),
        failed=Count("id", filter=Q(status=BackupStatus.FAILED)),
        size=Avg("stored_bytes", filter=Q(status=BackupStatus.COMPLETED)),
        duration=Avg(F("completed_at") - F("started_at"), filter=Q(status=BackupStatus.COMPLETED)),
    )
    duration = stats["duration"]
    return {
        "total_backups": stats["total"],
        "successful_backups": stats["ok"],
        "failed_backups": stats["failed"],
        "average_size_gb": units.gigabytes(stats["size"]),
        "average_duration_minutes": round(duration.total_seconds() / 60, 1) if duration else 0,
    }


def job_average_duration(job: BackupJob | None):
    if job is None:
        return None
    return Backup.objects.filter(job=job, status=BackupStatus.COMPLETED).aggregate(
        d=Avg(F("completed_at") - F("started_at"))
    )["d"]


# --- retention mapping ------------------------------------------------------------------------

_KEEP_LAST = re.compile(r"^keep_last_(\d{1,6})$")


def rules_for_job(job: BackupJob) -> RetentionRules:
    """Every facade's retention fields of a job, as one ``RetentionRules``.

    Start from the job's ``RetentionPolicy`` (platform ``retention_policy_id``), then the
    job's own fields override what they set: ``retention_count`` (console) -> keep_last_n,
    ``retention_days`` (jobs API) -> keep_days, ``retention`` GFS dict (workspace policy)
    -> keep_daily/weekly/monthly/yearly. GFS periods are calendar periods of the job's
    timezone. No rule at all means nothing is ever deleted.
    """
    policy = job.retention_policy
    values: dict = {}
    if policy is not None:
        values = {
            name: getattr(policy, name)
            for name in ("keep_last_n", "keep_days", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
        }
        values["min_verified_kept"] = policy.min_verified_kept
    if job.retention_count is not None:
        values["keep_last_n"] = job.retention_count
    if job.retention_days is not None:
        values["keep_days"] = job.retention_days
    for key in ("daily", "weekly", "monthly", "yearly"):
        if (job.retention or {}).get(key) is not None:
            values[f"keep_{key}"] = int(job.retention[key])
    return RetentionRules(timezone=job.timezone or "UTC", **values)


def rules_from_console(*, retention_policy: str | None, max_age_days: int | None) -> RetentionRules | None:
    """system-backup-recovery.rst "Run Cleanup": ``"keep_last_5"`` and ``max_age_days``.

    A backup is kept if any rule keeps it: ``keep_last_5`` + ``max_age_days: 30`` keeps the
    5 newest and everything younger than 30 days. ``None`` when neither is given (then each
    job's own retention applies).
    """
    keep_last_n = None
    if retention_policy:
        match = _KEEP_LAST.match(retention_policy)
        if not match:
            raise ValidationFailed(details={"retention_policy": ["Use 'keep_last_N' (for example 'keep_last_5')."]})
        keep_last_n = int(match.group(1))
    if keep_last_n is None and max_age_days is None:
        return None
    return RetentionRules(keep_last_n=keep_last_n, keep_days=max_age_days)


def backup_info(backup: Backup) -> BackupInfo:
    return BackupInfo(
        id=backup.pk,
        created_at=backup.created_at,
        status=backup.status,
        verified=backup.verified,
        keep_until=backup.keep_until,
        keep_forever=backup.keep_forever,
    )


def series_key(job_id, application_id, server_id, database_name) -> Hashable:
    """Retention counts within one series: the job's backups, else one application's or one
    database's. ``keep_last_5`` never mixes two databases."""
    if job_id:
        return ("job", job_id)
    if application_id:
        return ("app", application_id)
    return ("db", server_id, database_name)


BACKUP_FIELDS = (
    "id",
    "created_at",
    "status",
    "verified",
    "keep_until",
    "keep_forever",
    "stored_bytes",
    "job_id",
    "application_id",
    "server_id",
    "database_name",
)


def backup_series(backups: Iterable[dict]) -> dict[Hashable, list[dict]]:
    groups: dict[Hashable, list[dict]] = defaultdict(list)
    for row in backups:
        groups[series_key(row["job_id"], row["application_id"], row["server_id"], row["database_name"])].append(row)
    return groups


# --- cleanup plans ----------------------------------------------------------------------------


def cleanup_plan_get(*, tenant: TenantScope, public_id: str) -> CleanupPlan:
    """A plan of the caller's tenant; any other (or unknown) id is a 404."""
    qs = scoped(CleanupPlan.objects.select_related("tenant", "operation"), tenant)
    plan = qs.filter(public_id=str(public_id)[:40]).first()
    if plan is None:
        raise NotFound(
            "Cleanup plan not found", code="CLEANUP_PLAN_NOT_FOUND", details={"cleanup_plan_id": str(public_id)[:40]}
        )
    return plan


def cleanup_operation_get(*, tenant: TenantScope, public_id: str) -> Operation:
    qs = Operation.objects.filter(kind=OperationKind.CLEANUP).for_tenant(tenant)
    op = qs.filter(public_id=str(public_id)[:32]).first()
    if op is None:
        raise NotFound("Cleanup not found", code="CLEANUP_NOT_FOUND")
    return op


def retention_policy_in_use(policy: RetentionPolicy) -> list[int]:
    return list(BackupJob.objects.filter(retention_policy=policy).values_list("pk", flat=True))


def tenant_object(model, *, tenant: Tenant, pk, field: str):
    """A row of ``tenant`` named by a request field; another tenant's row is "not found"."""
    if pk is None:
        return None
    obj = model.objects.filter(tenant=tenant, pk=pk).first()
    if obj is None:
        raise ValidationFailed(details={field: ["Not found."]})
    return obj


def rules_for_storage(storage) -> RetentionRules:
    """A storage's own retention (``Storage.retention``): what it keeps of the copies it holds."""

    retention = storage.retention or {}
    return RetentionRules(**{k: retention[k] for k in RETENTION_KEYS if retention.get(k) is not None})


def jobs_missed(
    *, tenant: TenantScope, now: datetime | None = None, grace_seconds: int = 900
) -> list[tuple[BackupJob, datetime]]:
    """Enabled jobs whose run is overdue by more than ``grace_seconds``: the first due time
    after the job last ran (or was saved, if it never ran since) has passed without a run.
    A scheduled run skipped because the previous one was still going counts as missed too."""
    from datetime import timedelta

    now = now or timezone.now()
    missed = []
    for job in BackupJob.objects.for_tenant(tenant).filter(enabled=True).exclude(cron_expression="").order_by("pk"):
        anchor = max(t for t in (job.last_run_at, job.updated_at, job.created_at) if t is not None)
        runs = cron_next_runs(job.cron_expression, job.timezone, anchor, 1)
        if runs and runs[0] <= now - timedelta(seconds=grace_seconds):
            missed.append((job, runs[0]))
    return missed


# How long one period of each GFS rule lasts, for the expiry outlook below.
RULE_PERIODS = (
    ("daily", "keep_daily", timedelta(days=1)),
    ("weekly", "keep_weekly", timedelta(weeks=1)),
    ("monthly", "keep_monthly", timedelta(days=30)),
    ("yearly", "keep_yearly", timedelta(days=365)),
)


def backup_retention_outlook(backup: Backup) -> dict:
    """When retention may delete ``backup``, as workspace-backup-api.md shows it
    (``{"expires_at", "category"}``), for a schedule that keeps running.

    ``keep_forever``: never (``expires_at`` null); ``keep_until``: that date; otherwise the
    finest rule of its job: a ``daily: 7`` backup expires 7 days after it was made (it may be
    kept longer as one of the weekly, monthly or yearly backups), ``keep_days: N`` after N
    days. A backup no rule covers never expires (``category`` ``"none"``).
    """
    if backup.keep_forever:
        return {"expires_at": None, "category": "forever", "keep_forever": True}
    made = backup.started_at or backup.created_at
    if backup.keep_until is not None:
        return {"expires_at": backup.keep_until, "category": "override", "keep_forever": False}
    rules = rules_for_job(backup.job) if backup.job_id else None
    if rules is not None:
        for category, name, period in RULE_PERIODS:
            count = getattr(rules, name)
            if count:
                return {"expires_at": made + period * count, "category": category, "keep_forever": False}
        if rules.keep_days:
            return {"expires_at": made + timedelta(days=rules.keep_days), "category": "days", "keep_forever": False}
        if rules.keep_last_n:
            return {"expires_at": None, "category": "last_n", "keep_forever": False}
    return {"expires_at": None, "category": "none", "keep_forever": False}


# --- restore drills ---------------------------------------------------------------------------


def drill_list(*, tenant: TenantScope, job_id: int | None = None) -> QuerySet:
    """The workspace's drills, newest first (optionally one job's)."""

    qs = scoped(Drill.objects.select_related("job"), tenant).order_by("-created_at", "-id")
    if job_id is not None:
        qs = qs.filter(job_id=job_id)
    return qs


def drill_next_run(job: BackupJob) -> datetime | None:
    """When beat drills the job next (``None``: no drill schedule or the job is disabled)."""
    return job.drill_next_run_at if job.enabled and job.drill_cron_expression else None
