"""Configuration snapshots (taken, changed, restored exactly; a failing restore changes
nothing) and disaster recovery over a running application's database."""

from __future__ import annotations

import psycopg
import pytest

from backups.models import Backup, Operation, Server, Snapshot, Storage
from backups.services import server_create, server_update, storage_create
from backups.services.applications import application_create
from backups.services.backups import backup_run, backup_start
from backups.services.config import platform_config_export
from backups.tasks import run_restore, run_snapshot_restore
from schedules import services as schedule_services
from schedules.models import BackupJob
from tests.e2e.conftest import PG, needs_pg, pg_dump_text

pytestmark = [pytest.mark.django_db(transaction=True)]
BASE = "/cloud-integration/backup"


def configuration(tenant) -> dict:
    return platform_config_export(tenant=tenant, secrets="hidden")["modules"]


@pytest.fixture
def configured(tenant_a, tmp_path):
    server = server_create(
        tenant=tenant_a,
        name="db1",
        type="postgresql",
        host="10.0.0.5",
        port=5432,
        credentials={"username": "app", "password": "first-pw"},
    )
    storage = storage_create(tenant=tenant_a, name="disk", type="local", configuration={"path": str(tmp_path / "s")})
    (tmp_path / "www").mkdir()
    app = application_create(
        tenant=tenant_a,
        name="shop",
        sources=[
            {"type": "postgresql", "server_id": server.pk, "database_name": "shop"},
            {"type": "path", "path": str(tmp_path / "www"), "name": "www"},
        ],
    )
    schedule_services.retention_policy_create(tenant=tenant_a, name="gfs", keep_daily=7)
    schedule_services.job_create(
        tenant=tenant_a,
        name="nightly",
        application=app,
        storage=storage,
        schedule_type="daily",
        schedule_time=__import__("datetime").time(2, 0),
        public_id="schedule_nightly",
        retention_count=5,
    )
    return server


def test_snapshot_restore_brings_the_configuration_back_exactly(api, admin_a, tenant_a, configured):
    client = api(admin_a)
    before = configuration(tenant_a)
    created = client.post(f"{BASE}/snapshots/create", {"name": "Pre_Update", "tags": ["update"]}, format="json")
    assert created.status_code == 201, created.content
    snapshot = Snapshot.objects.get(pk=created.json()["snapshot_id"])
    assert b"first-pw" not in bytes(snapshot.artifact) and bytes(snapshot.artifact).startswith(b"BPAF")

    # Change everything: a new server, a new password and port, a schedule edited, one added.
    server_update(server=configured, port=6543, credentials={"password": "second-pw"})
    server_create(tenant=tenant_a, name="db2", type="mysql", host="10.0.0.6", port=3306)
    job = BackupJob.objects.get(public_id="schedule_nightly")
    schedule_services.job_update(job=job, retention_count=1, enabled=False)
    schedule_services.retention_policy_create(tenant=tenant_a, name="extra", keep_last_n=2)
    assert configuration(tenant_a) != before

    started = client.post(
        f"{BASE}/snapshots/restore",
        {"snapshot_id": snapshot.pk, "create_backup": True, "reason": "rollback"},
        format="json",
    )
    assert started.status_code == 200, started.content
    body = started.json()
    assert body["progress_url"] == f"{BASE}/restore/progress/{body['restore_id']}"
    assert Snapshot.objects.filter(pk=body["pre_restore_backup_id"], trigger="pre_restore").exists()
    op = Operation.objects.get(public_id=body["restore_id"])
    assert op.kind == "restore"
    run_snapshot_restore(op.pk)
    op.refresh_from_db()
    assert op.status == "completed", op.error_message
    assert configuration(tenant_a) == before
    assert Server.objects.get(tenant=tenant_a, name="db1").credentials["password"] == "first-pw"
    assert BackupJob.objects.get(public_id="schedule_nightly").enabled


