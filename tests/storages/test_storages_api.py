"""Storages: workspace backup-storages (workspace-backup-api.md) and jobs storage routes
(api-layer.md "Storage Management"): real probes, validation, usage, secrets, plan rule."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from backups import services
from backups.models import Backup, BackupStatus, Storage
from schedules.models import BackupJob
from tenants.models import Plan

pytestmark = pytest.mark.django_db

WS = "/api/v1/workspaces/alpha"
AWS = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
SEED_CREATE = {
    "name": "production-backups",
    "description": "Primary backup storage for production applications",
    "type": "s3",
    "configuration": {
        "bucket": "hexabase-backups",
        "region": "us-west-2",
        "path_prefix": "ws-123/",
        "encryption": {"enabled": True, "algorithm": "AES256"},
    },
    "credentials": AWS,
    "labels": {"environment": "production", "team": "platform"},
}


def local_storage(tenant, tmp_path, name="local", **kwargs):
    return services.storage_create(
        tenant=tenant, name=name, type="local", configuration={"path": str(tmp_path)}, **kwargs
    )


def add_backup(tenant, storage, size, *, app=None, days_ago=0, status=BackupStatus.COMPLETED):
    when = timezone.now() - timedelta(days=days_ago)
    return Backup.objects.create(
        tenant=tenant,
        storage=storage,
        stored_bytes=size,
        status=status,
        application=app,
        completed_at=when,
        started_at=when,
    )


# --- workspace facade ------------------------------------------------------------------------


def test_create_list_get_update_in_seed_shapes(api, admin_a):
    client = api(admin_a)
    created = client.post(f"{WS}/backup-storages", SEED_CREATE, format="json")
    assert created.status_code == 201, created.content
    data = created.json()["data"]
    assert data["workspace_id"] == "alpha" and data["type"] == "s3" and data["status"] == "active"
    assert data["configuration"]["bucket"] == "hexabase-backups"
    assert data["credentials"] == {"access_key_id": "AKIA...", "secret_access_key": "[HIDDEN]"}
    assert data["usage"] == {"total_size_gb": 0.0, "backup_count": 0, "monthly_cost": 0.0}
    sid = data["id"]

    listed = client.get(f"{WS}/backup-storages?type=s3&status=active").json()
    assert listed["pagination"] == {"page": 1, "per_page": 20, "total": 1, "pages": 1}
    assert [s["id"] for s in listed["data"]] == [sid]
    assert client.get(f"{WS}/backup-storages?type=gcs").json()["data"] == []

    detail = client.get(f"{WS}/backup-storages/{sid}").json()["data"]
    assert detail["connection_status"]["status"] == "untested"
    assert detail["usage"]["breakdown"] == {"by_application": []}

    # The seed's update body: only configuration.encryption changes; bucket etc. are kept.
    encryption = {"enabled": True, "algorithm": "aws:kms", "kms_key_id": "arn:aws:kms:us-west-2:123456789:key/def-456"}
    updated = client.put(
        f"{WS}/backup-storages/{sid}",
        {"name": "updated-production-backups", "configuration": {"encryption": encryption}},
        format="json",
    )
    assert updated.status_code == 200, updated.content
    body = updated.json()["data"]
    assert body["name"] == "updated-production-backups" and body["configuration"]["encryption"] == encryption
    assert body["configuration"]["bucket"] == "hexabase-backups"
    assert sid.startswith("storage-")
    assert Storage.objects.get(pk=int(sid.removeprefix("storage-"))).credentials == AWS


def test_invalid_configuration_gives_the_seeds_error(api, admin_a):
    body = {
        **SEED_CREATE,
        "configuration": {"bucket": "Hexabase_Backups", "region": "us-west-2"},
        "credentials": {**AWS, "access_key_id": "not-a-key"},
    }
    response = api(admin_a).post(f"{WS}/backup-storages", body, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "INVALID_STORAGE_CONFIG",
            "message": "Invalid storage configuration",
            "details": {
                "bucket": "Bucket name contains invalid characters",
                "credentials": "Invalid access key format",
            },
        }
    }
    assert Storage.objects.count() == 0


@pytest.mark.parametrize(
    ("kind", "configuration", "credentials", "field"),
    [
        ("local", {"path": "relative/dir"}, {}, "path"),
        ("minio", {"bucket": "ok-bucket"}, {"access_key_id": "a", "secret_access_key": "b"}, "endpoint_url"),
        ("sftp", {"host": "sftp.example.com", "path": "/b", "port": 0}, {"password": "x"}, "port"),
        ("gcs", {"bucket": "my-bucket"}, {}, "credentials"),
        ("azure", {"account_name": "UPPER", "container": "backups"}, {"account_key": "YWJj"}, "account_name"),
    ],
)
def test_each_type_is_validated_field_by_field(api, admin_a, kind, configuration, credentials, field):
    response = api(admin_a).post(
        f"{WS}/backup-storages",
        {"name": "x", "type": kind, "configuration": configuration, "credentials": credentials},
        format="json",
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "INVALID_STORAGE_CONFIG" and field in error["details"], error


def test_invalid_update_is_refused_and_nothing_changes(api, admin_a, tenant_a, tmp_path):
    storage = local_storage(tenant_a, tmp_path)
    response = api(admin_a).put(
        f"{WS}/backup-storages/{storage.pk}", {"configuration": {"path": "nope"}}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["details"] == {
        "path": "Path must be absolute (start with '/')"
    }
    storage.refresh_from_db()
    assert storage.configuration == {"path": str(tmp_path)}


def test_delete_with_policies_needs_force_and_keeps_backups(api, admin_a, tenant_a, tmp_path):
    storage = local_storage(tenant_a, tmp_path)
    job = BackupJob.objects.create(tenant=tenant_a, name="nightly", storage=storage)
    backup = add_backup(tenant_a, storage, 100)
    client = api(admin_a)
    refused = client.delete(f"{WS}/backup-storages/{storage.pk}")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "STORAGE_IN_USE"
    assert refused.json()["error"]["details"]["policy_ids"] == [f"policy-{job.pk}"]
    forced = client.delete(f"{WS}/backup-storages/{storage.pk}?force=true")
    assert forced.status_code == 200
    assert forced.json() == {
        "data": {"message": "Backup storage deleted successfully", "storage_id": f"storage-{storage.pk}"}
    }
    job.refresh_from_db()
    backup.refresh_from_db()
    assert job.storage_id is None and backup.storage_id is None
    assert client.get(f"{WS}/backup-storages/{storage.pk}").status_code == 404


def test_usage_comes_from_stored_artifacts_and_price(api, viewer_a, tenant_a, tmp_path):
    storage = local_storage(tenant_a, tmp_path)
    Storage.objects.filter(pk=storage.pk).update(price_per_gb_month=Decimal("0.5"))
    web = services.application_create(tenant=tenant_a, name="web-app")
    add_backup(tenant_a, storage, 2 * 1024**3, app=web, days_ago=10)
    add_backup(tenant_a, storage, 1024**3, app=web, days_ago=1)
    add_backup(tenant_a, storage, 5 * 1024**3, status=BackupStatus.FAILED)  # not stored: not counted
    client = api(viewer_a)
    usage = client.get(f"{WS}/backup-storages/{storage.pk}/usage?period=last_3_months").json()["data"]
    assert usage["storage_id"] == f"storage-{storage.pk}"
    assert usage["current_usage"]["total_size_gb"] == 3.0 and usage["current_usage"]["backup_count"] == 2
    assert usage["current_usage"]["applications"] == 1
    assert usage["growth_trend"]["weekly_growth_percentage"] == 50.0
    assert usage["cost_breakdown"]["storage_cost"] == 1.5 and usage["cost_breakdown"]["total_monthly_cost"] == 1.5
    detail = client.get(f"{WS}/backup-storages/{storage.pk}").json()["data"]
    assert detail["usage"]["monthly_cost"] == 1.5
    assert detail["usage"]["breakdown"]["by_application"] == [
        {"application_id": f"app-{web.pk}", "application_name": "web-app", "size_gb": 3.0, "backup_count": 2}
    ]
    total = client.get(f"{WS}/backup-storage-usage").json()["data"]
    assert total["workspace_id"] == "alpha"
    assert total["total_usage"] == {"size_gb": 3.0, "backup_count": 2, "applications": 1, "storage_backends": 1}
    assert total["by_storage"][0]["cost"] == 1.5 and total["by_application"][0]["name"] == "web-app"
    assert client.get(f"{WS}/backup-storages/{storage.pk}/usage?period=forever").status_code == 400


def test_shared_plan_gets_feature_not_available(api, admin_a, tenant_a, tmp_path):
    storage = local_storage(tenant_a, tmp_path)
    tenant_a.plan = Plan.SHARED
    tenant_a.save()
    client = api(admin_a)
    for method, path in [
        ("get", "backup-storages"),
        ("post", "backup-storages"),
        ("get", f"backup-storages/{storage.pk}"),
        ("put", f"backup-storages/{storage.pk}"),
        ("delete", f"backup-storages/{storage.pk}"),
        ("get", f"backup-storages/{storage.pk}/usage"),
        ("get", "backup-storage-usage"),
        ("get", "applications"),
        ("post", "applications"),
    ]:
        response = getattr(client, method)(f"{WS}/{path}", {}, format="json")
        assert response.status_code == 403, (method, path)
        assert response.json() == {
            "error": {
                "code": "FEATURE_NOT_AVAILABLE",
                "message": "Backup functionality requires dedicated plan",
                "details": {"current_plan": "shared", "required_plan": "dedicated"},
            }
        }
    assert Storage.objects.filter(pk=storage.pk).exists()


# --- jobs facade: providers, real probes, space, backups ----------------------------------------


def test_probe_local_storage_by_id(api, operator_a, tenant_a, tmp_path):
    storage = local_storage(tenant_a, tmp_path)
    response = api(operator_a).post("/api/v1/storage/test", {"storage_id": storage.pk}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["message"] == "Storage test passed"
    data = body["data"]
    assert data["success"] is True and [s["name"] for s in data["steps"]] == ["connect", "write", "read", "delete"]
    assert list(tmp_path.iterdir()) == []  # the probe object was deleted
    storage.refresh_from_db()
    assert storage.last_test_ok is True and storage.last_tested_at is not None
    assert AuditEvent.objects.filter(action="storage_test", resource_id=str(storage.pk)).exists()


def test_probe_s3_unsaved_configuration(api, operator_a, s3_bucket):
    response = api(operator_a).post(
        "/api/v1/storage/test",
        {
            "provider_type": "minio",
            "configuration": s3_bucket.configuration,
            "credentials": s3_bucket.credentials,
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["success"] is True and data["storage_id"] is None, data
    assert s3_bucket.client().list_objects_v2(Bucket=s3_bucket.name).get("KeyCount", 0) == 0


def test_probe_s3_missing_bucket_fails_clearly(api, operator_a, tenant_a, s3_server):
    storage = services.storage_create(
        tenant=tenant_a,
        name="s3",
        type="minio",
        credentials=AWS,
        configuration={"bucket": "no-such-bucket-here", "endpoint_url": s3_server, "region": "us-east-1"},
    )
    data = api(operator_a).post("/api/v1/storage/test", {"storage_id": storage.pk}, format="json").json()["data"]
    assert data["success"] is False and data["error_kind"] == "not_found", data
    storage.refresh_from_db()
    assert storage.last_test_ok is False and storage.status == "error"
    detail = api(operator_a).get(f"{WS}/backup-storages/{storage.pk}").json()["data"]
    assert detail["connection_status"]["status"] == "failed" and detail["connection_status"]["test_result"] == "failure"


def test_probe_sftp_storage(api, operator_a, tenant_a, sftp_server):
    (sftp_server.root / "probe-here").mkdir(exist_ok=True)
    storage = services.storage_create(
        tenant=tenant_a,
        name="sftp",
        type="sftp",
        configuration={
            "host": sftp_server.host,
            "port": sftp_server.port,
            "path": "/probe-here",
            "username": sftp_server.username,
            "host_key": sftp_server.host_key,
        },
        credentials={"password": sftp_server.password},
    )
    data = api(operator_a).post("/api/v1/storage/test", {"storage_id": storage.pk}, format="json").json()["data"]
    assert data["success"] is True, data
    assert list((sftp_server.root / "probe-here").iterdir()) == []


def test_seed_example_network_provider_is_a_clear_error(api, operator_a):
    response = api(operator_a).post(
        "/api/v1/storage/test", {"provider_type": "network", "connection_string": "\\\\server\\backup"}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["error"] == "UNSUPPORTED_PROVIDER"
    assert "mount the share" in body["message"]
    unknown = api(operator_a).post("/api/v1/storage/test", {"provider_type": "nfs"}, format="json")
    assert "local, s3, minio, sftp, gcs, azure, network" in unknown.json()["details"]["provider_type"][0]


def test_probe_invalid_unsaved_config_is_invalid_storage_config(api, operator_a):
    response = api(operator_a).post(
        "/api/v1/storage/test", {"provider_type": "local", "configuration": {"path": "x"}}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"] == "INVALID_STORAGE_CONFIG"
    assert response.json()["details"] == {"path": "Path must be absolute (start with '/')"}


def test_providers_space_and_backups(api, viewer_a, tenant_a, tmp_path):
    storage = local_storage(tenant_a, tmp_path, quota_bytes=10_000)
    old = add_backup(tenant_a, storage, 1000, days_ago=2)
    new = add_backup(tenant_a, storage, 3000, days_ago=1)
    client = api(viewer_a)
    providers = client.get("/api/v1/storage/providers?page=1&page_size=10").json()
    assert providers["total"] == 1 and providers["page_size"] == 10 and providers["total_pages"] == 1
    assert providers["data"][0]["provider_type"] == "local" and providers["data"][0]["used_bytes"] == 4000
    one = client.get(f"/api/v1/storage/providers/{storage.pk}").json()
    assert one["success"] is True and one["data"]["backup_count"] == 2
    space = client.get(f"/api/v1/storage/{storage.pk}/space").json()["data"]
    assert (
        space["used_bytes"] == 4000 and space["quota_remaining_bytes"] == 6000 and space["quota_used_percent"] == 40.0
    )
    assert isinstance(space["available_bytes"], int) and space["available_bytes"] > 0
    backups = client.get(f"/api/v1/storage/{storage.pk}/backups").json()
    assert [b["id"] for b in backups["data"]] == [new.pk, old.pk] and backups["total"] == 2


def test_space_of_unreachable_storage_says_so(api, viewer_a, tenant_a, closed_port):
    storage = services.storage_create(
        tenant=tenant_a,
        name="s3",
        type="minio",
        credentials=AWS,
        configuration={"bucket": "bucket", "endpoint_url": f"http://127.0.0.1:{closed_port}"},
    )
    space = api(viewer_a).get(f"/api/v1/storage/{storage.pk}/space").json()["data"]
    assert space["used_bytes"] == 0 and space["available_bytes"] is None


# --- secrets ---------------------------------------------------------------------------------


def test_secrets_never_in_responses_logs_or_audit(api, admin_a, operator_a, tenant_a, caplog, sftp_server):
    caplog.set_level(logging.DEBUG)
    secret_key = AWS["secret_access_key"]
    client = api(admin_a)
    bodies = [client.post(f"{WS}/backup-storages", SEED_CREATE, format="json").content]
    sid = json.loads(bodies[0])["data"]["id"]
    bodies.append(client.get(f"{WS}/backup-storages").content)
    bodies.append(client.get(f"{WS}/backup-storages/{sid}").content)
    bodies.append(
        client.put(
            f"{WS}/backup-storages/{sid}", {"credentials": {"secret_access_key": "x" * 40}}, format="json"
        ).content
    )
    (sftp_server.root / "s").mkdir(exist_ok=True)
    sftp_body = {
        "provider_type": "sftp",
        "configuration": {
            "host": sftp_server.host,
            "port": sftp_server.port,
            "path": "/s",
            "username": sftp_server.username,
        },
        "credentials": {"password": sftp_server.password},
    }
    bodies.append(api(operator_a).post("/api/v1/storage/test", sftp_body, format="json").content)
    bodies.append(api(operator_a).get("/api/v1/storage/providers").content)
    bodies.append(api(operator_a).get(f"/api/v1/storage/providers/{sid.removeprefix('storage-')}").content)
    audit = json.dumps(list(AuditEvent.objects.values("details")))
    for secret in (secret_key, "x" * 40, sftp_server.password, AWS["access_key_id"]):
        assert all(secret.encode() not in body for body in bodies), secret
        assert secret not in caplog.text
        assert secret not in audit
