"""Restore drills: prove, on a schedule, that a job's latest backup restores and holds what it should.

A drill takes the job's latest completed backup, restores it into scratch copies
(``backups.services.scratch``: a new database named by the platform on the backup's server or
the job's scratch server, a scratch folder inside the workspace's folders), checks the
artifact's SHA-256 while it streams, runs the job's assertions (row counts, SQL checks, file
checksums), measures

- **RTO**, the time to restore: from opening the artifact to the restored copy being ready;
- **RPO**, the age of the restored data at drill time: drill start minus the time the backup
  read its data (its ``started_at``);

drops the scratch copies whatever happened, and keeps a ``Drill`` row as evidence.

Scheduling: a job's ``drill_cron_expression`` (its timezone) sets ``drill_next_run_at``, which
beat's dispatcher (``schedules.beat.dispatch_due_drills``) takes like due jobs and sends
``schedules.tasks.run_scheduled_drill``; the drill row is unique per job and due time.

Outcome: a passed drill marks the backup ``verified`` (the retention safety net keeps the
newest verified backups); a failed one clears it, so the net moves to an older backup that
did pass, and records ``drill_failed``, which notifies like a failed backup (event
``drill.failed``, the job's ``on_failure`` switch).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import emit, publish, stored_user
from backupplatform.celery import app
from backupplatform.errors import Conflict, NotFound, ValidationFailed
from backups.models import Backup, BackupStatus, Server, ServerType
from backups.services.operations import OperationHeartbeat
from backups.services.scratch import (
    ScratchCopy,
    ScratchError,
    assertions_run,
    assertions_validate,
    new_token,
    scratch_discard,
    scratch_restore,
)
from tenants import capabilities
from tenants.models import Tenant

from . import beat
from .models import BackupJob, Drill, DrillStatus
from .timing import validate_cron

logger = logging.getLogger(__name__)

_UNSET: Any = object()
#: A drill still pending this long after it was created never got a worker (``drill_reap``).
PENDING_TIMEOUT = timedelta(hours=12)


def _latest_backup(job: BackupJob) -> Backup | None:
    return (
        Backup.objects.filter(job=job, status=BackupStatus.COMPLETED)
        .select_related("tenant", "server", "storage", "application")
        .order_by("-created_at", "-id")
        .first()
    )


ADMIN_FIELDS = {
    "cron_expression": "drill_cron_expression",
    "assertions": "drill_assertions",
    "scratch_server": "drill_server",
}


def _check_cron(value: str | None, field: str) -> str:
    cron = (value or "").strip()
    if cron:
        try:
            cron = validate_cron(cron)
        except ValueError as exc:
            raise ValidationFailed(details={field: [str(exc)]}) from None
    return cron


def _check_server(job: BackupJob, server: Server | None, field: str) -> None:
    if server is None:
        return
    if server.tenant_id != job.tenant_id:
        raise NotFound("Server not found", code="SERVER_NOT_FOUND")
    if server.type not in (ServerType.POSTGRESQL, ServerType.MYSQL):
        raise ValidationFailed(details={field: ["A PostgreSQL or MySQL/MariaDB server."]})
    if job.db_type and server.type != job.db_type:
        raise ValidationFailed(
            details={
                field: [f"This job backs up a {job.db_type} database; its drills restore into a {job.db_type} server."]
            }
        )


def drill_check(
    *,
    job: BackupJob,
    cron_expression: str | None = None,
    assertions: Any = None,
    scratch_server: Server | None = None,
    tenant_id: int | None = None,
) -> None:
    """Validate drill settings without saving (admin forms); errors name the model fields."""
    if tenant_id is not None and job.tenant_id is None:
        job.tenant_id = tenant_id
    _check_cron(cron_expression, ADMIN_FIELDS["cron_expression"])
    assertions_validate(assertions, field_name=ADMIN_FIELDS["assertions"])
    _check_server(job, scratch_server, ADMIN_FIELDS["scratch_server"])


@transaction.atomic
def drill_configure(
    *,
    job: BackupJob,
    cron_expression: str | None = _UNSET,
    assertions: Any = _UNSET,
    scratch_server: Server | None = _UNSET,
    aliases: dict | None = None,
) -> BackupJob:
    """Set a job's drill schedule (cron in the job's timezone, ``""``: none), assertions and
    scratch server; only what is given changes. ``drill_next_run_at`` follows."""
    capabilities.require_feature(job.tenant)
    aliases = aliases or {}
    job = BackupJob.objects.select_for_update(of=("self",)).select_related("tenant", "server").get(pk=job.pk)
    changed: list[str] = []
    if cron_expression is not _UNSET:
        job.drill_cron_expression = _check_cron(cron_expression, aliases.get("cron_expression", "cron_expression"))
        changed.append("drill_cron_expression")
    if assertions is not _UNSET:
        job.drill_assertions = assertions_validate(assertions, field_name=aliases.get("assertions", "assertions"))
        changed.append("drill_assertions")
    if scratch_server is not _UNSET:
        _check_server(job, scratch_server, aliases.get("scratch_server", "scratch_server_id"))
        job.drill_server = scratch_server
        changed.append("drill_server")
    job.save(update_fields=[*changed, "updated_at"])
    beat.drill_schedule(job=job)
    emit(
        action="drill_configure",
        tenant=job.tenant,
        resource_type="backup_job",
        resource_id=job.pk,
        details={
            "changed": changed,
            "cron": job.drill_cron_expression,
            "assertions": len(job.drill_assertions),
            "scratch_server_id": job.drill_server_id,
        },
    )
    return job


def _queue(drill: Drill) -> None:

    transaction.on_commit(lambda: app.send_task("schedules.tasks.run_drill", args=[drill.pk]))


@transaction.atomic
def drill_start(
    *, tenant: Tenant, job: BackupJob, actor: Any = None, backup: Backup | None = None, queue: bool = True
) -> Drill:
    """Start a drill of ``job`` now (its latest completed backup, or ``backup`` of that job).
    ``queue=False``: the caller runs :func:`drill_run` itself (the CLI)."""
    capabilities.require_feature(tenant)
    if job.tenant_id != tenant.pk:
        raise NotFound("Schedule not found", code="SCHEDULE_NOT_FOUND")
    if backup is not None and (backup.tenant_id != tenant.pk or backup.job_id != job.pk):
        raise NotFound("Backup not found", code="BACKUP_NOT_FOUND")
    if backup is not None and backup.status != BackupStatus.COMPLETED:
        raise Conflict(
            f"Only completed backups can be drilled (this one is {backup.status})", code="BACKUP_NOT_COMPLETED"
        )
    backup = backup or _latest_backup(job)
    if backup is None:
        raise Conflict(
            "This job has no completed backup to drill yet", code="NO_BACKUP_TO_DRILL", details={"schedule_id": job.pk}
        )
    drill = _create(job=job, backup=backup, trigger="manual", actor=actor)
    emit(
        action="drill_create",
        tenant=tenant,
        resource_type="drill",
        resource_id=drill.pk,
        details={"job_id": job.pk, "backup_id": backup.pk},
    )
    if queue:
        _queue(drill)
    return drill


def _create(
    *, job: BackupJob, backup: Backup | None, trigger: str, actor: Any = None, scheduled_for: datetime | None = None
) -> Drill:
    return Drill.objects.create(
        tenant_id=job.tenant_id,
        job=job,
        job_name=job.name,
        backup=backup,
        backup_ref=backup.pk if backup else None,
        backup_checksum=backup.checksum if backup else "",
        backup_taken_at=(backup.started_at or backup.created_at) if backup else None,
        trigger=trigger,
        scheduled_for=scheduled_for,
        created_by=stored_user(actor),
    )


def drill_run_scheduled(*, job_id: int, scheduled_for: datetime) -> Drill | None:
    """What beat's ``run_scheduled_drill`` does: one drill per job and due time, run here.
    A job without a completed backup gets a failed drill (and its notification)."""
    job = BackupJob.objects.select_related("tenant").filter(pk=job_id).first()
    if job is None or not job.enabled or not job.drill_cron_expression:
        logger.info("job %s is gone, disabled or has no drill schedule; drill ignored", job_id)
        return None
    backup = _latest_backup(job)
    try:
        with transaction.atomic():
            drill = _create(job=job, backup=backup, trigger="scheduled", scheduled_for=scheduled_for)
    except IntegrityError:
        logger.warning(
            "job %s: drill due at %s was already dispatched; duplicate ignored", job.pk, scheduled_for.isoformat()
        )
        return None
    return drill_run(drill_id=drill.pk)


def drill_run(*, drill_id: int) -> Drill | None:
    """Run a pending drill once (claimed ``pending`` -> ``running``); ``None`` when another
    worker has it. Never raises for what the drill finds: the row says it."""
    now = timezone.now()
    if not Drill.objects.filter(pk=drill_id, status=DrillStatus.PENDING).update(
        status=DrillStatus.RUNNING, started_at=now, heartbeat_at=now
    ):
        return None
    with DrillHeartbeat(drill_id):
        return _run(drill_id, now)


class DrillHeartbeat(OperationHeartbeat):
    """Beats on the drill's row while this process runs it (see ``drill_reap``)."""

    model = Drill


