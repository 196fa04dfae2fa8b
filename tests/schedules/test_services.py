"""Service-level behaviour: safety net, overlap skips, auto_purge, storage failures."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from unittest import mock

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from backups.models import Backup, BackupStatus
from schedules import services
from schedules.models import BackupJob

from .conftest import make_backups

pytestmark = pytest.mark.django_db


def _job(tenant, app, storage, **extra):
    return services.job_create(
        tenant=tenant,
        name="nightly",
        application=app,
        storage=storage,
        schedule_type="daily",
        schedule_time=time(2, 0),
        **extra,
    )


def test_safety_net_keeps_the_last_verified_backup_when_every_recent_run_failed(tenant_a, app_a, storage_a):
    job = _job(tenant_a, app_a, storage_a, retention_days=2, retention_count=0)
    old = make_backups(tenant_a, job=job, storage=storage_a, statuses=["completed"] * 3, verified=True)
    make_backups(
        tenant_a,
        job=job,
        storage=storage_a,
        statuses=["failed"] * 5,
        start=timezone.now() - timedelta(hours=10),
        step=timedelta(hours=1),
    )
    # every completed backup is older than keep_days: only the safety net can keep one
    for backup in old:
        Backup.objects.filter(pk=backup.pk).update(created_at=backup.created_at - timedelta(days=30))
    plan = services.cleanup_analyse(tenant=tenant_a, job=job)
    newest_verified = max(old, key=lambda b: b.created_at)
    assert newest_verified.pk not in plan.backup_ids
    assert {b.pk for b in old} - {newest_verified.pk} <= set(plan.backup_ids)
    services.job_purge(job=job)
    assert Backup.objects.filter(pk=newest_verified.pk, status=BackupStatus.COMPLETED).exists()


def test_a_scheduled_run_is_skipped_and_recorded_while_the_previous_one_runs(tenant_a, app_a, storage_a):
    job = _job(tenant_a, app_a, storage_a)
    first = services.job_run_scheduled(job_id=job.pk, scheduled_for=datetime(2026, 3, 1, 3, tzinfo=UTC))
    assert first is not None
    assert services.job_run_scheduled(job_id=job.pk, scheduled_for=datetime(2026, 3, 1, 4, tzinfo=UTC)) is None
    assert Backup.objects.filter(job=job).count() == 1
    skip = AuditEvent.objects.get(action="job_run_skipped")
    assert skip.details["backup_id"] == first.backup_id


def test_disabled_job_does_not_run(tenant_a, app_a, storage_a):
    job = _job(tenant_a, app_a, storage_a, enabled=False)
    assert services.job_run_scheduled(job_id=job.pk) is None
    assert not Backup.objects.filter(job=job).exists()


def test_completed_run_records_last_run_and_auto_purge_applies_retention(
    tenant_a, app_a, storage_a, django_capture_on_commit_callbacks
):
    job = _job(tenant_a, app_a, storage_a, retention_count=2, auto_purge=True)
    make_backups(tenant_a, job=job, storage=storage_a, statuses=["completed"] * 4)
    from backups.services.backups import backup_run

    with django_capture_on_commit_callbacks(execute=False):
        op = services.job_run(job=job)
    with mock.patch("schedules.tasks.purge_job.delay") as delay, django_capture_on_commit_callbacks(execute=True):
        backup_run(operation_id=op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == BackupStatus.COMPLETED, backup.error_message
    job.refresh_from_db()
    assert job.last_run_at == backup.started_at
    delay.assert_called_once_with(job.pk)
    from schedules.tasks import purge_job

    purge_job(job.pk)
    assert Backup.objects.filter(job=job).count() == 2
    assert backup.pk in set(Backup.objects.filter(job=job).values_list("pk", flat=True))
    assert AuditEvent.objects.filter(action="backup_delete").count() == 3


def test_storage_failure_leaves_the_row_and_is_reported(tenant_a, app_a, storage_a):
    from backupplatform.errors import Conflict

    job = _job(tenant_a, app_a, storage_a, retention_count=1)
    backups = make_backups(tenant_a, job=job, storage=storage_a, statuses=["completed"] * 3)
    from backups.services.backups import backup_delete as real

    def flaky(*, backup, reason=""):
        if backup.pk == backups[0].pk:
            raise Conflict("The stored file could not be deleted: disk on fire", code="STORAGE_ERROR")
        return real(backup=backup, reason=reason)

    with mock.patch("schedules.cleanup.backup_delete", side_effect=flaky):
        op = services.job_purge(job=job)
    assert Backup.objects.filter(pk=backups[0].pk).exists()
    assert not Backup.objects.filter(pk=backups[1].pk).exists()
    assert op.details["failed"][0]["backup_id"] == backups[0].pk and op.errors == 1


def test_missing_artifact_is_not_an_error(tenant_a, app_a, storage_a):
    job = _job(tenant_a, app_a, storage_a, retention_count=1)
    make_backups(tenant_a, job=job, storage=storage_a, statuses=["completed"] * 3)  # no files exist
    op = services.job_purge(job=job)
    assert op.details["backups_removed"] == 2 and not op.details["failed"]
    assert BackupJob.objects.get(pk=job.pk).backups.count() == 1


def test_daily_cleanup_covers_every_job_with_rules(tenant_a, tenant_b, app_a, app_b, storage_a):
    with_rules = _job(tenant_a, app_a, storage_a, retention_count=1)
    no_rules = services.job_create(tenant=tenant_b, name="keep-all", application=app_b, schedule_type="hourly")
    make_backups(tenant_a, job=with_rules, storage=storage_a, statuses=["completed"] * 3)
    make_backups(tenant_b, job=no_rules, statuses=["completed"] * 3)
    from schedules.tasks import cleanup_tenant

    assert services.cleanup_tenant_ids() == sorted([tenant_a.pk, tenant_b.pk])
    assert cleanup_tenant(tenant_a.pk) == {"jobs": 1, "removed": 2, "failed": 0, "errors": 0}
    assert cleanup_tenant(tenant_b.pk) == {"jobs": 0, "removed": 0, "failed": 0, "errors": 0}
    assert Backup.objects.filter(job=no_rules).count() == 3