def test_a_failing_component_restore_leaves_the_configuration_unchanged(api, admin_a, tenant_a, configured, tmp_path):
    client = api(admin_a)
    snapshot_id = client.post(f"{BASE}/snapshots/create", {"name": "base"}, format="json").json()["snapshot_id"]
    server_update(server=configured, port=6543)
    server_create(tenant=tenant_a, name="db2", type="mysql", host="10.0.0.6", port=3306)
    extra = Storage.objects.create(
        tenant=tenant_a, name="extra", type="local", configuration={"path": str(tmp_path / "extra")}
    )
    Backup.objects.create(tenant=tenant_a, name="kept", status="completed", storage=extra, storage_path="x.bpaf")
    changed = configuration(tenant_a)
    # Servers would apply, but the storage holding a backup cannot go: nothing is applied.
    body = client.post(
        f"{BASE}/snapshots/restore", {"snapshot_id": snapshot_id, "components": ["servers", "storages"]}, format="json"
    ).json()
    op = Operation.objects.get(public_id=body["restore_id"])
    run_snapshot_restore(op.pk)
    op.refresh_from_db()
    assert op.status == "failed" and "extra" in op.error_message
    assert configuration(tenant_a) == changed
    assert Server.objects.filter(tenant=tenant_a, name="db2").exists()


def test_snapshot_routes_refuse_bad_input_other_tenants_and_roles(
    api, admin_a, operator_a, viewer_a, admin_b, tenant_a, configured
):
    snapshot_id = api(admin_a).post(f"{BASE}/snapshots/create", {"name": "s"}, format="json").json()["snapshot_id"]
    for body in (
        {"name": 5},
        {"name": "x", "include_data": True},
        {"name": "x", "components": ["acs"]},
        {"name": "x", "colour": 1},
    ):
        response = api(admin_a).post(f"{BASE}/snapshots/create", body, format="json")
        assert response.status_code == 400 and response.json()["error"]["code"] == "VALIDATION_ERROR", body
    bad = api(admin_a).generic("POST", f"{BASE}/snapshots/restore", "{", content_type="application/json")
    assert bad.status_code == 400 and "error" in bad.json()
    assert (
        api(operator_a).post(f"{BASE}/snapshots/restore", {"snapshot_id": snapshot_id}, format="json").status_code
        == 403
    )
    assert api(viewer_a).post(f"{BASE}/snapshots/create", {"name": "v"}, format="json").status_code == 403
    assert (
        api(admin_b).post(f"{BASE}/snapshots/restore", {"snapshot_id": snapshot_id}, format="json").status_code == 404
    )
    assert api(admin_b).get(f"{BASE}/snapshots").json()["snapshots"] == []
    assert not Operation.objects.exists()


@needs_pg
def test_recovery_over_a_running_applications_database(
    api, operator_a, tenant_a, pg_server_row, pg_source_db, local_storage
):
    app = application_create(
        tenant=tenant_a,
        name="shop",
        sources=[{"type": "postgresql", "server_id": pg_server_row.pk, "database_name": pg_source_db}],
    )
    op = backup_start(tenant=tenant_a, application=app, storage=local_storage, queue=False)
    backup_run(operation_id=op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message
    original = pg_dump_text(pg_source_db)
    client = api(operator_a)

    # The application keeps running and corrupts its data.
    running = psycopg.connect(dbname=pg_source_db, autocommit=True, **PG)
    running.execute("DELETE FROM customers WHERE id > 10; UPDATE blobs SET payload = NULL")
    preview = client.get(f"{BASE}/recovery/preview/{backup.pk}").json()
    impact = preview["impact_analysis"]
    assert impact["components_affected"] == ["database"] and impact["items"][0]["target"] == pg_source_db
    assert "never been verified" in " ".join(preview["warnings"]) and impact["estimate_basis"]

    refused = client.post(f"{BASE}/recovery/initiate", {"backup_id": backup.pk, "confirmation": False}, format="json")
    assert refused.status_code == 400 and "confirmation" in refused.json()["error"]["details"]
    assert not Operation.objects.filter(kind="recovery").exists()

    started = client.post(
        f"{BASE}/recovery/initiate",
        {"backup_id": backup.pk, "confirmation": True, "create_pre_recovery_snapshot": True, "reason": "corruption"},
        format="json",
    )
    assert started.status_code == 200, started.content
    body = started.json()
    assert Snapshot.objects.filter(pk=body["pre_recovery_snapshot_id"], trigger="pre_recovery").exists()
    recovery = Operation.objects.get(public_id=body["recovery_id"])
    assert recovery.kind == "recovery"
    run_restore(recovery.pk)
    progress = client.get(body["progress_url"]).json()
    assert progress["status"] == "completed", progress
    assert pg_dump_text(pg_source_db) == original
    assert running.closed or running.broken or _gone(running)
    # A second preview now measures this tenant's restore throughput.
    again = client.get(f"{BASE}/recovery/preview/{backup.pk}").json()["impact_analysis"]
    assert "completed restore" in again["estimate_basis"]


def _gone(conn) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.Error:
        return True
    return False
