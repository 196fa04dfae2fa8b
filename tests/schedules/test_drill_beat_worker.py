"""A scheduled restore drill end to end: beat (the platform's scheduler) dispatches the due
drills, a real Celery worker restores each job's latest backup into a scratch PostgreSQL
database, runs its assertions and drops it; the passed drill records RTO/RPO and its
assertions, the failed one is notified through the worker, and the evidence PDF renders.

As in ``test_beat_worker``, the drills are made due a few seconds ahead by setting
``drill_next_run_at`` (what beat dispatches from) instead of waiting for a cron minute."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from audit import notifications
from audit.models import Delivery
from backups.models import Backup, Server
from backups.services.backups import backup_run
from schedules import drills, services
from schedules.evidence import evidence_generate
from schedules.models import BackupJob, Drill
from tests.e2e.conftest import needs_pg

from .test_beat_worker import ROOT, _celery, _env, _wait
from .test_drills_api import first_page_ink

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300), pytest.mark.slow, needs_pg]


def _job(tenant, storage, database: str, name: str, assertions: list) -> BackupJob:
    server = Server.objects.create(
        tenant=tenant,
        name=f"pg-{name}",
        type="postgresql",
        host="127.0.0.1",
        port=5432,
        credentials={"username": "postgres", "password": ""},
    )
    job = services.job_create(
        tenant=tenant,
        name=name,
        server=server,
        database_name=database,
        storage=storage,
        schedule_type="custom",
        cron_expression="0 3 * * *",
        timezone="Asia/Tokyo",
    )
    op = services.job_run(job=job, queue=False)
    backup_run(operation_id=op.pk)
    assert Backup.objects.get(pk=op.backup_id).status == "completed"
    return drills.drill_configure(job=job, cron_expression="0 4 * * 6", assertions=assertions)


def test_beat_dispatches_due_drills_and_a_worker_runs_them(tenant_a, storage_a, pg_throwaway_db, tmp_path):
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
    good = _job(
        tenant_a,
        storage_a,
        pg_throwaway_db.name,
        "weekly-proof",
        [
            {"type": "row_count", "table": "public.items", "expect": 200},
            {"type": "sql", "sql": "SELECT max(id) = 200 FROM items"},
        ],
    )
    bad = _job(
        tenant_a,
        storage_a,
        pg_throwaway_db.name,
        "wrong-expectation",
        [
            {"type": "row_count", "table": "items", "min": 1000},
        ],
    )
    notifications.channel_create(
        tenant=tenant_a, name="ops", type="slack", config={"webhook_url": "https://hooks.example.com/services/A/B/C"}
    )
    due = timezone.now() + timedelta(seconds=2)
    BackupJob.objects.filter(pk__in=[good.pk, bad.pk]).update(drill_next_run_at=due)

    worker = _celery(
        "worker", "--pool=solo", "-l", "info", "-n", f"drills-{id(tmp_path)}@%h", log=tmp_path / "worker.log"
    )
    beat = _celery("beat", "-l", "info", "--pidfile", str(tmp_path / "beat.pid"), log=tmp_path / "beat.log")

    def logs() -> str:
        return (tmp_path / "worker.log").read_text()[-4000:] + (tmp_path / "beat.log").read_text()[-2000:]

    def finished(job) -> bool:
        return Drill.objects.filter(job=job, status__in=["passed", "failed"]).exists()

    try:
        assert _wait(lambda: finished(good) and finished(bad), 150), logs()
        passed = Drill.objects.get(job=good)
        assert passed.trigger == "scheduled" and passed.scheduled_for == due
        assert passed.status == "passed", (passed.error_message, logs())
        assert passed.rto_seconds > 0 and passed.rpo_seconds > 0 and passed.checksum_verified
        assert [(a["type"], a["actual"], a["passed"]) for a in passed.assertions] == [
            ("checksum", passed.backup_checksum, True),
            ("row_count", 200, True),
            ("sql", True, True),
        ]
        assert passed.scratch["dropped"] is True
        with psycopg.connect(dbname="postgres", host="127.0.0.1", user="postgres") as conn:
            left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'bp_drill_%%'").fetchone()[0]
        assert left == 0
        failed = Drill.objects.get(job=bad)
        assert failed.status == "failed" and failed.assertions[1]["actual"] == 200
        # The failure reached the workspace's channel through the worker (audit.tasks.route_event).
        assert _wait(lambda: Delivery.objects.filter(event_type="drill.failed").exists(), 60), logs()
        for job in (good, bad):
            job.refresh_from_db()
            assert job.drill_next_run_at > timezone.now()  # moved on to next Saturday once sent
    finally:
        for proc in (beat, worker):
            proc.terminate()
        for proc in (beat, worker):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    report = evidence_generate(tenant=tenant_a, format="pdf")
    pdf = b"".join(report.chunks)
    (tmp_path / "evidence.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF")
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed: the PDF was not rendered")
    size, ink = first_page_ink(pdf, tmp_path)
    assert size[1] > size[0] and ink > 500, (size, ink)
