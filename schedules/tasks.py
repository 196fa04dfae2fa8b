"""Celery tasks of the schedules domain: thin, take ids, call one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="schedules.tasks.run_job", ignore_result=True, soft_time_limit=120, time_limit=180)
def run_job(job_id: int) -> int | None:
    """Sent by beat (the job's ``PeriodicTask``): start one run of the job, unless one is active."""
    from schedules.services import job_run_scheduled

    op = job_run_scheduled(job_id=job_id)
    return op.pk if op is not None else None


@shared_task(name="schedules.tasks.run_cleanup", ignore_result=True, acks_late=True)
def run_cleanup(operation_id: int) -> None:
    """Delete the backups of an executed cleanup plan (``Operation`` of kind ``cleanup``)."""
    from schedules.services import cleanup_run

    cleanup_run(operation_id=operation_id)


@shared_task(name="schedules.tasks.purge_job", ignore_result=True, soft_time_limit=3600, time_limit=3700)
def purge_job(job_id: int) -> None:
    """``auto_purge``: apply one job's retention after a successful run."""
    from schedules.models import BackupJob
    from schedules.services import job_purge

    job = BackupJob.objects.select_related("tenant", "retention_policy").filter(pk=job_id).first()
    if job is not None:
        job_purge(job=job)


@shared_task(name="schedules.tasks.cleanup_all", ignore_result=True, soft_time_limit=6 * 3600,
             time_limit=6 * 3600 + 300)
def cleanup_all() -> dict[str, int]:
    """Daily (CELERY_BEAT_SCHEDULE): apply the retention of every job."""
    from schedules.services import cleanup_all_jobs

    return cleanup_all_jobs()
