"""Writes of the schedules domain: backup jobs (= schedules = policies), retention policies,
runs, and retention cleanup (dry-run plans and their execution).

Every write keeps the job's ``next_run_at`` (what beat dispatches, ``schedules.beat``) in
step in the same transaction, and records an audit event.
"""

from __future__ import annotations

import logging
from datetime import time as dt_time
from typing import Any

from django.db import IntegrityError, transaction

from audit.services import emit, stored_user
from backupplatform.errors import (
    Conflict,
    ValidationFailed,
)
from backups.models import (
    Application,
    ServerType,
)
from tenants import capabilities
from tenants.models import Tenant

from . import beat
from .models import BackupJob, ScheduleType
from .timing import frequency_to_cron, validate_cron, validate_timezone

logger = logging.getLogger(__name__)

SCHEDULE_FIELDS = ("schedule_type", "cron_expression", "schedule_time", "timezone", "days_of_week", "day_of_month")
JOB_FIELDS = frozenset(
    {
        "name",
        "description",
        "server",
        "database_name",
        "application",
        "source_path",
        "components",
        "storage",
        "backup_type",
        "retention_policy",
        "retention_days",
        "retention_count",
        "retention",
        "auto_purge",
        "options",
        "notifications",
        "priority",
        "enabled",
        "public_id",
        *SCHEDULE_FIELDS,
    }
)


# --- validation helpers -----------------------------------------------------------------------


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(details={field: [message]})


def _apply_schedule(job: BackupJob) -> None:
    """Validate the job's schedule fields and store the effective cron in ``cron_expression``."""
    try:
        validate_timezone(job.timezone)
    except ValueError as exc:
        raise _fail("timezone", str(exc))
    kind = job.schedule_type
    if kind in (ScheduleType.CRON, ScheduleType.CUSTOM):
        if not job.cron_expression:
            raise _fail("cron_expression", "This field is required.")
        try:
            job.cron_expression = validate_cron(job.cron_expression)
        except ValueError as exc:
            raise _fail("cron_expression", str(exc))
        job.schedule_time, job.days_of_week, job.day_of_month = None, [], None
        return
    time = job.schedule_time.strftime("%H:%M") if job.schedule_time else None
    if kind == ScheduleType.HOURLY and time is None:
        time = "00:00"
    field = "schedule_time"
    try:
        job.cron_expression = frequency_to_cron(kind, time, job.days_of_week or None, job.day_of_month)
    except ValueError as exc:
        message = str(exc)
        if "day_of_week" in message or "days_of_week" in message or "day of week" in message:
            field = "days_of_week"
        elif "day_of_month" in message:
            field = "day_of_month"
        elif "frequency" in message:
            field = "schedule_type"
        raise _fail(field, message)


def _check_target(job: BackupJob) -> None:
    tenant_id = job.tenant_id
    for field in ("server", "application", "storage", "retention_policy"):
        obj = getattr(job, field)
        if obj is not None and obj.tenant_id != tenant_id:
            raise _fail(f"{field}_id", "Not found.")
    if job.server is not None:
        if job.server.type not in (ServerType.POSTGRESQL, ServerType.MYSQL):
            raise _fail("server_id", f"Server type {job.server.type} holds no database to back up.")
        if not job.database_name:
            raise _fail("database_name", "This field is required.")
        job.db_type = job.server.type
    if (job.server is None) == (job.application is None):
        raise _fail("server_id", "A job backs up either a server's database or an application.")
    if job.options.get("encryption") is False:
        raise _fail("options", "Backups are always encrypted (AES-256-GCM); encryption cannot be turned off.")
    if not 1 <= int(job.priority) <= 10:
        raise _fail("priority", "Must be between 1 and 10.")


def _path_application(*, tenant: Tenant, name: str, path: str) -> Application:
    """api-layer.md ``source_path``: the job's own application with one path source."""
    from backups.services import application_create

    app_name = f"job: {name}"[:200]
    suffix = 1
    while Application.objects.filter(tenant=tenant, name=app_name).exists():
        suffix += 1
        app_name = f"job: {name} ({suffix})"[:200]
    return application_create(
        tenant=tenant,
        name=app_name,
        description=f"Files of backup job {name}",
        sources=[{"type": "path", "path": path, "name": "files"}],
    )


