"""Import: a plain ``pg_dump -Fc`` file and a ``.tar.gz`` of files become backups that restore;
hostile uploads are refused with nothing left on disk or in the database."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from backups import confinement
from backups.models import Backup, Operation
from backups.services.restores import restore_start
from backups.tasks import run_import, run_restore
from tests.e2e.conftest import PG, needs_pg, pg_dump_text

pytestmark = [pytest.mark.django_db(transaction=True)]
BASE = "/cloud-integration/backup"


def upload(client, route: str, name: str, content: bytes, **fields):
    return client.post(f"{BASE}/{route}", {"file": SimpleUploadedFile(name, content), **fields}, format="multipart")


def staged_files(tenant) -> list[str]:
    folder = Path(confinement.import_staging_dir(tenant))
    return [str(p) for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def member(name: str, data: bytes = b"x", **changes) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in changes.items():
        setattr(info, key, value)
    return info, data if info.isreg() else None


@needs_pg
def test_pg_dump_custom_file_is_imported_and_restored(
    api, operator_a, tenant_a, pg_server_row, pg_source_db, local_storage, cleanup_pg, tmp_path
):
    dump = subprocess.run(
        ["pg_dump", "-Fc", "-h", PG["host"], "-p", str(PG["port"]), "-U", PG["user"], pg_source_db],
        capture_output=True,
        check=True,
    ).stdout
    client = api(operator_a)
    checked = upload(client, "import/validate", "nightly.dump", dump)
    assert checked.status_code == 200, checked.content
    assert checked.json()["validation"]["format"] == "pg_custom"
    assert staged_files(tenant_a) == [] and not Backup.objects.exists()  # validation keeps nothing

    response = upload(client, "import", "nightly.dump", dump)
    assert response.status_code == 200, response.content
    body = response.json()
    run_import(Operation.objects.get(public_id=body["import_id"]).pk)
    progress = client.get(body["progress_url"]).json()
    assert progress["status"] == "completed", progress
    backup = Backup.objects.get(pk=body["backup_id"])
    assert backup.trigger == "imported" and backup.encrypted and backup.db_type == "postgresql"
    # Recorded like any backup's artifact: the same format, its payload, where it came from.
    assert backup.manifest["format"] == "BPAF v2" and backup.manifest["payload"] == "pg_dump-custom"
    assert backup.manifest["source"]["imported_from"] == "nightly.dump" and backup.manifest["sha256"] == backup.checksum
    stored = (Path(local_storage.configuration["path"]) / backup.storage_path).read_bytes()
    assert stored.startswith(b"BPAF") and b"PGDMP" not in stored  # stored encrypted
    assert staged_files(tenant_a) == []

    target = f"{pg_source_db}_imported"
    cleanup_pg.append(target)
    restore = restore_start(
        tenant=tenant_a, backup=backup, target_server=pg_server_row, target_database=target, queue=False
    )
    run_restore(restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert pg_dump_text(target) == pg_dump_text(pg_source_db)


def test_tar_gz_of_files_is_imported_and_restored(api, operator_a, tenant_a, local_storage, tmp_path):
    archive = tar_gz(
        [
            member("site/", b"", type=tarfile.DIRTYPE, mode=0o755),
            member("site/index.html", b"<h1>hello</h1>"),
            member("site/img/logo.png", os.urandom(3000)),
            member("site/latest", b"", type=tarfile.SYMTYPE, linkname="index.html"),
        ]
    )
    client = api(operator_a)
    response = upload(client, "import", "site.tgz", archive)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["validation"]["format"] == "tar.gz"
    run_import(Operation.objects.get(public_id=body["import_id"]).pk)
    backup = Backup.objects.get(pk=body["backup_id"])
    assert backup.manifest["payload"] == "bp-bundle"  # an offline reader knows what it holds
    assert backup.status == "completed", backup.error_message
    target = tmp_path / "restored"
    restore = restore_start(tenant=tenant_a, backup=backup, target_path=str(target), queue=False)
    run_restore(restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert (target / "site" / "index.html").read_bytes() == b"<h1>hello</h1>"
    assert (target / "site" / "latest").is_symlink()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert (target / "site/img/logo.png").read_bytes() == tar.extractfile("site/img/logo.png").read()


def _bomb() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 64 << 20
        tar.addfile(info, _Zeros(info.size))
    return out.getvalue()


class _Zeros(io.RawIOBase):
    def __init__(self, size):
        self.left = size

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return b"\0" * n


def _truncated() -> bytes:
    data = tar_gz([member("a.bin", os.urandom(200_000))])
    return data[: len(data) // 2]


HOSTILE = {
    "path_traversal": lambda: tar_gz([member("../../etc/cron.d/evil", b"* * * * * root sh")]),
    "absolute_path": lambda: tar_gz([member("/etc/passwd", b"root::0:0")]),
    "symlink_outside": lambda: tar_gz([member("link", b"", type=tarfile.SYMTYPE, linkname="../../../etc")]),
    "absolute_symlink": lambda: tar_gz([member("link", b"", type=tarfile.SYMTYPE, linkname="/etc/shadow")]),
    "hardlink_outside": lambda: tar_gz([member("hard", b"", type=tarfile.LNKTYPE, linkname="/etc/shadow")]),
    "device_file": lambda: tar_gz([member("sda", b"", type=tarfile.BLKTYPE, devmajor=8, devminor=0)]),
    "decompression_bomb": _bomb,
    "truncated_archive": _truncated,
    "corrupt_gzip": lambda: b"\x1f\x8b\x08\x00" + os.urandom(5000),
    "wrong_content_type": lambda: b"\x89PNG\r\n\x1a\n" + os.urandom(2000),
    "truncated_pg_dump": lambda: b"PGDMP\x01\x0e\x00" + os.urandom(300),
    "truncated_sql": lambda: b"--\n-- PostgreSQL database dump\n--\nCREATE TABLE t (id int);\n",
    "foreign_artifact": lambda: b"BPAF" + os.urandom(400),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_upload_is_refused_and_nothing_is_kept(api, operator_a, tenant_a, local_storage, kind, settings):
    settings.IMPORT_MAX_RATIO = 50  # the bomb's 64 MiB of zeros pack 1000:1
    client = api(operator_a)
    events = AuditEvent.objects.count()
    for route in ("import/validate", "import"):
        response = upload(client, route, "backup.tar.gz", HOSTILE[kind]())
        assert response.status_code == 400, (kind, response.content[:300])
        error = response.json()["error"]
        assert error["code"] in ("VALIDATION_ERROR", "ENCRYPTION_ERROR") and error["message"], error
    assert staged_files(tenant_a) == []
    assert not Backup.objects.exists() and not Operation.objects.exists()
    assert AuditEvent.objects.count() == events
    store = Path(local_storage.configuration["path"])
    assert not [p for p in store.rglob("*") if p.is_file()]


def test_oversized_uploads_are_413_and_bad_requests_are_clear(api, operator_a, viewer_a, admin_b, tenant_a, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 100_000
    client = api(operator_a)
    response = upload(client, "import", "big.tar.gz", gzip.compress(os.urandom(300_000)))
    assert response.status_code == 413 and response.json()["error"]["code"] == "REQUEST_TOO_LARGE"
    assert staged_files(tenant_a) == []
    # JSON instead of multipart, a missing file, unknown and mistyped fields, no role.
    assert client.post(f"{BASE}/import", {"file": "x"}, format="json").status_code == 415
    missing = client.post(f"{BASE}/import", {"auto_restore": "true"}, format="multipart")
    assert missing.status_code == 400 and "file" in missing.json()["error"]["details"]
    unknown = upload(client, "import", "a.tar.gz", b"x", colour="red")
    assert unknown.status_code == 400 and "colour" in unknown.json()["error"]["details"]
    assert upload(client, "import", "a.tar.gz", b"x", auto_restore="maybe").status_code == 400
    assert upload(api(viewer_a), "import", "a.tar.gz", b"x").status_code == 403
    assert staged_files(tenant_a) == [] and not Operation.objects.exists()
    # Another tenant's import is a 404 to them.
    op = Operation.objects.create(tenant=tenant_a, kind="import", details={"filename": "a"})
    assert api(admin_b).get(f"{BASE}/import/progress/{op.public_id}").status_code == 404


def test_config_export_is_an_attachment_without_secrets_and_imports_as_a_snapshot(api, admin_a, tenant_a):
    from backups.services import server_create

    server_create(
        tenant=tenant_a,
        name="db1",
        type="postgresql",
        host="10.0.0.5",
        port=5432,
        credentials={"username": "app", "password": "s3cret-pw"},
    )
    client = api(admin_a)
    response = client.get(f"{BASE}/export/config", {"reason": "before the upgrade"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="config_export_')
    assert b"s3cret-pw" not in response.content
    assert response.json()["metadata"]["export_reason"] == "before the upgrade"
    from audit.models import AuditEvent

    recorded = AuditEvent.objects.get(action="config_export")
    assert recorded.tenant_id == tenant_a.pk and "servers" in recorded.details["components"]
    assert recorded.actor_id == admin_a.pk and "s3cret" not in str(recorded.details)
    assert response.json()["modules"]["servers"][0]["credentials"] == {"password": "[HIDDEN]", "username": "[HIDDEN]"}
    imported = upload(client, "import", "config.json", response.content)
    assert imported.status_code == 200, imported.content
    op = Operation.objects.get(public_id=imported.json()["import_id"])
    run_import(op.pk)
    op.refresh_from_db()
    assert op.status == "completed", op.error_message
    snapshots = client.get(f"{BASE}/snapshots").json()["snapshots"]
    assert [s["trigger"] for s in snapshots] == ["imported"] and "servers" in snapshots[0]["components"]


def test_create_backup_before_and_auto_restore_do_what_the_document_says(
    api, operator_a, tenant_a, local_storage, tmp_path
):
    """``create_backup_before=true``: the current state (the default application) is backed up
    first; ``auto_restore=true`` with a ``target_path``: the imported files are restored there."""
    from backups.models import Restore, Source
    from backups.services import application_get_default

    current = tmp_path / "current"
    current.mkdir()
    (current / "settings.conf").write_text("port = 8080\n")
    app = application_get_default(tenant=tenant_a)
    Source.objects.create(
        tenant=tenant_a,
        application=app,
        name="settings",
        type="path",
        path=str(current),
        component="config",
        position=0,
    )
    archive = tar_gz([member("site/index.html", b"<h1>imported</h1>")])
    target = tmp_path / "restored-import"
    response = upload(
        api(operator_a),
        "import",
        "external_backup.tar.gz",
        archive,
        auto_restore="true",
        create_backup_before="true",
        target_path=str(target),
    )
    assert response.status_code == 200, response.content
    body = response.json()
    op = Operation.objects.get(public_id=body["import_id"])
    run_import(op.pk)
    op.refresh_from_db()
    assert op.status == "completed", op.error_message

    pre = Backup.objects.get(pk=op.details["pre_import_backup_id"])
    assert pre.status == "completed" and pre.trigger == "pre_restore" and pre.application_id == app.pk
    assert pre.name.startswith("pre_import_") and pre.stored_bytes > 0

    restore = Restore.objects.get(operation__public_id=op.details["restore_id"])
    assert restore.backup_id == body["backup_id"] and restore.target_path == str(target)
    run_restore(restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert (target / "site" / "index.html").read_bytes() == b"<h1>imported</h1>"


def test_an_application_artifact_with_members_in_parts_imports_and_restores(
    api, operator_a, tenant_a, local_storage, tmp_path
):
    from backups.models import Application, Source
    from backups.services.backups import backup_start
    from backups.tasks import run_backup

    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "video.bin").write_bytes(os.urandom(5 << 20))  # over one 4 MiB segment: two parts
    app = Application.objects.create(tenant=tenant_a, name="site")
    Source.objects.create(tenant=tenant_a, application=app, name="files", type="path", path=str(folder))
    op = backup_start(tenant=tenant_a, actor=operator_a, application=app, storage=local_storage)
    run_backup(op.pk)
    original = Backup.objects.get(pk=op.backup_id)
    assert original.manifest["bundle"]["members"][0]["parts"] == 2
    artifact = (Path(local_storage.configuration["path"]) / original.storage_path).read_bytes()

    response = upload(api(operator_a), "import", "site.bpaf", artifact)
    assert response.status_code == 200, response.content
    body = response.json()
    run_import(Operation.objects.get(public_id=body["import_id"]).pk)
    backup = Backup.objects.get(pk=body["backup_id"])
    assert backup.status == "completed", backup.error_message
    target = tmp_path / "restored"
    restore = restore_start(tenant=tenant_a, backup=backup, target_path=str(target), queue=False)
    run_restore(restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert next(target.rglob("video.bin")).read_bytes() == (folder / "video.bin").read_bytes()
