"""A real Celery worker and beat (the platform's scheduler) against Redis and the test
database: a due job runs and its backup completes; once disabled it runs no more, while
another due job still does.

Cron has minute resolution, so instead of sleeping to a minute boundary the test sets the
job's ``next_run_at`` (what beat dispatches from) a few seconds ahead."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from backups.models import Application, Backup, BackupStatus, Source
from schedules import services
from schedules.models import BackupJob

# slow: real processes (still in the default run, so CI runs it).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    db = connection.settings_dict
    url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
        "DJANGO_SETTINGS_MODULE": "backupplatform.settings.test",
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }


def _celery(*args: str, log: Path) -> subprocess.Popen:
    exe = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    return subprocess.Popen(
        [exe, "-A", "backupplatform", *args], cwd=ROOT, env=_env(), stdout=log.open("w"), stderr=subprocess.STDOUT
    )


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def _make_due(job, in_seconds: float = 2) -> None:
    """As if the job's next run time were a few seconds from now."""
    BackupJob.objects.filter(pk=job.pk).update(next_run_at=timezone.now() + timedelta(seconds=in_seconds))


def test_beat_runs_a_due_job_and_stops_when_disabled(tenant_a, app_a, storage_a, files_dir, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("worker and beat need a database shared between processes (PostgreSQL)")
    subprocess.run(
        [
            shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery",
            "-A",
            "backupplatform",
            "purge",
            "-f",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        timeout=60,
    )
    job = services.job_create(
        tenant=tenant_a,
        name="every-minute",
        application=app_a,
        storage=storage_a,
        schedule_type="custom",
        cron_expression="* * * * *",
        timezone="America/New_York",
    )
    assert job.next_run_at is not None
    _make_due(job)
    worker = _celery(
        "worker", "--pool=solo", "-l", "info", "-n", f"sched-{os.getpid()}@%h", log=tmp_path / "worker.log"
    )
    beat = _celery("beat", "-l", "info", "--pidfile", str(tmp_path / "beat.pid"), log=tmp_path / "beat.log")

    def logs() -> str:
        return (tmp_path / "worker.log").read_text()[-3000:] + (tmp_path / "beat.log").read_text()[-2000:]

    try:
        done = _wait(lambda: Backup.objects.filter(job=job, status=BackupStatus.COMPLETED).exists(), 120)
        assert done, logs()
        backup = Backup.objects.get(job=job)
        assert backup.trigger == "scheduled" and backup.checksum and backup.stored_bytes > 0
        job.refresh_from_db()
        assert job.last_run_at is not None

        ran = backup.operations.get()
        # Dispatched from next_run_at within a second or two of its time (a tick a second).
        assert ran.created_at - job.last_run_at < timedelta(seconds=5)

        # Disabled (even with a stale next_run_at left behind): beat must not send it. A
        # second due job is the control that beat is dispatching due jobs.
        services.job_toggle(job=job, enabled=False)
        count = Backup.objects.filter(job=job).count()
        _make_due(job, in_seconds=-5)
        other_app = Application.objects.create(tenant=tenant_a, name="control")
        Source.objects.create(tenant=tenant_a, application=other_app, name="files", type="path", path=str(files_dir))
        control = services.job_create(
            tenant=tenant_a,
            name="control",
            application=other_app,
            storage=storage_a,
            schedule_type="custom",
            cron_expression="* * * * *",
            timezone="UTC",
        )
        _make_due(control)
        due = BackupJob.objects.get(pk=control.pk).next_run_at
        assert _wait(lambda: Backup.objects.filter(job=control, status=BackupStatus.COMPLETED).exists(), 120), logs()
        time.sleep(3)  # a wrongly sent run of the disabled job would be in the same beat tick
        assert Backup.objects.filter(job=job).count() == count, logs()
        assert BackupJob.objects.get(pk=control.pk).next_run_at > due  # moved on once sent
    finally:
        for proc in (beat, worker):
            proc.terminate()
        for proc in (beat, worker):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
