"""api-layer.md as written: testing a network storage, checksums and sizes of the jobs API."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from backups import services
from backups.services import backups as backup_services


def test_a_network_storage_given_as_an_sftp_url_is_really_probed(api, operator_a, sftp_server):
    url = (
        f"sftp://{sftp_server.username}:{quote(sftp_server.password, safe='')}@{sftp_server.host}:"
        f"{sftp_server.port}/probe"
    )
    (sftp_server.root / "probe").mkdir(exist_ok=True)
    response = api(operator_a).post(
        "/api/v1/storage/test", {"provider_type": "network", "connection_string": url}, format="json"
    )
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["success"] is True and data["provider_type"] == "sftp", data
    assert data["steps"] and all(step["ok"] for step in data["steps"])
    assert sftp_server.password not in response.content.decode()


def test_a_network_share_mounted_on_the_platform_is_a_folder(api, operator_a, tmp_path):
    share = tmp_path / "mnt-backup"
    share.mkdir()
    response = api(operator_a).post(
        "/api/v1/storage/test", {"provider_type": "network", "connection_string": str(share)}, format="json"
    )
    assert response.status_code == 200 and response.json()["data"]["success"] is True, response.content
    assert response.json()["data"]["provider_type"] == "local"


@pytest.mark.parametrize("address", ["\\\\server\\backup", "smb://server/backup", "ftp://server/backup"])
def test_a_share_the_platform_cannot_reach_gets_a_clear_error(api, operator_a, address):
    response = api(operator_a).post(
        "/api/v1/storage/test", {"provider_type": "network", "connection_string": address}, format="json"
    )
    body = response.json()
    assert response.status_code == 400 and body["error"] == "UNSUPPORTED_PROVIDER", body
    assert "sftp://" in body["details"]["supported"]


def test_a_network_storage_needs_its_connection_string(api, operator_a):
    response = api(operator_a).post("/api/v1/storage/test", {"provider_type": "network"}, format="json")
    assert response.status_code == 400 and "connection_string" in response.json()["details"]


def test_checksums_and_sizes_of_small_backups(api, operator_a, tenant_a, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("hello\n" * 500)
    storage = services.storage_create(
        tenant=tenant_a, name="disk", type="local", configuration={"path": str(tmp_path / "store")}, is_default=True
    )
    app = services.application_create(
        tenant=tenant_a, name="files", sources=[{"name": "data", "type": "path", "path": str(folder)}]
    )
    op = backup_services.backup_start(tenant=tenant_a, application=app, queue=False)
    backup_services.backup_run(operation_id=op.pk)
    op.backup.refresh_from_db()
    client = api(operator_a)
    stored = client.get(f"/api/v1/storage/{storage.pk}/backups").json()["data"][0]
    assert stored["checksum"] == f"sha256:{op.backup.checksum}"
    space = client.get(f"/api/v1/storage/{storage.pk}/space").json()["data"]
    assert space["used_gb"] == pytest.approx(op.backup.stored_bytes / 1024**3, rel=1e-5) and space["used_gb"] > 0
