"""Writes of retention: retention policies, and cleanup (dry-run plans and their execution,
per job, per storage location and per tenant). Each records an audit event.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import emit, publish, stored_user
from backupplatform.celery import app
from backupplatform.errors import (
    Conflict,
    DomainError,
    ValidationFailed,
)
from backups.models import (
    Backup,
    BackupCopy,
    BackupStatus,
    Operation,
    OperationKind,
    OperationStatus,
    Storage,
)
from backups.progress import progress_event
from backups.services.backups import backup_delete
from backups.services.copies import copy_remove, primary_copy_ensure
from backups.services.operations import operation_claim, operation_create, operation_finish
from backups.storage import StorageError
from tenants import capabilities
from tenants.models import Tenant

from . import selectors
from .models import BackupJob, CleanupPlan, RetentionPolicy, ScheduledRun
from .retention import BackupInfo, RetentionRules, plan_retention

logger = logging.getLogger(__name__)


# --- retention policies -----------------------------------------------------------------------

POLICY_FIELDS = (
    "name",
    "description",
    "keep_last_n",
    "keep_days",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "min_verified_kept",
)


def _save_policy(policy: RetentionPolicy) -> None:
    try:
        with transaction.atomic():
            policy.save()
    except IntegrityError:
        raise ValidationFailed(details={"name": ["A retention policy with this name already exists."]})


@transaction.atomic
def retention_policy_create(*, tenant: Tenant, **fields: Any) -> RetentionPolicy:
    capabilities.require_feature(tenant)
    policy = RetentionPolicy(tenant=tenant, **{k: v for k, v in fields.items() if k in POLICY_FIELDS})
    _save_policy(policy)
    emit(
        action="retention_policy_create",
        tenant=tenant,
        resource_type="retention_policy",
        resource_id=policy.pk,
        details={k: getattr(policy, k) for k in POLICY_FIELDS if k != "description"},
    )
    return policy


@transaction.atomic
def retention_policy_update(*, policy: RetentionPolicy, **changes: Any) -> RetentionPolicy:
    capabilities.require_feature(policy.tenant)
    for name, value in changes.items():
        if name in POLICY_FIELDS:
            setattr(policy, name, value)
    _save_policy(policy)
    emit(
        action="retention_policy_update",
        tenant=policy.tenant,
        resource_type="retention_policy",
        resource_id=policy.pk,
        details={"changed": sorted(changes)},
    )
    return policy


@transaction.atomic
def retention_policy_delete(*, policy: RetentionPolicy) -> None:
    """Refused (409) while a job uses the policy (db-backup-platform.md)."""
    jobs = selectors.retention_policy_in_use(policy)
    if jobs:
        raise Conflict(
            "The retention policy is used by schedules; change them first",
            code="POLICY_IN_USE",
            details={"schedule_ids": jobs},
        )
    pk, tenant, name = policy.pk, policy.tenant, policy.name
    policy.delete()
    emit(
        action="retention_policy_delete",
        tenant=tenant,
        resource_type="retention_policy",
        resource_id=pk,
        details={"name": name},
    )


# --- cleanup ----------------------------------------------------------------------------------


def _human_bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") or size >= 100 else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


@transaction.atomic
def cleanup_analyse(
    *,
    tenant: Tenant,
    actor: Any = None,
    job: BackupJob | None = None,
    rules: RetentionRules | None = None,
    storage_locations: list[str] | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> CleanupPlan:
    """Dry run: which backups retention would delete, saved as a ``CleanupPlan``.

    Backups are grouped in series (a job's backups, else one application's, else one
    database's) and each series is planned by the retention engine with ``rules`` when
    given (console request) or its job's own rules (jobless series without ``rules``: no
    policy, nothing deleted). ``storage_locations`` (storage names or types) narrows the
    backups considered.
    """
    now = now or timezone.now()
    qs = Backup.objects.filter(tenant=tenant)
    if job is not None:
        qs = qs.filter(job=job)
    wanted: list[int] = []
    if storage_locations:
        storages = list(Storage.objects.filter(tenant=tenant).values_list("pk", "name", "type"))
        wanted = [pk for pk, name, kind in storages if name in storage_locations or kind in storage_locations]
        # A backup counts in a location when a copy of it is there; executing the plan then
        # removes only those locations' copies (the backup row goes with its last copy).
        qs = qs.filter(
            Q(storage_id__in=wanted) | Q(copies__storage_id__in=wanted, copies__status="available")
        ).distinct()
    rows = list(qs.order_by("created_at", "id").values(*selectors.BACKUP_FIELDS))
    jobs = {j.pk: j for j in BackupJob.objects.filter(tenant=tenant).select_related("retention_policy")}
    delete_ids: list[int] = []
    summary = {"total_backups": 0, "eligible_for_removal": 0, "backups_to_keep": 0, "protected_backups": 0}
    sizes = {row["id"]: row["stored_bytes"] for row in rows}
    for key, series in selectors.backup_series(rows).items():
        series_rules = rules
        if series_rules is None:
            owner = jobs.get(key[1]) if key[0] == "job" else None
            series_rules = selectors.rules_for_job(owner) if owner is not None else RetentionRules()
        infos = [
            BackupInfo(
                id=r["id"],
                created_at=r["created_at"],
                status=r["status"],
                verified=r["verified"],
                keep_until=r["keep_until"],
                keep_forever=r["keep_forever"],
            )
            for r in series
        ]
        result = plan_retention(infos, series_rules, now)
        delete_ids.extend(result.delete)
        for name, count in result.summary().items():
            summary[name] += count
    delete_ids.sort()
    freed = sum(sizes[pk] for pk in delete_ids)
    analysis = {**summary, "space_to_free": _human_bytes(freed), "space_to_free_bytes": freed}
    plan = CleanupPlan.objects.create(
        tenant=tenant,
        job=job,
        backup_ids=delete_ids,
        analysis=analysis,
        reason=reason[:500],
        rules={
            "rules": None
            if rules is None
            else {
                k: getattr(rules, k)
                for k in ("keep_last_n", "keep_days", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
            },
            "storage_locations": storage_locations or [],
            "storage_ids": wanted,
            "job_id": job.pk if job else None,
        },
        created_by=stored_user(actor),
    )
    emit(
        action="cleanup_analyse",
        tenant=tenant,
        resource_type="cleanup_plan",
        resource_id=plan.public_id,
        details={**analysis, "reason": reason, "job_id": job.pk if job else None},
    )
    return plan


@transaction.atomic
def cleanup_execute(
    *, plan: CleanupPlan, actor: Any = None, queue: bool = True, notify_on_completion: bool = False
) -> Operation:
    """Start deleting exactly the plan's backups, once, before the plan expires.

    Creates an ``Operation`` of kind ``cleanup`` and queues ``schedules.tasks.run_cleanup``
    after commit (``queue=False``: the caller runs :func:`cleanup_run` itself).
    """

    plan = CleanupPlan.objects.select_for_update().select_related("tenant").get(pk=plan.pk)
    if plan.executed_at is not None:
        raise Conflict(
            "This cleanup plan was already executed; run a new analysis",
            code="CLEANUP_PLAN_ALREADY_EXECUTED",
            details={"cleanup_plan_id": plan.public_id},
        )
    if plan.expires_at <= timezone.now():
        raise Conflict(
            "This cleanup plan has expired; run a new analysis",
            code="CLEANUP_PLAN_EXPIRED",
            details={"cleanup_plan_id": plan.public_id, "expired_at": plan.expires_at.isoformat()},
        )
    op = operation_create(
        tenant=plan.tenant,
        kind=OperationKind.CLEANUP,
        actor=actor,
        details={
            "cleanup_plan_id": plan.public_id,
            "backups_total": len(plan.backup_ids),
            "backups_removed": 0,
            "space_freed_bytes": 0,
            "failed": [],
            "skipped": [],
            "notify_on_completion": notify_on_completion,
        },
    )
    plan.executed_at = timezone.now()
    plan.operation = op
    plan.save(update_fields=["executed_at", "operation"])
    emit(
        action="cleanup_execute",
        tenant=plan.tenant,
        resource_type="cleanup_plan",
        resource_id=plan.public_id,
        details={"operation_id": op.public_id, "backups": len(plan.backup_ids)},
    )
    if queue:
        transaction.on_commit(lambda: app.send_task("schedules.tasks.run_cleanup", args=[op.pk]))
    return op


def cleanup_run(*, operation_id: int) -> Operation | None:
    """Delete the plan's backups one by one (artifact first, then row; an audit event each).

    A backup whose row is gone, or that became protected or active since the analysis, is
    skipped; a storage failure leaves the row and is reported in the operation's
    ``details.failed`` (the cleanup goes on with the others). Idempotent (claimed once).
    """

    op = operation_claim(operation_id=operation_id)
    if op is None:
        return None
    plan = CleanupPlan.objects.filter(operation=op).first()
    ids = list(plan.backup_ids) if plan else []
    storage_ids = list((plan.rules or {}).get("storage_ids") or []) if plan else []
    details = dict(op.details)
    now = timezone.now()
    removed = freed = 0
    failed: list[dict] = []
    skipped: list[dict] = []
    for index, pk in enumerate(ids, start=1):
        backup = Backup.objects.select_related("storage", "tenant").filter(pk=pk, tenant_id=op.tenant_id).first()
        if backup is None:
            skipped.append({"backup_id": pk, "reason": "already deleted"})
        elif backup.status in (BackupStatus.PENDING, BackupStatus.RUNNING):
            skipped.append({"backup_id": pk, "reason": f"now {backup.status}"})
        elif backup.keep_forever or (backup.keep_until is not None and backup.keep_until > now):
            skipped.append({"backup_id": pk, "reason": "now protected"})
        else:
            try:
                reason = f"retention cleanup {details.get('cleanup_plan_id')}"
                if storage_ids:  # only the copies in the plan's locations
                    freed += _remove_copies(backup, storage_ids, reason)
                else:
                    freed += backup_delete(backup=backup, reason=reason)
                removed += 1
            except Conflict as exc:
                failed.append({"backup_id": pk, "error": exc.message})
        op.progress = int(index * 100 / len(ids))
        op.step = "deleting_backups"
        details.update(backups_removed=removed, space_freed_bytes=freed, failed=failed, skipped=skipped)
        op.details = details
        op.errors = len(failed)
        Operation.objects.filter(pk=op.pk).update(
            progress=op.progress, step=op.step, details=details, errors=op.errors, heartbeat_at=timezone.now()
        )
        publish(tenant_id=op.tenant_id, event=progress_event(op))
    details["space_freed"] = _human_bytes(freed)
    op.errors = 0  # operation_finish counts the error message once more
    operation_finish(
        op=op,
        status=OperationStatus.COMPLETED if not failed else OperationStatus.FAILED,
        error=f"{len(failed)} backup(s) could not be deleted" if failed else "",
        details=details,
        step="completed" if not failed else "completed_with_errors",
    )
    Operation.objects.filter(pk=op.pk).update(errors=len(failed), warnings=len(skipped))
    emit(
        action="cleanup_complete",
        tenant=op.tenant,
        resource_type="operation",
        resource_id=op.public_id,
        details={"removed": removed, "space_freed_bytes": freed, "failed": len(failed), "skipped": len(skipped)},
    )
    publish(
        tenant_id=op.tenant_id,
        stream="notifications",
        event={
            "type": "cleanup_completed" if not failed else "storage_alert",
            "cleanup_id": op.public_id,
            "removed": removed,
            "failed": len(failed),
            "space_freed": details["space_freed"],
        },
    )
    op.refresh_from_db()
    return op


def _remove_copies(backup: Backup, storage_ids: list[int], reason: str) -> int:

    primary_copy_ensure(backup=backup)
    freed = 0
    for storage in Storage.objects.filter(
        pk__in=BackupCopy.objects.filter(backup=backup, storage_id__in=storage_ids).values("storage_id")
    ).order_by("pk"):
        if not Backup.objects.filter(pk=backup.pk).exists():
            break
        backup.refresh_from_db()
        freed += copy_remove(backup=backup, storage=storage, reason=reason)
    return freed


def location_retention_apply(*, storage: Storage, actor: Any = None) -> Operation | None:
    """Apply ``storage``'s own retention (``Storage.retention``) to the copies it holds, in
    this process: e.g. 7 daily copies on local disk while S3 keeps 12 monthly. Other
    locations' copies are untouched; a backup goes only with its last copy."""
    rules = selectors.rules_for_storage(storage)
    if not rules.has_rules:
        return None
    plan = cleanup_analyse(
        tenant=storage.tenant,
        actor=actor,
        rules=rules,
        storage_locations=[storage.name],
        reason=f"retention of storage {storage.name}",
    )
    if not plan.backup_ids:
        return None
    op = cleanup_execute(plan=plan, actor=actor, queue=False)
    return cleanup_run(operation_id=op.pk)


