"""The same BackupJob through the jobs, workspace and console facades."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import Backup, Operation
from schedules import selectors
from schedules.beat import dispatch_due_jobs
from schedules.models import BackupJob
from tenants.models import Plan

from .conftest import make_backups

pytestmark = pytest.mark.django_db


# --- jobs facade (api-layer.md) -----------------------------------------------------------------


def test_job_with_source_path_priority_and_is_active_filter(
    api, admin_a, storage_a, files_dir, django_capture_on_commit_callbacks
):
    client = api(admin_a)
    response = client.post(
        "/api/v1/jobs",
        {
            "name": "Database Backup",
            "source_path": str(files_dir),
            "backup_type": "full",
            "schedule_type": "daily",
            "schedule_time": "03:00",
            "retention_days": 30,
            "priority": 8,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["success"] is True and body["data"]["schedule_time"] == "03:00"
    job = BackupJob.objects.get(pk=body["data"]["id"])
    assert job.cron_expression == "0 3 * * *" and job.application.sources.get().path == str(files_dir)
    sent = []
    BackupJob.objects.filter(pk=job.pk).update(next_run_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        dispatch_due_jobs(send=lambda job_id, due, priority: sent.append((job_id, priority)))
    assert sent == [(job.pk, 2)]  # Celery priority 10 - 8
    client.post(
        "/api/v1/jobs",
        {"name": "Off", "source_path": str(files_dir), "schedule_type": "hourly", "is_active": False},
        format="json",
    )
    listing = client.get("/api/v1/jobs?page=1&page_size=20&is_active=true").json()
    assert listing["total"] == 1 and listing["data"][0]["name"] == "Database Backup"
    assert listing["page_size"] == 20 and listing["total_pages"] == 1
    assert client.get("/api/v1/jobs?is_active=false").json()["data"][0]["next_run"] is None
    assert client.get("/api/v1/jobs?is_active=FALSE").json()["total"] == 1
    refused = client.get("/api/v1/jobs?is_active=yes")
    assert refused.status_code == 400, refused.content
    assert "is_active" in str(refused.json()) and "Use true or false." in str(refused.json())


def test_job_run_is_202_with_operation_and_executions_list_its_backups(api, operator_a, admin_a, app_a, storage_a):
    job = BackupJob.objects.get(
        pk=api(admin_a)
        .post(
            "/api/v1/jobs",
            {"name": "App", "application_id": app_a.pk, "schedule_type": "custom", "cron_expression": "*/5 * * * *"},
            format="json",
        )
        .json()["data"]["id"]
    )
    response = api(operator_a).post(
        f"/api/v1/jobs/{job.pk}/run", {"backup_type": "full", "notify": True}, format="json"
    )
    assert response.status_code == 202, response.content
    data = response.json()["data"]
    assert Operation.objects.get(public_id=data["operation_id"]).backup.job_id == job.pk
    again = api(operator_a).post(f"/api/v1/jobs/{job.pk}/run", {}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "BACKUP_IN_PROGRESS"
    executions = api(operator_a).get(f"/api/v1/jobs/{job.pk}/executions").json()
    assert executions["total"] == 1 and executions["data"][0]["id"] == data["backup_id"]


def test_bad_job_input_is_the_jobs_error_body(api, admin_a):
    response = api(admin_a).post(
        "/api/v1/jobs",
        {"name": "x", "source_path": "relative/path", "schedule_type": "daily", "schedule_time": "25:00"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["success"] is False and "schedule_time" in response.json()["details"]


# --- workspace facade (workspace-backup-api.md) --------------------------------------------------

POLICY = {
    "enabled": True,
    "schedule": {
        "frequency": "daily",
        "time": "02:00",
        "timezone": "America/New_York",
        "days_of_week": [1, 2, 3, 4, 5],
    },
    "retention": {"daily": 7, "weekly": 4, "monthly": 12, "yearly": 3},
    "options": {"include_volumes": True, "compression": True, "encryption": True},
    "notifications": {"on_success": False, "on_failure": True, "channels": ["email:ops@example.com"]},
}


def test_backup_policy_lifecycle(api, admin_a, tenant_a, app_a, storage_a):
    client = api(admin_a)
    url = f"/api/v1/workspaces/{tenant_a.slug}/applications/{app_a.pk}/backup-policy"
    response = client.post(url, {**POLICY, "storage_id": str(storage_a.pk)}, format="json")
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data["schedule"]["next_backup"].endswith("Z") and data["application_id"] == f"app-{app_a.pk}"
    job = BackupJob.objects.get(pk=int(data["id"].removeprefix("policy-")))
    assert job.cron_expression == "0 2 * * 1-5" and job.next_run_at == selectors.job_next_run(job)
    assert client.post(url, POLICY, format="json").status_code == 409
    make_backups(tenant_a, job=job, statuses=["completed", "failed", "completed"])
    got = client.get(url).json()["data"]
    assert got["statistics"]["total_backups"] == 3 and got["statistics"]["failed_backups"] == 1
    assert got["retention"] == {"daily": 7, "weekly": 4, "monthly": 12, "yearly": 3}
    updated = client.put(
        url, {"schedule": {"frequency": "daily", "time": "03:00"}, "retention": {"daily": 14}}, format="json"
    )
    assert updated.status_code == 200, updated.content
    assert updated.json()["data"]["schedule"]["timezone"] == "America/New_York"
    assert updated.json()["data"]["schedule"]["time"] == "03:00"
    deleted = client.delete(url)
    assert deleted.json()["data"] == {"message": "Backup policy deleted successfully", "policy_id": data["id"]}
    assert Backup.objects.filter(tenant=tenant_a).count() == 3  # backups kept
    assert client.get(url).status_code == 404


def test_policy_change_while_a_run_is_going_is_409(api, admin_a, tenant_a, app_a, storage_a):
    client = api(admin_a)
    url = f"/api/v1/workspaces/{tenant_a.slug}/applications/{app_a.pk}/backup-policy"
    client.post(url, POLICY, format="json")
    trigger = client.post(
        f"/api/v1/workspaces/{tenant_a.slug}/applications/{app_a.pk}/backups/trigger",
        {
            "description": "Pre-deployment backup",
            "retention_override": {"keep_until": "2030-12-31T23:59:59Z"},
            "options": {"include_volumes": True},
        },
        format="json",
    )
    assert trigger.status_code == 202, trigger.content
    backup = Backup.objects.get(pk=int(trigger.json()["data"]["backup_id"].removeprefix("backup-")))
    assert backup.keep_until.year == 2030 and backup.description == "Pre-deployment backup"
    refused = client.put(url, {"enabled": False}, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "BACKUP_IN_PROGRESS"
    assert refused.json()["error"]["details"]["current_backup_id"] == f"backup-{backup.pk}"
    assert client.delete(url).status_code == 409


def test_shared_plan_gets_feature_not_available(api, admin_a, tenant_a, app_a):
    tenant_a.plan = Plan.SHARED
    tenant_a.save()
    response = api(admin_a).get(f"/api/v1/workspaces/{tenant_a.slug}/applications/{app_a.pk}/backup-policy")
    assert response.status_code == 403 and response.json()["error"]["code"] == "FEATURE_NOT_AVAILABLE"


# --- console facade (system-backup-recovery.rst) ------------------------------------------------


def test_console_schedules_update_toggle(api, admin_a, tenant_a, storage_a):
    from datetime import time

    from schedules.services import job_save

    job_save(
        tenant=tenant_a,
        public_id="schedule_nightly",
        create=True,
        schedule={"schedule_type": "weekly", "schedule_time": time(3, 0), "days_of_week": [1]},
    )
    client = api(admin_a)
    saved = client.post(
        "/cloud-integration/backup/schedules/update",
        {
            "schedule_id": "schedule_nightly",
            "enabled": True,
            "frequency": "daily",
            "time": "02:00",
            "retention_count": 7,
            "type": "full",
            "destination": "local",
            "encryption": True,
            "auto_purge": True,
            "notifications": {"on_success": True, "on_failure": True},
        },
        format="json",
    )
    assert saved.status_code == 200, saved.content
    assert saved.json()["status"] == "updated" and saved.json()["message"] == "Schedule updated successfully"
    assert saved.json()["schedule_id"] == "schedule_nightly" and saved.json()["next_execution"].endswith("Z")
    listing = client.get("/cloud-integration/backup/schedules").json()
    assert listing["total_schedules"] == 1
    schedule = listing["schedules"][0]
    assert schedule["id"] == "schedule_nightly" and schedule["retention_count"] == 7 and schedule["auto_purge"]
    assert schedule["frequency"] == "daily" and schedule["time"] == "02:00" and "days_of_week" not in schedule
    assert schedule["destination"] == "local" and schedule["notifications"] == {"on_success": True, "on_failure": True}
    toggled = client.post(
        "/cloud-integration/backup/schedules/toggle",
        {"schedule_id": "schedule_nightly", "enabled": False},
        format="json",
    ).json()
    assert toggled == {
        "status": "updated",
        "schedule_id": "schedule_nightly",
        "enabled": False,
        "message": "Schedule disabled",
    }
    job = BackupJob.objects.get(public_id="schedule_nightly")
    assert job.next_run_at is None
    assert (
        client.post(
            "/cloud-integration/backup/schedules/toggle", {"schedule_id": "nope", "enabled": True}, format="json"
        ).json()["error"]["code"]
        == "SCHEDULE_NOT_FOUND"
    )


def test_console_schedule_update_of_an_unknown_id_creates_nothing(api, admin_a, tenant_a, storage_a):
    """system-backup-recovery.rst "Update Schedule" saves an existing schedule: an unknown id
    is a clear 404, not a new schedule."""
    response = api(admin_a).post(
        "/cloud-integration/backup/schedules/update",
        {"schedule_id": "schedule_weekly", "frequency": "weekly", "time": "01:00"},
        format="json",
    )
    assert response.status_code == 404, response.content
    error = response.json()["error"]
    assert error["code"] == "SCHEDULE_NOT_FOUND" and error["details"] == {"schedule_id": "schedule_weekly"}
    assert "schedule_weekly" in error["message"]
    assert not BackupJob.objects.filter(tenant=tenant_a).exists()


def test_job_save_creates_on_the_default_application_once(tenant_a, storage_a):
    """The create-or-update service the admin can call: one schedule per application."""
    from backupplatform.errors import Conflict
    from schedules.services import job_save

    job, created = job_save(tenant=tenant_a, public_id="schedule_nightly", create=True, storage_name="local")
    assert created and job.application.is_default and job.name == "Schedule nightly"
    assert job.schedule_type == "daily" and job.cron_expression == "0 2 * * *"
    assert job.notifications == {} and job.storage.name == "local"
    again, created = job_save(tenant=tenant_a, public_id="schedule_nightly", notifications={"on_success": True})
    assert not created and again.pk == job.pk and again.notifications == {"on_success": True, "on_failure": True}
    with pytest.raises(Conflict) as conflict:
        job_save(tenant=tenant_a, public_id="schedule_weekly", create=True)
    assert conflict.value.code == "SCHEDULE_CONFLICT"


def _console_job(tenant, app, storage, **extra):
    from schedules import services

    return services.job_create(
        tenant=tenant,
        name="nightly",
        application=app,
        storage=storage,
        schedule_type="daily",
        schedule_time=timezone.now().time().replace(second=0, microsecond=0),
        **extra,
    )


def test_cleanup_dry_run_and_execute_agree_exactly(api, admin_a, tenant_a, app_a, storage_a):
    job = _console_job(tenant_a, app_a, storage_a)
    backups = make_backups(tenant_a, job=job, storage=storage_a, statuses=["completed"] * 9 + ["failed"])
    Backup.objects.filter(pk=backups[0].pk).update(keep_forever=True)
    client = api(admin_a)
    plan = client.post(
        "/cloud-integration/backup/cleanup",
        {
            "dry_run": True,
            "storage_locations": ["local"],
            "retention_policy": "keep_last_5",
            "max_age_days": 3,
            "min_free_space": "5 GB",
            "reason": "Monthly cleanup",
        },
        format="json",
    )
    assert plan.status_code == 200, plan.content
    analysis = plan.json()["analysis"]
    # keep_last_5 keeps #4-#8, max_age 3 days #7-#9, #0 is keep_forever, #9 (failed) is the
    # newest run: only #1-#3 go.
    assert analysis == {
        "total_backups": 10,
        "eligible_for_removal": 3,
        "space_to_free": "3 KB",
        "backups_to_keep": 7,
        "protected_backups": 1,
    }
    planned = plan.json()["backup_ids"]
    assert planned == [backups[1].pk, backups[2].pk, backups[3].pk]
    executed = client.post(
        "/cloud-integration/backup/cleanup/execute",
        {"cleanup_plan_id": plan.json()["cleanup_plan_id"], "confirmation": True},
        format="json",
    )
    assert executed.status_code == 200, executed.content
    op = Operation.objects.get(public_id=executed.json()["cleanup_id"])
    assert executed.json()["progress_url"] == f"/cloud-integration/backup/cleanup/progress/{op.public_id}"
    from schedules.services import cleanup_run

    cleanup_run(operation_id=op.pk)
    remaining = set(Backup.objects.filter(tenant=tenant_a).values_list("pk", flat=True))
    assert remaining == {b.pk for b in backups} - set(planned)
    progress = client.get(executed.json()["progress_url"]).json()
    assert progress["status"] == "completed" and progress["details"]["backups_removed"] == len(planned)
    again = client.post(
        "/cloud-integration/backup/cleanup/execute",
        {"cleanup_plan_id": plan.json()["cleanup_plan_id"], "confirmation": True},
        format="json",
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "CLEANUP_PLAN_ALREADY_EXECUTED"


def test_cleanup_refuses_bad_expired_and_foreign_plans(api, admin_a, admin_b, tenant_a, app_a, storage_a):
    from schedules.models import CleanupPlan

    client = api(admin_a)
    plan_id = client.post(
        "/cloud-integration/backup/cleanup", {"retention_policy": "keep_last_1"}, format="json"
    ).json()["cleanup_plan_id"]
    for bad in ("ANALYSIS-NOPE", "../../etc", "x" * 300):
        response = client.post(
            "/cloud-integration/backup/cleanup/execute", {"cleanup_plan_id": bad, "confirmation": True}, format="json"
        )
        assert response.status_code in (400, 404) and "error" in response.json()
    foreign = api(admin_b).post(
        "/cloud-integration/backup/cleanup/execute", {"cleanup_plan_id": plan_id, "confirmation": True}, format="json"
    )
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "CLEANUP_PLAN_NOT_FOUND"
    unconfirmed = client.post(
        "/cloud-integration/backup/cleanup/execute", {"cleanup_plan_id": plan_id, "confirmation": False}, format="json"
    )
    assert unconfirmed.status_code == 400
    CleanupPlan.objects.filter(public_id=plan_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = client.post(
        "/cloud-integration/backup/cleanup/execute", {"cleanup_plan_id": plan_id, "confirmation": True}, format="json"
    )
    assert expired.status_code == 409 and expired.json()["error"]["code"] == "CLEANUP_PLAN_EXPIRED"
    bad_policy = client.post(
        "/cloud-integration/backup/cleanup", {"retention_policy": "keep_everything"}, format="json"
    )
    assert bad_policy.status_code == 400 and bad_policy.json()["error"]["code"] == "VALIDATION_ERROR"
    assert client.get("/cloud-integration/backup/cleanup/progress/unknown").status_code == 404
