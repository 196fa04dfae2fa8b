"""Runs of backup jobs: now (by hand or API), when beat finds them due (once per due time,
whatever the number of beat or worker processes), again after a lost run, and what a job
records when its backup ends."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import emit, publish
from backupplatform.errors import (
    Conflict,
    FeatureNotAvailable,
    TooManyOperations,
)
from backupplatform.isotime import utc_now_iso
from backups.models import (
    Backup,
    BackupTrigger,
    Operation,
    OperationKind,
)
from backups.services.backups import backup_start
from tenants import capabilities

from . import selectors
from .beat import celery_priority
from .models import BackupJob, ScheduledRun
from .tasks import purge_job
from .timing import cron_next_runs

logger = logging.getLogger(__name__)

COMPRESSIONS = ("gzip", "zstd", "none")


def job_require_idle(*, job: BackupJob, starting: bool = False) -> None:
    """workspace-backup-api.md 409 ``BACKUP_IN_PROGRESS`` while a run of the job is going;
    the message says what was refused: changing the job, or ``starting`` another run."""
    op = selectors.job_active_operation(job)
    if op is None:
        return
    avg = selectors.job_average_duration(job)
    started = op.started_at or op.created_at
    message = (
        f"A backup of this policy is already running (backup {op.backup_id}); wait for it to finish"
        if starting
        else "Cannot modify backup policy while backup is running"
    )
    raise Conflict(
        message,
        code="BACKUP_IN_PROGRESS",
        details={
            "current_backup_id": op.backup_id,
            "estimated_completion": (started + avg).isoformat() if avg else None,
        },
    )


def _compression(job: BackupJob) -> str:
    """The job's ``options.compression``: ``false`` none, a name that compression, ``true``
    gzip (a workspace policy's boolean: workspace-backup-api.md's manifests say gzip, and a
    gzip artifact downloads as tar.gz without re-compressing), absent zstd."""
    value = (job.options or {}).get("compression")
    if value is False:
        return "none"
    if value is True:
        return "gzip"
    if isinstance(value, str) and value in COMPRESSIONS:
        return value
    return "zstd"


def job_run(
    *,
    job: BackupJob,
    actor: Any = None,
    trigger: str = BackupTrigger.MANUAL,
    backup_type: str | None = None,
    description: str = "",
    keep_until: datetime | None = None,
    keep_forever: bool = False,
    options: dict | None = None,
    queue: bool = True,
) -> Operation | None:
    """Start one run of ``job`` through the backup service.

    Runs of one job never overlap: the job row is locked and, when the job already has a
    pending or running backup, a scheduled run is skipped (audit ``job_run_skipped`` + a log
    line, returns ``None``) and a manual run is refused (409 ``BACKUP_IN_PROGRESS``).
    """
    capabilities.require_feature(job.tenant)

    with transaction.atomic():
        job = (
            BackupJob.objects.select_for_update(of=("self",))
            .select_related("tenant", "server", "application", "storage")
            .get(pk=job.pk)
        )
        active = selectors.job_active_operation(job)
        if active is not None:
            if trigger == BackupTrigger.SCHEDULED:
                logger.warning(
                    "job %s (%s): run skipped, backup %s is still %s", job.pk, job.name, active.backup_id, active.status
                )
                emit(
                    action="job_run_skipped",
                    tenant=job.tenant,
                    resource_type="backup_job",
                    resource_id=job.pk,
                    details={
                        "reason": "previous run still active",
                        "backup_id": active.backup_id,
                        "operation_id": active.public_id,
                    },
                )
                return None
            job_require_idle(job=job, starting=True)
        op = backup_start(
            tenant=job.tenant,
            actor=actor,
            server=job.server,
            database_name=job.database_name,
            application=job.application,
            components=job.components or None,
            storage=job.storage,
            job=job,
            compression=_compression(job),
            backup_type=backup_type or job.backup_type,
            trigger=trigger,
            description=description,
            keep_until=keep_until,
            keep_forever=keep_forever,
            options={**(job.options or {}), **(options or {})},
            queue=queue,
            priority=celery_priority(job.priority),
        )
        BackupJob.objects.filter(pk=job.pk).update(last_run_at=timezone.now())
        emit(
            action="job_run",
            tenant=job.tenant,
            resource_type="backup_job",
            resource_id=job.pk,
            details={"trigger": trigger, "backup_id": op.backup_id, "operation_id": op.public_id},
        )
    publish(
        tenant_id=job.tenant_id,
        stream="notifications",
        event={
            "type": "schedule_event",
            "schedule_id": job.public_id,
            "event": "started",
            "backup_id": op.backup_id,
            "timestamp": utc_now_iso(micro=True),
        },
    )
    return op


# How far back the latest due time of a job is looked for: a minute job finds it in the
# first window, a yearly one in the last.
_DUE_WINDOWS = (
    timedelta(minutes=2),
    timedelta(hours=2),
    timedelta(days=2),
    timedelta(days=35),
    timedelta(days=370),
    timedelta(days=5 * 366),
)


def job_due_time(job: BackupJob, *, now: datetime) -> datetime:
    """The due time a dispatch of ``job`` at ``now`` belongs to: its latest run time <= now.

    Beat sends the job's ``run_job`` when a run time passes; the dispatch handles that run
    time, so two dispatches of the same run time (beat restarted around it), or a late
    one, compute the same value. Falls back to ``now`` (to the minute) for a job whose
    expression yields nothing (it cannot be dispatched by beat then anyway).
    """
    if job.cron_expression:
        for window in _DUE_WINDOWS:
            try:
                runs = cron_next_runs(job.cron_expression, job.timezone or "UTC", now - window, 64)
            except ValueError:
                break
            due = [run for run in runs if run <= now]
            if due:
                return due[-1]
    return now.replace(second=0, microsecond=0)


def job_run_scheduled(*, job_id: int, scheduled_for: datetime | None = None) -> Operation | None:
    """What beat's ``run_job`` task does: run an enabled job once per due time.

    The first dispatch of a due time claims it (``ScheduledRun``, unique per job and due
    time) in the transaction that starts the backup; any later dispatch of the same due
    time does nothing but log it, even after the first run finished. A run skipped because
    the previous one is still active, or the tenant is at its cap, also uses up its due time.
    """
    job = BackupJob.objects.select_related("tenant").filter(pk=job_id).first()
    if job is None or not job.enabled:
        logger.info("job %s is gone or disabled; scheduled run ignored", job_id)
        return None
    due = scheduled_for or job_due_time(job, now=timezone.now())
    with transaction.atomic():
        try:
            with transaction.atomic():
                claim = ScheduledRun.objects.create(tenant=job.tenant, job=job, scheduled_for=due)
        except IntegrityError:
            logger.warning(
                "job %s (%s): run due at %s was already dispatched; duplicate ignored",
                job.pk,
                job.name,
                due.isoformat(),
            )
            return None
        try:
            op = job_run(job=job, trigger=BackupTrigger.SCHEDULED)
        except (TooManyOperations, FeatureNotAvailable) as exc:
            logger.warning("job %s: run skipped, %s", job.pk, exc.message)
            emit(
                action="job_run_skipped",
                tenant=job.tenant,
                resource_type="backup_job",
                resource_id=job.pk,
                details={"reason": exc.message, "scheduled_for": due.isoformat()},
            )
            op = None
        ScheduledRun.objects.filter(pk=claim.pk).update(outcome="started" if op else "skipped", operation=op)
    return op


def job_retry_lost_run(*, backup: Backup) -> Operation | None:
    """Run a job once more after its scheduled backup was lost with its worker (reaped).

    Only scheduled runs are retried (a manual run is the user's to repeat), and only once:
    the retry records ``retry_of`` in its options and a lost retry is not retried again.
    """
    if backup.trigger != BackupTrigger.SCHEDULED or not backup.job_id:
        return None
    lost = Operation.objects.filter(backup=backup, kind=OperationKind.BACKUP).order_by("-created_at").first()
    if lost is not None and ((lost.details or {}).get("options") or {}).get("retry_of"):
        logger.warning("backup %s was already a retry; job %s is not retried again", backup.pk, backup.job_id)
        return None
    job = BackupJob.objects.select_related("tenant").filter(pk=backup.job_id).first()
    if job is None or not job.enabled:
        return None
    try:
        op = job_run(
            job=job,
            trigger=BackupTrigger.SCHEDULED,
            options={"retry_of": backup.pk},
            description=f"Retry of backup {backup.pk}, lost when its worker stopped",
        )
    except TooManyOperations as exc:
        logger.warning("job %s: retry of backup %s skipped, %s", job.pk, backup.pk, exc.message)
        op = None
    emit(
        action="job_run_retry",
        tenant=job.tenant,
        resource_type="backup_job",
        resource_id=job.pk,
        details={
            "lost_backup_id": backup.pk,
            "backup_id": op.backup_id if op else None,
            "operation_id": op.public_id if op else None,
        },
    )
    return op


def job_after_backup(*, backup: Backup) -> None:
    """Called by ``schedules.hooks`` when a job's backup completed: record the run; with
    ``auto_purge`` queue the job's retention cleanup (after commit, in a worker)."""
    job = BackupJob.objects.filter(pk=backup.job_id).first()
    if job is None:
        return
    ran_at = backup.started_at or backup.created_at
    BackupJob.objects.filter(pk=job.pk).filter(Q(last_run_at__isnull=True) | Q(last_run_at__lt=ran_at)).update(
        last_run_at=ran_at
    )
    if job.auto_purge:
        transaction.on_commit(lambda: purge_job.delay(job.pk))
