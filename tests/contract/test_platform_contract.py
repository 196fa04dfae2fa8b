"""db-backup-platform.md as written: query errors, a running backup's progress, storage paths."""

from __future__ import annotations

import pytest

from backups import services
from backups.models import Operation
from backups.progress import ProgressReporter
from backups.services import backups as backup_services
from backups.services import operations


@pytest.fixture
def server(tenant_a):
    return services.server_create(
        tenant=tenant_a,
        name="pg",
        type="postgresql",
        host="127.0.0.1",
        port=5432,
        credentials={"username": "postgres", "password": ""},
    )


@pytest.fixture
def storage(tenant_a, tmp_path):
    return services.storage_create(
        tenant=tenant_a, name="disk", type="local", configuration={"path": str(tmp_path / "store")}, is_default=True
    )


@pytest.mark.parametrize(
    ("query", "name", "kind"),
    [
        ("limit=abc", "limit", "type_error.integer"),
        ("server_id=abc", "server_id", "type_error.integer"),
        ("limit=0", "limit", "value_error.number.not_ge"),
        ("offset=-1", "offset", "value_error.number.not_ge"),
        ("db_type=oracle", "db_type", "type_error.enum"),
        ("status=lost", "status", "type_error.enum"),
        ("serverid=1", "serverid", "value_error.extra"),
        ("page=2", "page", "value_error.extra"),
    ],
)
def test_a_bad_query_parameter_is_reported_where_it_is_with_its_type(api, viewer_a, query, name, kind):
    response = api(viewer_a).get(f"/api/v1/backups?{query}")
    assert response.status_code == 422, response.content
    detail = response.json()["detail"]
    assert [(item["loc"], item["type"]) for item in detail] == [(["query", name], kind)], detail


def test_the_audit_log_takes_only_its_documented_parameters(api, admin_a):
    client = api(admin_a)
    assert client.get("/api/v1/audit/logs?action=backup_create&limit=100&offset=0").status_code == 200
    bad = client.get("/api/v1/audit/logs?user_id=x&sort=desc").json()["detail"]
    assert sorted((i["loc"][1], i["type"]) for i in bad) == [
        ("sort", "value_error.extra"),
        ("user_id", "type_error.integer"),
    ]
    assert all(i["loc"][0] == "query" for i in bad)
    export = client.get("/api/v1/audit/export?format=xml")
    assert export.status_code == 422 and export.json()["detail"][0]["loc"] == ["query", "format"]


def test_a_body_error_is_still_located_in_the_body(api, operator_a):
    response = api(operator_a).post("/api/v1/backups", {"database_name": "x"}, format="json")
    assert response.json()["detail"] == [
        {"loc": ["body", "server_id"], "msg": "field required", "type": "value_error.missing"}
    ]


def test_a_running_backup_shows_how_far_it_is(api, operator_a, tenant_a, server, storage):
    created = api(operator_a).post(
        "/api/v1/backups", {"server_id": server.pk, "database_name": "postgres"}, format="json"
    )
    assert created.status_code == 201, created.content
    backup_id = created.json()["id"]
    op = Operation.objects.get(backup_id=backup_id)
    queued = api(operator_a).get(f"/api/v1/backups/{backup_id}").json()
    assert queued["status"] == "pending" and queued["progress"] == 0 and queued["operation_id"] == op.public_id
    # What the pipeline does while it streams: claim the work, report steps and bytes.
    op = operations.operation_claim(operation_id=op.pk)
    reporter = ProgressReporter(op, total=4 * 1024**2, interval=0)
    reporter.step("dumping_and_encrypting", progress=2)
    reporter.update(2 * 1024**2)
    running = api(operator_a).get(f"/api/v1/backups/{backup_id}").json()
    assert running["current_step"] == "dumping_and_encrypting" and running["progress"] == 50
    assert running["bytes_processed"] == 2 * 1024**2 and running["bytes_total"] == 4 * 1024**2
    assert running["throughput_bps"] > 0 and running["eta_seconds"] is not None
    assert "progress" not in api(operator_a).get("/api/v1/backups").json()["items"][0]


def test_storage_path_names_the_storage_and_the_artifact_not_the_platforms_folders(
    api, operator_a, tenant_a, server, storage, tmp_path
):
    op = backup_services.backup_start(tenant=tenant_a, server=server, database_name="postgres", queue=False)
    backup_services.backup_run(operation_id=op.pk)
    op.backup.refresh_from_db()
    assert op.backup.status == "completed", op.backup.error_message
    shown = api(operator_a).get(f"/api/v1/backups/{op.backup_id}").json()
    assert shown["storage_path"] == f"local://disk/{op.backup.storage_path}"
    assert str(tmp_path) not in shown["storage_path"] and shown["storage_path"].count("/alpha/") == 1
    assert shown["checksum"] == f"sha256:{op.backup.checksum}" and shown["progress"] == 100
