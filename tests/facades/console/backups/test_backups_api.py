"""system-backup-recovery.rst "Backup Management": create, list, details, download, delete."""

from __future__ import annotations

import io
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backups.models import Backup, Operation
from backups.services.backups import backup_run
from backups.services.operations import operation_cancel
from backups.services.restores import restore_start
from backups.services.verifications import verification_run, verification_start

from .conftest import CONSOLE, make_backup

pytestmark = pytest.mark.django_db


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["details"], dict) and error["timestamp"].endswith("Z")
    return error


def content_of(response) -> bytes:
    return b"".join(response.streaming_content)


def test_create_backs_up_the_chosen_components_and_reports_progress(api, operator_a, tenant_a, components_a, storage_a):
    client = api(operator_a)
    response = client.post(
        f"{CONSOLE}/create",
        {
            "name": "pre_maintenance_backup",
            "type": "full",
            "components": ["data"],
            "destination": "disk",
            "encrypt": True,
            "compression": "gzip",
            "verify_integrity": False,
            "description": "Manual backup before system maintenance",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    op = Operation.objects.get(public_id=body["job_id"])
    assert body["status"] == "started" and body["backup_id"] == op.backup_id
    assert body["progress_url"] == f"{CONSOLE}/progress/{op.public_id}"
    assert body["components"] == ["data"] and body["destination"] == "disk"
    assert body["estimated_size"] is None and body["estimated_duration"] is None  # nothing to go by yet
    backup = op.backup
    assert (backup.name, backup.components, backup.compression, backup.storage_id) == (
        "pre_maintenance_backup",
        ["data"],
        "gzip",
        storage_a.pk,
    )
    assert backup.description == "Manual backup before system maintenance"

    queued = client.get(body["progress_url"]).json()
    assert queued["status"] == "pending" and queued["operation"] == "backup_create" and queued["progress"] == 0

    backup_run(operation_id=op.pk)
    done = client.get(body["progress_url"]).json()
    assert done["status"] == "completed" and done["progress"] == 100 and done["backup_id"] == backup.pk
    details = done["details"]
    assert details["processed_bytes"] > 0 and details["processed"].endswith("B")
    assert details["elapsed"].count(":") == 2 and details["elapsed_seconds"] >= 0 and details["eta_seconds"] == 0
    backup.refresh_from_db()
    members = [s["component"] for s in backup.manifest["bundle"]["sources"]]
    assert members == ["data"]  # the config source was not asked for

    again = client.post(f"{CONSOLE}/create", {"components": ["data"]}, format="json").json()
    assert again["estimated_size_bytes"] == backup.stored_bytes and again["estimated_size"].endswith("B")
    assert again["estimated_duration_seconds"] == backup.duration_seconds


def test_create_config_backs_up_the_configuration_alone(api, operator_a, components_a, storage_a):
    body = api(operator_a).post(f"{CONSOLE}/create", {"type": "config"}, format="json").json()
    op = Operation.objects.get(public_id=body["job_id"])
    assert op.backup.components == ["config"] and body["components"] == ["config"]
    backup_run(operation_id=op.pk)
    listing = api(operator_a).get(f"{CONSOLE}/list", {"type": "config"}).json()
    assert [b["id"] for b in listing["backups"]] == [op.backup_id]
    assert listing["backups"][0]["type"] == "Configuration"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"components": ["database"]}, "components"),  # no database source in the default application
        ({"components": ["kernel"]}, "components"),
        ({"components": "data"}, "components"),
        ({"components": []}, "components"),
        ({"encrypt": False}, "encrypt"),
        ({"compression": "lzma"}, "compression"),
        ({"destination": "nowhere"}, "destination"),
        ({"name": 7}, "name"),
        ({"type": "incremental"}, "type"),
        ({"type": "config", "components": ["data"]}, "components"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_create_refuses_bad_input_and_starts_nothing(api, operator_a, components_a, storage_a, payload, field):
    error = error_of(api(operator_a).post(f"{CONSOLE}/create", payload, format="json"), 400, "VALIDATION_ERROR")
    assert field in error["details"], error
    assert not Backup.objects.exists() and not Operation.objects.exists()


def test_create_with_no_components_configured_says_so(api, operator_a, tenant_a, storage_a):
    error = error_of(
        api(operator_a).post(f"{CONSOLE}/create", {"components": ["data"]}, format="json"), 400, "VALIDATION_ERROR"
    )
    assert "add sources" in error["details"]["components"][0]


def test_list_shows_the_table_with_filters_and_storage_totals(
    api, viewer_a, tenant_a, components_a, storage_a, backup_a
):
    config = make_backup(tenant_a, components_a, storage_a, components=["config"], name="config_only")
    failed = Backup.objects.create(
        tenant=tenant_a,
        name="broken",
        status="failed",
        application=components_a,
        storage=storage_a,
        error_message="pg_dump: connection refused",
    )
    Backup.objects.filter(pk=backup_a.pk).update(created_at=timezone.now() - timedelta(days=3))
    client = api(viewer_a)
    body = client.get(f"{CONSOLE}/list").json()
    assert body["total"] == 3 and body["limit"] == 50
    assert [b["id"] for b in body["backups"]] == [failed.pk, config.pk, backup_a.pk]
    row = body["backups"][2]
    assert row["name"] == "nightly_a" and row["type"] == "Full System" and row["type_code"] == "full"
    assert row["size"] == backup_a.size_bytes and row["stored_bytes"] == backup_a.stored_bytes
    assert row["size_display"].split()[-1] in ("B", "KB", "MB")
    assert row["location"] == "disk" and row["location_type"] == "local" and row["locations"] == ["disk"]
    assert row["encrypted"] is True and row["integrity"] == "unverified" and row["checksum"] == backup_a.checksum
    assert row["components"] == ["data", "config"] and row["filename"] == "nightly_a.tar"
    assert row["summary"] == "Full System • Encrypted • Local"
    assert body["backups"][0]["integrity"] == "failed" and body["backups"][0]["error"] == "pg_dump: connection refused"
    stored = backup_a.stored_bytes + config.stored_bytes
    assert body["storage_used_bytes"] == stored and body["storage_available_bytes"] > 0

    assert client.get(f"{CONSOLE}/list", {"limit": 1}).json()["backups"][0]["id"] == failed.pk
    assert client.get(f"{CONSOLE}/list", {"type": "full"}).json()["total"] == 2
    today = timezone.now().date()
    recent = client.get(f"{CONSOLE}/list", {"date_from": (today - timedelta(days=1)).isoformat()}).json()
    assert {b["id"] for b in recent["backups"]} == {failed.pk, config.pk}
    old = client.get(f"{CONSOLE}/list", {"date_to": (today - timedelta(days=2)).isoformat()}).json()
    assert [b["id"] for b in old["backups"]] == [backup_a.pk]


@pytest.mark.parametrize(
    "query",
    [
        {"date_from": "2025-13-01"},
        {"date_to": "yesterday"},
        {"type": "pre_ota"},
        {"limit": "0"},
        {"limit": "ten"},
        {"limit": "99999"},
        {"date_from": "2025-06-02", "date_to": "2025-06-01"},
    ],
)
def test_list_refuses_bad_filters(api, viewer_a, query):
    error = error_of(api(viewer_a).get(f"{CONSOLE}/list", query), 400, "VALIDATION_ERROR")
    assert set(error["details"]) & {"date_from", "date_to", "type", "limit"}


def test_details_show_integrity_components_locations_and_verifications(
    api, viewer_a, admin_a, tenant_a, backup_a, storage_a
):
    verification = verification_start(tenant=tenant_a, backup=backup_a, actor=admin_a, test_type="decrypt", queue=False)
    verification_run(operation_id=verification.operation_id)
    body = api(viewer_a).get(f"{CONSOLE}/details/{backup_a.pk}").json()
    assert body["id"] == backup_a.pk and body["compressed_size"] == backup_a.stored_bytes
    assert body["compression_ratio"] == round(backup_a.size_bytes / backup_a.stored_bytes, 2)
    assert body["integrity"]["verified"] is True and body["integrity"]["signature_valid"] is True
    assert body["integrity"]["verification_time"].endswith("Z")
    assert body["encryption"] == {"enabled": True, "algorithm": "AES-256-GCM", "key_id": backup_a.key_id}
    members = {s["member"]: s["component"] for s in backup_a.manifest["bundle"]["sources"]}
    sizes = {members[m["name"]]: m["size"] for m in backup_a.manifest["bundle"]["members"] if m["name"] in members}
    assert body["components"]["data"] == {
        "included": True,
        "size_bytes": sizes["data"],
        "size": body["components"]["data"]["size"],
    }
    assert body["components"]["config"]["included"] and body["components"]["config"]["size_bytes"] == sizes["config"]
    assert body["components"]["database"] == {"included": False, "size": "0 B", "size_bytes": 0}
    assert body["storage_locations"] == [
        {
            "storage": "disk",
            "storage_id": storage_a.pk,
            "type": "local",
            "storage_type": "local",
            "path": backup_a.storage_path,
            "primary": True,
            "verified": True,
            "status": "available",
        }
    ]
    history = body["verification_history"]
    assert [(v["id"], v["test_type"], v["passed"]) for v in history] == [(verification.pk, "decrypt", True)]
    assert body["metadata"]["created_by"] == "alice" and body["metadata"]["trigger"] == "manual"


def test_download_streams_the_content_decrypted_or_the_artifact_as_stored(api, operator_a, backup_a, storage_a):
    client = api(operator_a)
    response = client.get(f"{CONSOLE}/download/{backup_a.pk}")
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="nightly_a.tar"'
    with tarfile.open(fileobj=io.BytesIO(content_of(response))) as tar:
        names = tar.getnames()
    assert "manifest.json" in names and any(n.endswith("-www.tar") for n in names)

    raw = client.get(f"{CONSOLE}/download/{backup_a.pk}", {"raw": "1"})
    stored = Path(storage_a.configuration["path"]) / backup_a.storage_path
    assert raw["Content-Disposition"] == f'attachment; filename="{stored.name}"'
    assert int(raw["Content-Length"]) == backup_a.stored_bytes and content_of(raw) == stored.read_bytes()
    error_of(client.get(f"{CONSOLE}/download/{backup_a.pk}", {"raw": "yes"}), 400, "VALIDATION_ERROR")


def test_download_of_a_file_gone_from_storage_is_backup_not_found(api, operator_a, backup_a, storage_a):
    (Path(storage_a.configuration["path"]) / backup_a.storage_path).unlink()
    error = error_of(api(operator_a).get(f"{CONSOLE}/download/{backup_a.pk}"), 404, "BACKUP_NOT_FOUND")
    assert error["details"]["storage"] == "disk"


def test_delete_frees_the_storage_and_waits_for_a_restore_reading_it(
    api, admin_a, tenant_a, backup_a, storage_a, tmp_path
):
    restore = restore_start(tenant=tenant_a, backup=backup_a, target_path=str(tmp_path / "back"), queue=False)
    client = api(admin_a)
    refused = error_of(
        client.post(f"{CONSOLE}/delete", {"backup_id": backup_a.pk, "reason": "Storage cleanup"}, format="json"),
        409,
        "BACKUP_IN_USE",
    )
    assert refused["details"]["operations"] == [
        {"job_id": restore.operation.public_id, "kind": "restore", "status": "pending"}
    ]
    stored = Path(storage_a.configuration["path"]) / backup_a.storage_path
    assert stored.exists()

    operation_cancel(tenant=tenant_a, public_id=restore.operation.public_id)
    response = client.post(f"{CONSOLE}/delete", {"backup_id": backup_a.pk, "reason": "Storage cleanup"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "deleted" and body["message"] == "Backup deleted successfully"
    assert body["storage_freed_bytes"] == backup_a.stored_bytes and body["locations"] == ["disk"]
    assert body["storage_freed"].endswith("B")
    assert not stored.exists() and not Backup.objects.filter(pk=backup_a.pk).exists()
    error_of(client.get(f"{CONSOLE}/details/{backup_a.pk}"), 404, "BACKUP_NOT_FOUND")


@pytest.mark.parametrize(
    "payload",
    [
        {"backup_id": "1"},
        {"backup_id": True},
        {"backup_id": 0},
        {},
        {"backup_id": 1, "force": True},
        {"backup_id": 2**64},
    ],
)
def test_delete_refuses_bad_input(api, admin_a, backup_a, payload):
    error_of(api(admin_a).post(f"{CONSOLE}/delete", payload, format="json"), 400, "VALIDATION_ERROR")
    assert Backup.objects.filter(pk=backup_a.pk).exists()


def test_download_that_cannot_be_decrypted_is_an_encryption_error(api, operator_a, backup_a, storage_a):
    stored = Path(storage_a.configuration["path"]) / backup_a.storage_path
    data = bytearray(stored.read_bytes())
    data[:8] = b"NOTBPAF!"  # the header no longer says what the artifact is
    stored.write_bytes(bytes(data))
    client = api(operator_a)
    error = error_of(client.get(f"{CONSOLE}/download/{backup_a.pk}"), 409, "ENCRYPTION_ERROR")
    assert error["details"] == {"backup_id": backup_a.pk, "key_id": backup_a.key_id}
    raw = client.get(f"{CONSOLE}/download/{backup_a.pk}", {"raw": "1"})  # as stored, for a look offline
    assert raw.status_code == 200 and content_of(raw)[:8] == b"NOTBPAF!"
