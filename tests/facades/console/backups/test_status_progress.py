"""system-backup-recovery.rst "Backup System Status" and "Progress Monitoring"."""

from __future__ import annotations

import json
from datetime import time, timedelta

import pytest
from django.utils import timezone

from backups.models import Backup, Operation, Restore
from backups.services.backups import backup_start
from backups.services.restores import restore_start
from backups.services.verifications import verification_run, verification_start
from schedules import services as schedule_services

from .conftest import CONSOLE
from .test_backups_api import error_of

pytestmark = pytest.mark.django_db


def beat_ran(at):
    """Beat's heartbeat, as its scheduler writes it on a tick (backupplatform.heartbeats)."""
    from backupplatform import heartbeats

    heartbeats.client().set(heartbeats._key("beat"), str(at.timestamp()))


def worker_alive():
    """A worker's heartbeat, as a running worker writes it every 10 s."""
    from backupplatform import heartbeats

    heartbeats.mark_worker("worker@test")


def codes(body) -> dict:
    return {a["code"]: a for a in body["alerts"]}


def test_status_of_a_healthy_workspace(api, viewer_a, admin_a, tenant_a, backup_a, storage_a):
    verification = verification_start(tenant=tenant_a, backup=backup_a, actor=admin_a, test_type="decrypt", queue=False)
    verification_run(operation_id=verification.operation_id)
    beat_ran(timezone.now())
    worker_alive()
    body = api(viewer_a).get(f"{CONSOLE}/status").json()
    assert body["backup_system"] == "healthy", body["alerts"]
    assert body["total_backups"] == 1 and body["last_successful_backup"].endswith("Z")
    assert body["storage_used_bytes"] == backup_a.stored_bytes and body["storage_used"].endswith("B")
    local = body["components"]["local_storage"]
    assert local["status"] == "healthy" and local["name"] == "disk" and local["used_bytes"] == backup_a.stored_bytes
    assert local["available_bytes"] > 0 and local["available"].endswith("B") and local["used"].endswith("%")
    assert body["components"]["cloud_storage"]["status"] == "not_configured"
    assert body["components"]["encryption"] == {
        "status": "enabled",
        "algorithm": "AES-256-GCM",
        "key_id": backup_a.key_id,
    }
    scheduler = body["components"]["scheduler"]
    assert scheduler["status"] == "disabled" and scheduler["beat"] == "up" and scheduler["next_run"] is None
    rules = {r["rule"]: r for r in body["security_rules"]}
    assert rules["encryption"]["status"] == "passed" and rules["recent_verification"]["status"] == "passed"
    assert rules["offsite_copy"]["status"] == "failed"  # only on this machine
    assert rules["key_exported"]["status"] in ("unknown", "failed", "passed")
    assert rules["admins_2fa"]["status"] == "not_available"
    scored = [r for r in rules.values() if r["status"] in ("passed", "failed")]
    earned = sum(r["points"] for r in scored if r["status"] == "passed")
    assert body["security_score"] == round(earned * 100 / sum(r["points"] for r in scored))
    assert body["security_score"] < 100


def test_status_fails_on_a_failed_last_run_and_warns_of_what_needs_attention(
    api, viewer_a, tenant_a, components_a, storage_a, backup_a
):
    Backup.objects.create(
        tenant=tenant_a,
        name="tonight",
        status="failed",
        application=components_a,
        storage=storage_a,
        error_message="disk on fire",
        completed_at=timezone.now(),
    )
    job = schedule_services.job_create(
        tenant=tenant_a,
        name="nightly",
        application=components_a,
        storage=storage_a,
        schedule_type="daily",
        schedule_time=time(2, 0),
    )
    from schedules.models import BackupJob

    BackupJob.objects.filter(pk=job.pk).update(
        created_at=timezone.now() - timedelta(days=3),
        updated_at=timezone.now() - timedelta(days=3),
        last_run_at=timezone.now() - timedelta(days=3),
    )
    beat_ran(timezone.now() - timedelta(hours=1))
    storage_a.quota_bytes = int(backup_a.stored_bytes * 1.1)
    storage_a.save()
    body = api(viewer_a).get(f"{CONSOLE}/status").json()
    alerts = codes(body)
    assert body["backup_system"] == "failing"
    assert (
        alerts["last_backup_failed"]["level"] == "critical"
        and "disk on fire" in alerts["last_backup_failed"]["message"]
    )
    assert alerts["scheduler_down"]["level"] == "critical"  # beat stopped and a schedule is enabled
    assert alerts["schedule_missed"]["schedule_id"] == job.public_id
    assert alerts["storage_threshold"]["level"] == "warning" and alerts["storage_threshold"]["used_percent"] > 80
    assert alerts["no_recent_verification"]["level"] == "warning"
    assert body["components"]["local_storage"]["status"] == "warning"
    assert body["components"]["scheduler"]["status"] == "stopped" and body["components"]["scheduler"]["beat"] == "down"


def test_status_sees_a_worker_that_stopped_beating(api, viewer_a, tenant_a, backup_a):
    from backupplatform import heartbeats

    heartbeats.client().hset(
        heartbeats._key("workers"),
        "worker@gone",
        json.dumps({"at": (timezone.now() - timedelta(minutes=5)).timestamp()}),
    )
    body = api(viewer_a).get(f"{CONSOLE}/status").json()
    assert codes(body)["worker_down"]["level"] == "critical" and body["backup_system"] == "failing"
    assert body["components"]["scheduler"]["worker"] == "down"