def _run(drill_id: int, now: datetime) -> Drill:
    drill = Drill.objects.select_related(
        "tenant",
        "job",
        "job__drill_server",
        "backup",
        "backup__tenant",
        "backup__server",
        "backup__storage",
        "backup__application",
    ).get(pk=drill_id)
    drill.started_at = now
    backup, job = drill.backup, drill.job
    if backup is None or backup.status != BackupStatus.COMPLETED:
        return _finish(
            drill,
            error="The job has no completed backup to drill"
            if drill.backup_ref is None
            else f"Backup {drill.backup_ref} is gone or no longer completed",
        )
    if drill.backup_taken_at:
        drill.rpo_seconds = round((now - drill.backup_taken_at).total_seconds(), 3)
    # The scratch copy's names, recorded before it exists: a worker killed meanwhile leaves
    # names that drill_reap finds.
    token, label = new_token(), f"drill-{drill.pk}"
    drill.scratch = {"token": token, "label": label, "server_id": job.drill_server_id if job else None}
    Drill.objects.filter(pk=drill.pk).update(scratch=drill.scratch)
    copy = ScratchCopy(backup=backup)
    results: list[dict] = []
    error = ""
    judged = True  # whether the outcome says something about the backup (not about the platform)
    try:
        assertions = assertions_validate(job.drill_assertions if job else [])
    except ValidationFailed:  # saved before a rule tightened: the job's settings, not the backup
        return _finish(drill, error="The job's drill assertions are no longer valid; save them again")
    try:
        with scratch_restore(
            backup=backup, scratch_server=job.drill_server if job else None, label=label, copy=copy, token=token
        ):
            results.append(
                {
                    "type": "checksum",
                    "expect": backup.checksum,
                    "actual": copy.checksum,
                    "passed": bool(copy.checksum_matches),
                    "error": None
                    if copy.checksum_matches
                    else "The stored artifact does not match its recorded checksum",
                }
            )
            results += assertions_run(copy, assertions)
    except ScratchError as exc:  # nowhere to restore: the platform's problem, not the backup's
        error, judged = str(exc), False
    except Exception as exc:  # the restore failed: that is what the drill found
        error = (getattr(exc, "message", None) or str(exc) or exc.__class__.__name__)[:2000]
        logger.warning("drill %s of backup %s failed: %s", drill.pk, backup.pk, error)
    drill.rto_seconds = copy.restore_seconds
    drill.checksum_verified = copy.checksum_matches
    drill.assertions = results
    drill.scratch = {**drill.scratch, **copy.describe()}
    if not error and not all(r["passed"] for r in results):
        failed = [r for r in results if not r["passed"]]
        error = (
            f"{len(failed)} of {len(results)} assertion(s) failed: "
            + "; ".join(f"{r['type']} {r.get('table') or r.get('path') or r.get('sql') or ''}".strip() for r in failed)[
                :1500
            ]
        )
    if copy.cleanup_errors:  # a scratch copy left behind fails the drill (someone must remove it)
        judged = judged and bool(error)
        error = "; ".join(
            filter(None, [error, "The scratch copy could not be removed: " + "; ".join(copy.cleanup_errors)])
        )
    return _finish(drill, error=error, judged=judged)


