"""What the backups domain tells the schedules domain (kept tiny to avoid import cycles)."""

from __future__ import annotations

from typing import Any


def after_backup_completed(*, backup: Any) -> None:
    """Called once a job's backup completed: records the run; ``auto_purge`` cleans up."""
    from schedules import services

    services.job_after_backup(backup=backup)


def after_backup_reaped(*, backup: Any) -> None:
    """Called by the reaper for a job's backup lost with its worker: a scheduled run is
    retried once (``services.job_retry_lost_run``)."""
    from schedules import services

    services.job_retry_lost_run(backup=backup)
