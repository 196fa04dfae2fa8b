"""Admin actions and the runjob/cleanup commands go through the same services."""

from __future__ import annotations

from datetime import time

import pytest
from django.core.management import call_command

from backups.models import Backup, BackupStatus
from schedules import services
from schedules.models import BackupJob

from .conftest import make_backups

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(tenant_a, app_a, storage_a):
    return services.job_create(
        tenant=tenant_a,
        name="nightly",
        application=app_a,
        storage=storage_a,
        schedule_type="daily",
        schedule_time=time(2, 0),
        timezone="America/New_York",
        retention_count=1,
    )


@pytest.mark.django_db(transaction=True)  # the progress runner works in a thread (own connection)
def test_runjob_runs_the_backup_in_process(job, capsys):
    call_command("runjob", str(job.pk))
    backup = Backup.objects.get(job=job)
    assert backup.status == BackupStatus.COMPLETED and backup.stored_bytes > 0
    assert "completed" in capsys.readouterr().out


def test_cleanup_command_dry_run_then_real(job, tenant_a, storage_a, capsys):
    make_backups(tenant_a, job=job, storage=storage_a, statuses=["completed"] * 3)
    call_command("cleanup", "--tenant", tenant_a.slug, "--dry-run")
    assert "2 of 3 to delete" in capsys.readouterr().out and Backup.objects.count() == 3
    call_command("cleanup")
    assert Backup.objects.count() == 1


def test_admin_preview_actions_and_save_sync_beat(client, superuser, job, tenant_a, storage_a):
    client.force_login(superuser)
    page = client.get(f"/admin/schedules/backupjob/{job.pk}/change/")
    assert page.status_code == 200 and page.content.decode().count("America/New_York</div>") == 5
    make_backups(tenant_a, job=job, storage=storage_a, statuses=["completed"] * 3)
    response = client.post(
        "/admin/schedules/backupjob/", {"action": "cleanup_dry_run", "_selected_action": [job.pk]}, follow=True
    )
    assert "2 of 3 backup(s) would go" in response.content.decode()
    assert Backup.objects.count() == 3
    client.post("/admin/schedules/backupjob/", {"action": "disable_jobs", "_selected_action": [job.pk]})
    job.refresh_from_db()
    assert job.enabled is False and job.next_run_at is None
    client.post("/admin/schedules/backupjob/", {"action": "run_now", "_selected_action": [job.pk]})
    assert Backup.objects.filter(job=job).count() == 4  # the 3 above + the run
    assert BackupJob.objects.count() == 1
