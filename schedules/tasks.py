"""Celery tasks of the schedules domain: thin, take ids, call one service."""

from __future__ import annotations

from datetime import UTC, datetime

from celery import shared_task


@shared_task(name="schedules.tasks.run_job", ignore_result=True, soft_time_limit=120, time_limit=180)
def run_job(job_id: int, scheduled_for: str | None = None) -> int | None:
    """Sent by beat (the job's ``PeriodicTask``): start the run of the job due now, once.

    ``scheduled_for`` (ISO 8601) names the due time; beat leaves it out and the service
    takes the job's latest run time. A second dispatch of the same due time does nothing.
    """
    from schedules.services import job_run_scheduled

    due = None
    if scheduled_for:
        due = datetime.fromisoformat(scheduled_for)
        if due.tzinfo is None:
            due = due.replace(tzinfo=UTC)
    op = job_run_scheduled(job_id=job_id, scheduled_for=due)
    return op.pk if op is not None else None


@shared_task(name="schedules.tasks.run_cleanup", ignore_result=True, acks_late=True)
def run_cleanup(operation_id: int) -> None:
    """Delete the backups of an executed cleanup plan (``Operation`` of kind ``cleanup``)."""
    from backups.services.operations import OperationHeartbeat
    from schedules.services import cleanup_run

    with OperationHeartbeat(operation_id):
        cleanup_run(operation_id=operation_id)


@shared_task(name="schedules.tasks.purge_job", ignore_result=True, soft_time_limit=3600, time_limit=3700)
def purge_job(job_id: int) -> None:
    """``auto_purge``: apply one job's retention after a successful run."""
    from schedules.models import BackupJob
    from schedules.services import job_purge

    job = BackupJob.objects.select_related("tenant", "retention_policy").filter(pk=job_id).first()
    if job is not None:
        job_purge(job=job)


@shared_task(name="schedules.tasks.cleanup_all", ignore_result=True, soft_time_limit=300, time_limit=360)
def cleanup_all() -> int:
    """Daily (CELERY_BEAT_SCHEDULE): queue one retention task per tenant with retention rules,
    so one tenant's failure (or slow storage) delays or stops no other tenant."""
    from schedules.services import cleanup_tenant_ids, scheduled_runs_prune

    scheduled_runs_prune()
    tenant_ids = cleanup_tenant_ids()
    for tenant_id in tenant_ids:
        cleanup_tenant.delay(tenant_id)
    return len(tenant_ids)


@shared_task(
    name="schedules.tasks.cleanup_tenant",
    ignore_result=True,
    acks_late=True,
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 300,
)
def cleanup_tenant(tenant_id: int) -> dict[str, int] | None:
    """Apply the retention of every job of one tenant; each job's failure is recorded
    (log, audit ``retention_failed``, a notification) and the other jobs go on."""
    from schedules.services import cleanup_tenant_jobs
    from tenants.models import Tenant

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return None
    return cleanup_tenant_jobs(tenant=tenant)


@shared_task(
    name="schedules.tasks.run_scheduled_drill", ignore_result=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300
)
def run_scheduled_drill(job_id: int, scheduled_for: str) -> int | None:
    """Sent by beat when a job's drill is due: create its drill (once per due time) and run it."""
    from schedules.drills import drill_run_scheduled

    due = datetime.fromisoformat(scheduled_for)
    if due.tzinfo is None:
        due = due.replace(tzinfo=UTC)
    drill = drill_run_scheduled(job_id=job_id, scheduled_for=due)
    return drill.pk if drill is not None else None


@shared_task(name="schedules.tasks.run_drill", ignore_result=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def run_drill(drill_id: int) -> None:
    """Run a drill started by hand (API, admin); a second delivery finds it claimed."""
    from schedules.drills import drill_run

    drill_run(drill_id=drill_id)


@shared_task(name="schedules.tasks.reap_drills", ignore_result=True, soft_time_limit=600, time_limit=660)
def reap_drills() -> list[int]:
    """Beat (every minute): fail drills whose worker died and drop their scratch copies."""
    from schedules.drills import drill_reap

    return drill_reap()