def _conflict(job: BackupJob) -> Conflict | None:
    others = BackupJob.objects.exclude(pk=job.pk)
    if job.application_id and others.filter(application_id=job.application_id).exists():
        return Conflict("This application already has a backup policy", code="SCHEDULE_CONFLICT")
    if job.public_id and others.filter(tenant_id=job.tenant_id, public_id=job.public_id).exists():
        return Conflict("A schedule with this id already exists", code="SCHEDULE_CONFLICT")
    return None


def _save(job: BackupJob) -> None:
    # Checked first so every database gives the same answer; a writer that wins a race
    # between the check and the save is found by asking the same questions again.
    if conflict := _conflict(job):
        raise conflict
    try:
        with transaction.atomic():
            job.save()
    except IntegrityError:
        raise _conflict(job) or _fail("name", "A job with this name already exists.") from None


# --- jobs -------------------------------------------------------------------------------------


def job_check(*, job: BackupJob) -> None:
    """Validate an unsaved job as the services would (admin forms); raises ``ValidationFailed``."""
    _apply_schedule(job)
    _check_target(job)


@transaction.atomic
def job_create(*, tenant: Tenant, actor: Any = None, **fields: Any) -> BackupJob:
    """Create a job (beat dispatches it from ``next_run_at``). ``fields`` are model field names (model
    instances for foreign keys); errors name model fields (a facade renames them:
    ``backupplatform.errors.fields_renamed``)."""
    capabilities.require_feature(tenant)
    unknown = set(fields) - JOB_FIELDS
    if unknown:
        raise ValueError(f"unknown job fields: {sorted(unknown)}")
    if fields.get("source_path") and fields.get("application") is None and fields.get("server") is None:
        fields["application"] = _path_application(
            tenant=tenant, name=fields.get("name", ""), path=fields["source_path"]
        )
    job = BackupJob(tenant=tenant, created_by=stored_user(actor), **fields)
    _apply_schedule(job)
    _check_target(job)
    _save(job)
    beat.job_schedule(job=job)
    emit(
        action="job_create",
        tenant=tenant,
        resource_type="backup_job",
        resource_id=job.pk,
        details={"name": job.name, "cron": job.cron_expression, "timezone": job.timezone, "enabled": job.enabled},
    )
    return job


@transaction.atomic
def job_update(*, job: BackupJob, **changes: Any) -> BackupJob:
    """Partial update; ``next_run_at`` follows the schedule, timezone and enabled flag."""
    if changes != {"enabled": False}:  # a workspace off the dedicated plan may still stop its jobs
        capabilities.require_feature(job.tenant)
    unknown = set(changes) - JOB_FIELDS
    if unknown:
        raise ValueError(f"unknown job fields: {sorted(unknown)}")
    job = (
        BackupJob.objects.select_for_update(of=("self",))
        .select_related("server", "application", "storage")
        .get(pk=job.pk)
    )
    if changes.get("source_path") and job.application is not None and job.application.name.startswith("job: "):
        from backups.services import application_update

        application_update(
            app=job.application, sources=[{"type": "path", "path": changes["source_path"], "name": "files"}]
        )
    if "schedule_type" in changes and changes["schedule_type"] not in (ScheduleType.CRON, ScheduleType.CUSTOM):
        changes.setdefault("cron_expression", "")
    for name, value in changes.items():
        setattr(job, name, value)
    _apply_schedule(job)
    _check_target(job)
    _save(job)
    beat.job_schedule(job=job)
    emit(
        action="job_update",
        tenant=job.tenant,
        resource_type="backup_job",
        resource_id=job.pk,
        details={"changed": sorted(changes), "cron": job.cron_expression, "enabled": job.enabled},
    )
    return job


#: Notification switches a job has unless it says otherwise (failures are always worth hearing).
DEFAULT_NOTIFICATIONS = {"on_success": False, "on_failure": True}


def _schedule_changes(schedule: dict) -> dict:
    """Partial schedule changes as model fields. Naming ``schedule_type`` replaces the whole
    schedule (parts not given are cleared); otherwise only the given parts change, and a
    ``cron_expression`` alone makes the schedule custom."""
    if "schedule_type" in schedule:
        return {
            "schedule_type": schedule["schedule_type"],
            "schedule_time": schedule.get("schedule_time"),
            "days_of_week": schedule.get("days_of_week") or [],
            "day_of_month": schedule.get("day_of_month"),
            "cron_expression": schedule.get("cron_expression") or "",
        }
    fields: dict = {}
    for name in ("schedule_time", "day_of_month"):
        if name in schedule:
            fields[name] = schedule[name]
    if "days_of_week" in schedule:
        fields["days_of_week"] = schedule["days_of_week"] or []
    if "cron_expression" in schedule:
        fields["cron_expression"] = schedule["cron_expression"] or ""
        fields["schedule_type"] = ScheduleType.CUSTOM
    return fields


