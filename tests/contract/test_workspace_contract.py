"""workspace-backup-api.md as written: ids, storages, restores, policies, triggers, downloads."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from datetime import time

import psycopg
import pytest
from psycopg import sql

from backups import services
from backups.models import Backup, Restore
from backups.services import backups as backup_services
from backups.services import restores as restore_services
from backups.storage import open_backend
from schedules import services as schedule_services

WS = "/api/v1/workspaces/alpha"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


@pytest.fixture
def folder(tmp_path):
    data = tmp_path / "site"
    data.mkdir()
    for n in range(3):
        (data / f"page{n}.html").write_text(f"<p>page {n}</p>\n" * 200)
    return data


@pytest.fixture
def storage(tenant_a, tmp_path):
    return services.storage_create(
        tenant=tenant_a, name="disk", type="local", configuration={"path": str(tmp_path / "store")}, is_default=True
    )


@pytest.fixture
def app(tenant_a, folder, storage):
    return services.application_create(
        tenant=tenant_a,
        name="web-app",
        namespace="frontend",
        sources=[{"name": "site", "type": "path", "path": str(folder)}],
    )


def completed_backup(tenant, app, admin, compression="gzip") -> Backup:
    op = backup_services.backup_start(tenant=tenant, actor=admin, application=app, compression=compression, queue=False)
    backup_services.backup_run(operation_id=op.pk)
    op.backup.refresh_from_db()
    assert op.backup.status == "completed", op.backup.error_message
    return op.backup


def test_ids_are_written_as_the_document_writes_them_and_both_forms_are_accepted(api, admin_a, app, storage):
    client = api(admin_a)
    listed = client.get(f"{WS}/backup-storages").json()["data"]
    assert [s["id"] for s in listed] == [f"storage-{storage.pk}"]
    for given in (f"storage-{storage.pk}", str(storage.pk)):
        assert client.get(f"{WS}/backup-storages/{given}").json()["data"]["id"] == f"storage-{storage.pk}"
    wrong_kind = client.get(f"{WS}/backup-storages/app-{storage.pk}")
    assert wrong_kind.status_code == 404 and wrong_kind.json()["error"]["code"] == "STORAGE_NOT_FOUND"
    policy = client.post(
        f"{WS}/applications/app-{app.pk}/backup-policy",
        {"storage_id": f"storage-{storage.pk}", "schedule": {"frequency": "daily", "time": "02:00"}},
        format="json",
    )
    assert policy.status_code == 201, policy.content
    body = policy.json()["data"]
    assert body["id"].startswith("policy-") and body["application_id"] == f"app-{app.pk}"
    assert body["storage_id"] == f"storage-{storage.pk}"
    moved = client.put(f"{WS}/applications/{app.pk}/backup-policy", {"storage_id": storage.pk}, format="json")
    assert moved.status_code == 200 and moved.json()["data"]["storage_id"] == f"storage-{storage.pk}"
    refused = client.put(f"{WS}/applications/{app.pk}/backup-policy", {"storage_id": "disk"}, format="json")
    assert refused.status_code == 400 and "storage_id" in refused.json()["error"]["details"]


def test_the_documented_s3_storage_is_created_and_encrypts_with_its_kms_key(api, admin_a, tenant_a):
    encryption = {"enabled": True, "algorithm": "AES256", "kms_key_id": "arn:aws:kms:us-west-2:123456789:key/abc-123"}
    response = api(admin_a).post(
        f"{WS}/backup-storages",
        {
            "name": "production-backups",
            "type": "s3",
            "configuration": {
                "bucket": "hexabase-backups",
                "region": "us-west-2",
                "path_prefix": "ws-123/",
                "encryption": encryption,
            },
            "credentials": {"access_key_id": "AKIAXXXXXXXXXXXXXXXX", "secret_access_key": "x" * 40},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()["data"]
    assert created["configuration"]["encryption"] == encryption
    again = api(admin_a).put(
        f"{WS}/backup-storages/{created['id']}", {"configuration": {"encryption": encryption}}, format="json"
    )
    assert again.status_code == 200, again.content
    backend = open_backend(
        "s3", created["configuration"], {"access_key_id": "AKIAXXXXXXXXXXXXXXXX", "secret_access_key": "x" * 40}
    )
    try:  # what each upload asks S3 for: SSE-KMS with the given key
        assert backend.put_extra == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": encryption["kms_key_id"]}
    finally:
        backend.close()


@pytest.fixture
def database(pg_throwaway_db):
    yield pg_throwaway_db.name
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        for suffix in ("_frontend_restored", "_copy"):
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(f"{pg_throwaway_db.name}{suffix}")
                )
            )


def databases() -> set[str]:
    with psycopg.connect(dbname="postgres", **PG) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_namespace_mapping_names_what_the_restore_creates(api, admin_a, tenant_a, folder, storage, database):
    server = services.server_create(
        tenant=tenant_a,
        name="pg",
        type="postgresql",
        host="127.0.0.1",
        port=5432,
        credentials={"username": "postgres", "password": ""},
    )
    app = services.application_create(
        tenant=tenant_a,
        name="shop",
        namespace="frontend",
        sources=[
            {"name": "db", "type": "postgresql", "server_id": server.pk, "database_name": database},
            {"name": "site", "type": "path", "path": str(folder)},
        ],
    )
    backup = completed_backup(tenant_a, app, admin_a)
    client = api(admin_a)
    url = f"{WS}/applications/app-{app.pk}/backups/backup-{backup.pk}/restore"
    unknown = client.post(url, {"namespace_mapping": {"backend": "x"}}, format="json")
    assert unknown.status_code == 400
    assert "namespace 'frontend'" in unknown.json()["error"]["details"]["namespace_mapping.backend"][0]

    response = client.post(
        url,
        {"namespace_mapping": {"frontend": "frontend-restored"}, "restore_options": {"restore_strategy": "create_new"}},
        format="json",
    )
    assert response.status_code == 202, response.content
    restore = Restore.objects.get(pk=int(response.json()["data"]["restore_id"].removeprefix("restore-")))
    restore_services.restore_run(operation_id=restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert f"{database}_frontend_restored" in databases()
    assert (folder.parent / "site.frontend-restored" / "page0.html").read_text() == (folder / "page0.html").read_text()
    detail = client.get(f"{WS}/applications/app-{app.pk}/restores/restore-{restore.pk}").json()["data"]
    assert detail["restored_resources"]["databases"] == [
        {"name": f"{database}_frontend_restored", "original_name": database, "status": "created"}
    ]
    assert detail["restored_resources"]["folders"][0]["name"] == str(folder) + ".frontend-restored"

    # A database named in the mapping comes back under that name.
    named = client.post(
        url, {"namespace_mapping": {database: f"{database}_copy", str(folder): str(folder) + "-2"}}, format="json"
    )
    restore2 = Restore.objects.get(pk=int(named.json()["data"]["restore_id"].removeprefix("restore-")))
    restore_services.restore_run(operation_id=restore2.operation_id)
    restore2.refresh_from_db()
    assert restore2.status == "completed", restore2.error_message
    assert f"{database}_copy" in databases() and (folder.parent / "site-2" / "page1.html").exists()
    listed = client.get(f"{WS}/applications/app-{app.pk}/restores").json()["data"]
    assert listed[0]["restored_resources"] == {"databases": 1, "folders": 1}
    assert "manifest" not in json.dumps(listed) and "sha256" not in json.dumps(listed)


@pytest.fixture
def policy(tenant_a, app, storage, admin_a):
    return schedule_services.job_create(
        tenant=tenant_a,
        actor=admin_a,
        name="web-app backup policy",
        application=app,
        storage=storage,
        schedule_type="daily",
        schedule_time=time(2, 0),
        days_of_week=[1, 2, 3, 4, 5],
        options={"compression": True},
    )


def test_a_second_trigger_says_a_backup_is_already_running(api, admin_a, app, policy):
    url = f"{WS}/applications/app-{app.pk}/backups/trigger"
    first = api(admin_a).post(url, {"description": "first"}, format="json")
    assert first.status_code == 202, first.content
    assert first.json()["data"]["status"] == "running"
    second = api(admin_a).post(url, {"description": "second"}, format="json")
    error = second.json()["error"]
    assert second.status_code == 409 and error["code"] == "BACKUP_IN_PROGRESS"
    assert "already running" in error["message"] and "modify" not in error["message"]
    assert error["details"]["current_backup_id"] == first.json()["data"]["backup_id"]


def test_a_policy_update_keeps_what_it_does_not_send(api, admin_a, app, policy):
    response = api(admin_a).put(
        f"{WS}/applications/app-{app.pk}/backup-policy",
        {"schedule": {"frequency": "daily", "time": "03:00"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["data"]["schedule"]["days_of_week"] == [1, 2, 3, 4, 5]
    policy.refresh_from_db()
    assert policy.days_of_week == [1, 2, 3, 4, 5] and policy.cron_expression == "0 3 * * 1-5"
    cleared = api(admin_a).put(
        f"{WS}/applications/app-{app.pk}/backup-policy",
        {"schedule": {"frequency": "daily", "days_of_week": None}},
        format="json",
    )
    assert cleared.status_code == 200 and cleared.json()["data"]["schedule"]["days_of_week"] is None


def test_a_keep_until_in_the_past_is_refused(api, admin_a, app):
    response = api(admin_a).post(
        f"{WS}/applications/app-{app.pk}/backups/trigger",
        {"retention_override": {"keep_until": "2024-12-31T23:59:59Z"}},
        format="json",
    )
    assert response.status_code == 400
    assert "future" in response.json()["error"]["details"]["keep_until"][0]
    assert not Backup.objects.filter(application=app).exists()


def test_a_gzip_backup_downloads_as_tar_gz_with_its_length(api, admin_a, tenant_a, app, folder):
    backup = completed_backup(tenant_a, app, admin_a, compression="gzip")
    response = api(admin_a).get(f"{WS}/applications/app-{app.pk}/backups/backup-{backup.pk}/download")
    content = b"".join(response.streaming_content)
    assert response.status_code == 200 and int(response["Content-Length"]) == len(content) == backup.compressed_bytes
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(content))) as bundle:
        assert "manifest.json" in bundle.getnames()
    # zstd artifacts are re-compressed on the way: the length is not known in advance.
    other = completed_backup(tenant_a, app, admin_a, compression="zstd")
    streamed = api(admin_a).get(f"{WS}/applications/app-{app.pk}/backups/backup-{other.pk}/download")
    assert not streamed.has_header("Content-Length")
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(b"".join(streamed.streaming_content)))) as bundle:
        assert "manifest.json" in bundle.getnames()


def test_small_backups_have_a_size_and_a_cost(api, admin_a, tenant_a, app, storage):
    from decimal import Decimal

    storage.price_per_gb_month = Decimal("0.023")
    storage.save(update_fields=["price_per_gb_month"])
    backup = completed_backup(tenant_a, app, admin_a)
    client = api(admin_a)
    listed = client.get(f"{WS}/applications/app-{app.pk}/backups").json()["data"]
    assert listed[0]["size_gb"] == pytest.approx(backup.stored_bytes / 1024**3, rel=1e-5) and listed[0]["size_gb"] > 0
    usage = client.get(f"{WS}/backup-storages/storage-{storage.pk}").json()["data"]["usage"]
    assert usage["total_size_gb"] > 0 and usage["monthly_cost"] > 0
    assert listed[0]["retention"] == {"expires_at": None, "category": "none", "keep_forever": False}
