"""Beat restarted around a due time may send a job's ``run_job`` twice: the due time is
claimed once, so the second dispatch starts nothing, even after the first run finished."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from backups.models import Application, Backup, Source
from backups.services.backups import backup_run
from schedules import services
from schedules.models import ScheduledRun
from schedules.tasks import run_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(tenant_a, local_storage, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.txt").write_text("hello\n" * 100)
    app = Application.objects.create(tenant=tenant_a, name="shop")
    Source.objects.create(tenant=tenant_a, application=app, name="files", type="path", path=str(folder))
    return services.job_create(
        tenant=tenant_a,
        name="nightly",
        application=app,
        storage=local_storage,
        schedule_type="custom",
        cron_expression="0 3 * * *",
    )


def _finish_runs(job) -> None:
    for backup in Backup.objects.filter(job=job, status="pending"):
        backup_run(operation_id=backup.operations.get().pk)


def test_second_dispatch_of_the_same_due_time_does_nothing(job, caplog):
    due = "2026-03-01T03:00:00+00:00"
    assert run_job.apply(args=[job.pk], kwargs={"scheduled_for": due}).get() is not None
    _finish_runs(job)
    assert Backup.objects.get(job=job).status == "completed"

    with caplog.at_level(logging.WARNING, logger="schedules.services"):
        assert run_job.apply(args=[job.pk], kwargs={"scheduled_for": due}).get() is None
    assert Backup.objects.filter(job=job).count() == 1
    assert "already dispatched" in caplog.text

    # The next due time runs normally.
    assert run_job.apply(args=[job.pk], kwargs={"scheduled_for": "2026-03-02T03:00:00+00:00"}).get() is not None
    assert Backup.objects.filter(job=job).count() == 2
    assert list(
        ScheduledRun.objects.filter(job=job).order_by("scheduled_for").values_list("scheduled_for", "outcome")
    ) == [(datetime(2026, 3, 1, 3, tzinfo=UTC), "started"), (datetime(2026, 3, 2, 3, tzinfo=UTC), "started")]


def test_beat_dispatches_without_a_due_time_claim_the_latest_run_time(job):
    # What beat sends: only the job id. Both dispatches belong to the last 03:00 UTC.
    assert run_job.apply(args=[job.pk]).get() is not None
    _finish_runs(job)
    assert run_job.apply(args=[job.pk]).get() is None
    assert Backup.objects.filter(job=job).count() == 1
    claim = ScheduledRun.objects.get(job=job)
    now = timezone.now()
    assert claim.scheduled_for <= now and claim.scheduled_for > now - timedelta(days=1)
    assert (claim.scheduled_for.hour, claim.scheduled_for.minute) == (3, 0)