@transaction.atomic
def job_save(
    *,
    tenant: Tenant,
    public_id: str,
    actor: Any = None,
    create: bool = False,
    schedule: dict | None = None,
    storage_name: str | None = None,
    notifications: dict | None = None,
    **fields: Any,
) -> tuple[BackupJob, bool]:
    """Save the tenant's job named by its stable ``public_id``; returns ``(job, created)``.

    ``fields`` are model fields (``name``, ``enabled``, ``retention_count``...); ``schedule``
    holds partial schedule changes (see ``_schedule_changes``); ``storage_name`` names a
    storage as a person would (``backups.services.storages.storage_resolve``);
    ``notifications`` are merged over ``DEFAULT_NOTIFICATIONS``.

    An unknown ``public_id`` is ``SCHEDULE_NOT_FOUND`` unless ``create`` is set (the admin,
    scripts): then the job is created on the tenant's default application (the console's
    components), daily at 02:00 unless a schedule is given. An application has one job, so a second
    one there is ``SCHEDULE_CONFLICT``.
    """
    from backupplatform.errors import NotFound
    from backups.services import application_get_default
    from backups.services.storages import storage_resolve

    changes = dict(fields)
    changes.update(_schedule_changes(schedule or {}))
    if storage_name is not None:
        changes["storage"] = storage_resolve(tenant=tenant, name=storage_name)
    if notifications is not None:
        changes["notifications"] = {**DEFAULT_NOTIFICATIONS, **notifications}
    job = BackupJob.objects.filter(tenant=tenant, public_id=public_id).first()
    if job is not None:
        return job_update(job=job, **changes), False
    if not create:
        raise NotFound(
            f"No schedule '{public_id}' in this workspace",
            code="SCHEDULE_NOT_FOUND",
            details={"schedule_id": public_id},
        )
    changes.setdefault("name", public_id.replace("_", " ").strip().capitalize() or "Schedule")
    if "schedule_type" not in changes:  # the seed's nightly example: daily at 02:00
        changes.update(schedule_type=ScheduleType.DAILY, schedule_time=changes.get("schedule_time") or dt_time(2, 0))
    job = job_create(
        tenant=tenant, actor=actor, public_id=public_id, application=application_get_default(tenant=tenant), **changes
    )
    return job, True


def job_toggle(*, job: BackupJob, enabled: bool) -> BackupJob:
    return job_update(job=job, enabled=enabled)


@transaction.atomic
def job_delete(*, job: BackupJob) -> None:
    """Delete the job; its backups stay (workspace seed: "backups kept")."""
    pk, tenant, name = job.pk, job.tenant, job.name
    job.delete()
    emit(action="job_delete", tenant=tenant, resource_type="backup_job", resource_id=pk, details={"name": name})


# Runs and retention live in .runs and .cleanup; callers know them as services of this app.
from .cleanup import (  # noqa: E402
    POLICY_FIELDS,
    cleanup_analyse,
    cleanup_execute,
    cleanup_run,
    cleanup_tenant_ids,
    cleanup_tenant_jobs,
    job_purge,
    location_retention_apply,
    retention_policy_create,
    retention_policy_delete,
    retention_policy_update,
    scheduled_runs_prune,
)
from .runs import (  # noqa: E402
    job_after_backup,
    job_due_time,
    job_require_idle,
    job_retry_lost_run,
    job_run,
    job_run_scheduled,
)

__all__ = [
    "POLICY_FIELDS",
    "cleanup_analyse",
    "cleanup_execute",
    "cleanup_run",
    "cleanup_tenant_ids",
    "cleanup_tenant_jobs",
    "job_after_backup",
    "job_create",
    "job_delete",
    "job_due_time",
    "job_purge",
    "job_require_idle",
    "job_retry_lost_run",
    "job_run",
    "job_run_scheduled",
    "job_save",
    "job_toggle",
    "job_update",
    "location_retention_apply",
    "retention_policy_create",
    "retention_policy_delete",
    "retention_policy_update",
    "scheduled_runs_prune",
]