def _finish(drill: Drill, *, error: str, judged: bool = False) -> Drill:
    now = timezone.now()
    passed = not error
    drill.status = DrillStatus.PASSED if passed else DrillStatus.FAILED
    drill.passed, drill.error_message, drill.completed_at = passed, error, now
    if drill.started_at:
        drill.duration_seconds = round((now - drill.started_at).total_seconds(), 3)
    with transaction.atomic():
        drill.save(
            update_fields=[
                "status",
                "passed",
                "error_message",
                "completed_at",
                "duration_seconds",
                "rto_seconds",
                "rpo_seconds",
                "checksum_verified",
                "assertions",
                "scratch",
            ]
        )
        if drill.backup_id:
            # The latest proof wins: the retention safety net counts verified backups only.
            if passed:
                Backup.objects.filter(pk=drill.backup_id).update(verified=True, verified_at=now)
            elif judged:
                Backup.objects.filter(pk=drill.backup_id).update(verified=False)
        details = {
            "job_id": drill.job_id,
            "name": drill.job_name,
            "backup_id": drill.backup_ref,
            "passed": passed,
            "rto_seconds": drill.rto_seconds,
            "rpo_seconds": drill.rpo_seconds,
            "failed_assertions": sum(1 for r in drill.assertions if not r.get("passed")),
            "error": error,
        }
        emit(
            action="drill_completed" if passed else "drill_failed",
            tenant=drill.tenant,
            resource_type="drill",
            resource_id=drill.pk,
            details=details,
        )
        publish(
            tenant_id=drill.tenant_id,
            event={"type": "drill_completed" if passed else "drill_failed", "drill_id": drill.pk, **details},
        )
    return drill


