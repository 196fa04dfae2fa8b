"""A real Celery worker and beat (DatabaseScheduler) against Redis and the test database:
a job due in a few seconds runs and its backup completes; once disabled it runs no more."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from backups.models import Backup, BackupStatus
from schedules import services

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)] if hasattr(
    pytest.mark, "timeout") else [pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    db = connection.settings_dict
    url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
            "DJANGO_SETTINGS_MODULE": "backupplatform.settings.test", "CELERY_TASK_ALWAYS_EAGER": "false"}


def _celery(*args: str, log: Path) -> subprocess.Popen:
    exe = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    return subprocess.Popen([exe, "-A", "backupplatform", *args], cwd=ROOT, env=_env(),
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def _seconds_to_next_minute() -> float:
    now = timezone.now()
    return 60 - now.second - now.microsecond / 1e6


def test_beat_runs_a_due_job_and_stops_when_disabled(tenant_a, app_a, storage_a, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("worker and beat need a database shared between processes (PostgreSQL)")
    subprocess.run([shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery", "-A",
                    "backupplatform", "purge", "-f"], cwd=ROOT, env=_env(), capture_output=True, timeout=60)
    # Due at the next minute boundary, a few seconds away (cron has minute resolution).
    if _seconds_to_next_minute() < 15:
        time.sleep(_seconds_to_next_minute() + 1)
    job = services.job_create(tenant=tenant_a, name="every-minute", application=app_a, storage=storage_a,
                              schedule_type="custom", cron_expression="* * * * *", timezone="America/New_York")
    assert job.periodic_task.enabled
    worker = _celery("worker", "--pool=solo", "-l", "info", "-n", f"sched-{os.getpid()}@%h",
                     log=tmp_path / "worker.log")
    beat = _celery("beat", "-S", "django_celery_beat.schedulers:DatabaseScheduler", "--max-interval", "1",
                   "-l", "info", "--pidfile", str(tmp_path / "beat.pid"), log=tmp_path / "beat.log")
    try:
        done = _wait(lambda: Backup.objects.filter(job=job, status=BackupStatus.COMPLETED).exists(), 120)
        logs = (tmp_path / "worker.log").read_text()[-3000:] + (tmp_path / "beat.log").read_text()[-2000:]
        assert done, logs
        backup = Backup.objects.get(job=job)
        assert backup.trigger == "scheduled" and backup.checksum and backup.stored_bytes > 0
        job.refresh_from_db()
        assert job.last_run_at is not None

        services.job_toggle(job=job, enabled=False)
        count = Backup.objects.filter(job=job).count()
        time.sleep(_seconds_to_next_minute() + 8)  # past the next due time
        assert Backup.objects.filter(job=job).count() == count, (tmp_path / "beat.log").read_text()[-2000:]
    finally:
        for proc in (beat, worker):
            proc.terminate()
        for proc in (beat, worker):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