def test_backup_progress_never_goes_back_and_carries_bytes(api, viewer_a, tenant_a, components_a, storage_a, backup_a):
    """The second backup of the application expects as many bytes as the first: the percent
    follows the bytes, and a step naming a lower percent does not move it back."""
    from backups.models import Operation as Op
    from backups.progress import ProgressReporter

    op = backup_start(tenant=tenant_a, application=components_a, storage=storage_a, queue=False)
    reporter = ProgressReporter(op, total=backup_a.size_bytes)
    reporter.step("connecting", progress=1)
    reporter.update(backup_a.size_bytes // 2)
    reporter._write(force=True)
    reporter.step("dumping_and_encrypting", progress=2)
    body = api(viewer_a).get(f"{CONSOLE}/progress/{op.public_id}").json()
    assert body["progress"] == 50 and body["current_step"] == "dumping_and_encrypting"
    assert body["details"]["processed_bytes"] == backup_a.size_bytes // 2
    assert body["details"]["total_bytes"] == backup_a.size_bytes
    assert body["details"]["speed_bytes_per_second"] > 0 and body["details"]["speed"].endswith("B/s")
    assert Op.objects.get(pk=op.pk).progress == 50


def test_restore_progress_finds_restores_of_the_platform_api_and_by_operation(
    api, admin_a, viewer_a, tenant_a, backup_a, tmp_path
):
    # restore.pk is the ``restore_id`` that POST /api/v1/backups/{id}/restore answers.
    restore = restore_start(tenant=tenant_a, backup=backup_a, target_path=str(tmp_path / "back"), queue=False)
    client = api(viewer_a)
    for restore_id in (str(restore.pk), restore.operation.public_id):
        body = client.get(f"{CONSOLE}/restore/progress/{restore_id}").json()
        assert body["restore_id"] == restore_id and body["job_id"] == restore.operation.public_id
        assert body["platform_restore_id"] == restore.pk and body["operation"] == "restore"
        assert body["status"] == "pending" and body["integrity_check"] == "pending"
        assert body["restart_required"] is False and "data_processed_bytes" in body["details"]
    error_of(client.get(f"{CONSOLE}/restore/progress/999999"), 404, "RESTORE_NOT_FOUND")
    error_of(client.get(f"{CONSOLE}/progress/{restore.operation.public_id}"), 404, "BACKUP_NOT_FOUND")


def test_cancel_a_queued_backup_and_a_restore(
    api, operator_a, tenant_a, components_a, storage_a, backup_a, tmp_path, settings
):
    settings.CONSOLE_CANCEL_WAIT = 0
    client = api(operator_a)
    op = backup_start(tenant=tenant_a, application=components_a, storage=storage_a, queue=False)
    body = client.post(
        f"{CONSOLE}/operation/cancel", {"job_id": op.public_id, "reason": "User requested"}, format="json"
    ).json()
    assert body == {
        "status": "cancelled",
        "job_id": op.public_id,
        "operation": "backup_create",
        "partial_data_cleaned": True,
        "can_restart": True,
        "message": "Operation cancelled",
        "progress_url": f"{CONSOLE}/progress/{op.public_id}",
    }
    assert Backup.objects.get(pk=op.backup_id).status == "cancelled"
    again = error_of(
        client.post(f"{CONSOLE}/operation/cancel", {"job_id": op.public_id}, format="json"),
        409,
        "OPERATION_NOT_RUNNING",
    )
    assert again["message"].startswith("The operation has already ended")

    restore = restore_start(tenant=tenant_a, backup=backup_a, target_path=str(tmp_path / "back"), queue=False)
    body = client.post(f"{CONSOLE}/operation/cancel", {"job_id": str(restore.pk)}, format="json").json()
    assert body["status"] == "cancelled" and body["operation"] == "restore"
    assert Restore.objects.get(pk=restore.pk).status == "cancelled"

    running = backup_start(tenant=tenant_a, application=components_a, storage=storage_a, queue=False)
    Operation.objects.filter(pk=running.pk).update(status="running")
    body = client.post(f"{CONSOLE}/operation/cancel", {"job_id": running.public_id}, format="json").json()
    assert body["status"] == "cancelling" and body["partial_data_cleaned"] is False
    assert Operation.objects.get(pk=running.pk).cancel_requested is True

    error_of(client.post(f"{CONSOLE}/operation/cancel", {"job_id": "nope"}, format="json"), 404, "OPERATION_NOT_FOUND")
    error_of(client.post(f"{CONSOLE}/operation/cancel", {"job_id": 5}, format="json"), 400, "VALIDATION_ERROR")


def test_status_warns_when_acronis_is_not_reached(api, viewer_a, tenant_a, backup_a):
    from acronis.models import AcronisConfig, AcronisPollState

    config = AcronisConfig.objects.create(
        tenant=tenant_a, base_url="http://127.0.0.1:9/api/", client_id="c", client_secret="s"
    )
    AcronisConfig.objects.filter(pk=config.pk).update(created_at=timezone.now() - timedelta(hours=1))
    body = api(viewer_a).get(f"{CONSOLE}/status").json()
    assert codes(body)["acronis_disconnected"]["level"] == "warning"  # never polled since it was saved
    assert body["components"]["acronis"]["status"] == "disconnected"
    AcronisPollState.objects.create(tenant=tenant_a, polled_at=timezone.now())
    body = api(viewer_a).get(f"{CONSOLE}/status").json()
    assert "acronis_disconnected" not in codes(body) and body["components"]["acronis"]["status"] == "connected"