def drill_reap(*, now: datetime | None = None) -> list[int]:
    """Fail running drills whose worker died (no heartbeat for ``OPERATION_HEARTBEAT_TIMEOUT``
    seconds) and drop the scratch copies they may have left. Beat runs it every minute
    (``schedules.tasks.reap_drills``); the failure is notified like any failed drill."""
    from django.conf import settings

    now = now or timezone.now()
    stale = now - timedelta(seconds=getattr(settings, "OPERATION_HEARTBEAT_TIMEOUT", 60))
    reaped: list[int] = []
    for drill in Drill.objects.filter(status=DrillStatus.RUNNING, heartbeat_at__lt=stale).select_related(
        "tenant", "backup", "backup__tenant", "backup__server", "backup__application"
    ):
        # Claimed again: only one reaper fails it, and never a drill that just beat.
        if not Drill.objects.filter(pk=drill.pk, status=DrillStatus.RUNNING, heartbeat_at__lt=stale).update(
            status=DrillStatus.FAILED, completed_at=now
        ):
            continue
        scratch = dict(drill.scratch or {})
        error = "The worker running this drill stopped before it finished"
        if drill.backup is not None and scratch.get("token"):
            server = Server.objects.filter(tenant_id=drill.tenant_id, pk=scratch.get("server_id")).first()
            copy = scratch_discard(
                backup=drill.backup,
                scratch_server=server,
                token=scratch["token"],
                label=scratch.get("label") or f"drill-{drill.pk}",
            )
            scratch.update(copy.describe())
            if copy.cleanup_errors:
                error += "; the scratch copy could not be removed: " + "; ".join(copy.cleanup_errors)
        else:
            scratch["dropped"] = True
        drill.scratch = scratch
        _finish(drill, error=error)
        logger.warning("drill %s: worker lost; failed and its scratch copy discarded", drill.pk)
        reaped.append(drill.pk)
    # Drills whose task never ran (the broker lost it, the worker died before claiming it).
    lost = now - PENDING_TIMEOUT
    for drill in Drill.objects.filter(status=DrillStatus.PENDING, created_at__lt=lost).select_related("tenant"):
        if Drill.objects.filter(pk=drill.pk, status=DrillStatus.PENDING).update(status=DrillStatus.RUNNING):
            _finish(drill, error="The drill never started (its task was lost); start it again")
            reaped.append(drill.pk)
    return reaped
