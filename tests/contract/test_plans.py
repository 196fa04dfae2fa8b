"""A workspace's plan is a property of the workspace: the same answer in every API, in the
admin and in the CLI (tenants/capabilities.py). workspace-backup-api.md: backup services are
for dedicated plan workspaces; the shared plan keeps the account side."""

from __future__ import annotations

from datetime import time

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from backupplatform.errors import FeatureNotAvailable
from backups import services
from backups.models import Backup, Server, Storage
from backups.services import backups as backup_services
from schedules import services as schedule_services
from tenants.models import Plan

FOLDER_BODY = {"name": "files", "source_path": "/tmp", "schedule_type": "daily", "schedule_time": "03:00"}


@pytest.fixture
def app(tenant_a, tmp_path):
    (tmp_path / "data").mkdir()
    services.storage_create(
        tenant=tenant_a, name="disk", type="local", configuration={"path": str(tmp_path / "store")}, is_default=True
    )
    return services.application_create(
        tenant=tenant_a, name="web", sources=[{"name": "data", "type": "path", "path": str(tmp_path / "data")}]
    )


def shared(tenant) -> None:
    tenant.plan = Plan.SHARED
    tenant.save(update_fields=["plan"])


def refusal(response) -> dict:
    """The facade's error body, reduced to code and details (each facade writes them its way)."""
    body = response.json()
    if "error" in body and isinstance(body["error"], dict):
        return {"code": body["error"]["code"], "details": body["error"]["details"]}
    if body.get("success") is False:
        return {"code": body["error"], "details": body["details"]}
    return {"code": body["code"], "details": body["details"]}


CALLS = [
    ("post", "/api/v1/servers", {"name": "db", "type": "postgresql", "host": "127.0.0.1", "port": 5432}),
    ("get", "/api/v1/servers", None),
    ("post", "/api/v1/backups", {"server_id": 1, "database_name": "x"}),
    ("get", "/api/v1/backups", None),
    ("get", "/api/v1/schedules", None),
    ("get", "/api/v1/retention-policies", None),
    ("post", "/api/v1/jobs", FOLDER_BODY),
    ("get", "/api/v1/storage/providers", None),
    ("post", "/api/v1/storage/test", {"provider_type": "local", "configuration": {"path": "/tmp"}}),
    ("get", "/api/v1/verify", None),
    ("get", "/api/v1/workspaces/alpha/backup-storages", None),
    ("get", "/api/v1/workspaces/alpha/applications", None),
    ("get", "/cloud-integration/backup/schedules", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CALLS, ids=[f"{m.upper()} {p}" for m, p, _ in CALLS])
def test_a_shared_workspace_has_no_backup_feature_in_any_api(api, admin_a, tenant_a, method, path, body):
    shared(tenant_a)
    response = getattr(api(admin_a), method)(path, body, format="json")
    assert response.status_code == 403, response.content
    assert refusal(response) == {
        "code": "FEATURE_NOT_AVAILABLE",
        "details": {"current_plan": "shared", "required_plan": "dedicated"},
    }
    assert not Server.objects.exists() and not Backup.objects.exists()


def test_a_shared_workspace_keeps_its_account_side(api, admin_a, tenant_a):
    shared(tenant_a)
    client = api(admin_a)
    assert client.get("/api/v1/auth/me").status_code == 200
    assert client.get("/api/v1/users").status_code == 200
    assert client.get("/api/v1/audit/logs").status_code == 200
    assert client.post("/api/v1/api-keys", {"name": "ci"}, format="json").status_code == 201
    missing = client.get("/api/acronis/config")  # the Acronis monitoring is not a backup feature
    assert missing.status_code == 404 and missing.json()["error_code"] == "ACRONIS_CONFIG_MISSING"


def test_the_services_the_admin_and_the_cli_refuse_a_shared_workspace_too(tenant_a, superuser, app, tmp_path):
    job = schedule_services.job_create(
        tenant=tenant_a, name="nightly", application=app, schedule_type="daily", schedule_time=time(2, 0)
    )
    shared(tenant_a)
    with pytest.raises(FeatureNotAvailable):
        services.storage_create(
            tenant=tenant_a, name="more", type="local", configuration={"path": str(tmp_path / "more")}
        )
    with pytest.raises(FeatureNotAvailable):
        backup_services.backup_start(tenant=tenant_a, application=app, queue=False)
    admin = Client()
    admin.force_login(superuser)
    response = admin.post(
        "/admin/schedules/backupjob/", {"action": "run_now", "_selected_action": [job.pk]}, follow=True
    )
    assert "Backup functionality requires dedicated plan" in response.content.decode()
    with pytest.raises(CommandError, match="dedicated plan"):
        call_command("backup", "--tenant", tenant_a.slug, "--application", str(app.pk))
    assert not Backup.objects.exists() and Storage.objects.filter(tenant=tenant_a).count() == 1
    # A shared workspace may still stop what it had scheduled.
    schedule_services.job_toggle(job=job, enabled=False)

    tenant_a.plan = Plan.DEDICATED
    tenant_a.save(update_fields=["plan"])
    op = backup_services.backup_start(tenant=tenant_a, application=app, queue=False)
    assert op.backup.status == "pending"