def job_purge(*, job: BackupJob, actor: Any = None) -> Operation | None:
    """Apply the job's retention now, in this process (``auto_purge``, the daily task, CLI)."""
    plan = cleanup_analyse(tenant=job.tenant, actor=actor, job=job, reason="retention")
    if not plan.backup_ids:
        return None
    op = cleanup_execute(plan=plan, actor=actor, queue=False)
    return cleanup_run(operation_id=op.pk)


def cleanup_tenant_ids() -> list[int]:
    """The tenants the daily retention visits (those with backup jobs or storages with a
    retention of their own), one task each."""
    with_jobs = set(BackupJob.objects.values_list("tenant_id", flat=True))
    with_storage_rules = set(Storage.objects.exclude(retention={}).values_list("tenant_id", flat=True))
    return sorted(with_jobs | with_storage_rules)


def _safe_error(exc: BaseException) -> str:
    """What an audit event may say about a failure: the platform's own messages (written to
    be shown), otherwise only the exception's class (a library's text may carry an address)."""

    if isinstance(exc, DomainError | StorageError):
        return (getattr(exc, "message", None) or str(exc))[:500]
    return exc.__class__.__name__


def cleanup_tenant_jobs(*, tenant: Tenant) -> dict[str, int]:
    """The daily retention of one tenant: apply every job's rules (jobs without any rule
    delete nothing). A job whose retention fails is logged, recorded (audit
    ``retention_failed``) and reported on the tenant's notifications; the others go on."""
    jobs = removed = failed = errors = 0
    for job in BackupJob.objects.filter(tenant=tenant).select_related("tenant", "retention_policy").order_by("pk"):
        try:
            if not selectors.rules_for_job(job).has_rules:
                continue
            jobs += 1
            op = job_purge(job=job)
        except Exception as exc:  # recorded below; one job's broken retention stops no other job
            errors += 1
            logger.exception("retention of job %s (%s) of tenant %s failed", job.pk, job.name, tenant.slug)
            emit(
                action="retention_failed",
                tenant=tenant,
                resource_type="backup_job",
                resource_id=job.pk,
                details={"job": job.name, "error": _safe_error(exc)},
            )
            publish(
                tenant_id=tenant.pk,
                stream="notifications",
                event={
                    "type": "notification",
                    "level": "error",
                    "message": f"Retention cleanup of {job.name} failed",
                    "details": {"job_id": job.pk, "error": _safe_error(exc)},
                },
            )
            continue
        if op is not None:
            removed += op.details.get("backups_removed", 0)
            failed += len(op.details.get("failed", []))
    # Storages with their own retention: each removes its own copies of this tenant's backups.
    for storage in Storage.objects.filter(tenant=tenant).exclude(retention={}).select_related("tenant").order_by("pk"):
        try:
            op = location_retention_apply(storage=storage)
        except Exception as exc:  # as for jobs: recorded, the other locations go on
            errors += 1
            logger.exception("retention of storage %s of tenant %s failed", storage.pk, tenant.slug)
            emit(
                action="retention_failed",
                tenant=tenant,
                resource_type="storage",
                resource_id=storage.pk,
                details={"storage": storage.name, "error": _safe_error(exc)},
            )
            continue
        if op is not None:
            removed += op.details.get("backups_removed", 0)
            failed += len(op.details.get("failed", []))
    logger.info(
        "retention cleanup of tenant %s: %d job(s), %d backup(s) removed, %d failure(s), %d error(s)",
        tenant.slug,
        jobs,
        removed,
        failed,
        errors,
    )
    return {"jobs": jobs, "removed": removed, "failed": failed, "errors": errors}


def scheduled_runs_prune(*, older_than: timedelta = timedelta(days=30)) -> int:
    """Forget due-time claims older than any dispatch could be (they only stop duplicates)."""
    deleted, _ = ScheduledRun.objects.filter(scheduled_for__lt=timezone.now() - older_than).delete()
    return deleted
