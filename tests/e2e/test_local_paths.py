"""Each tenant is confined to its own folders of the platform's machines: local storages, file
sources, restore targets (backups/confinement.py). Another tenant's folders and every storage
folder are out of reach, whatever the name used: ``..``, a symlink, a bind mount."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

from backups import services
from backups.models import Application, Backup, Restore, Source, Storage
from backups.services.backups import backup_start
from backups.tasks import run_backup
from tenants.models import Plan, Tenant

pytestmark = pytest.mark.django_db
WS_A = "/api/v1/workspaces/alpha"
WS_B = "/api/v1/workspaces/bravo"


def root(tenant) -> Path:
    return Path(tenant.path_roots[0])


@pytest.fixture
def a_storage(tenant_a):
    """Tenant A's local storage holding one real artifact (names, sizes, ciphertext)."""
    folder = root(tenant_a) / "store"
    storage = services.storage_create(tenant=tenant_a, name="local", type="local", configuration={"path": str(folder)})
    (folder / "alpha").mkdir(parents=True)
    (folder / "alpha" / "secret-backup.bpaf").write_bytes(b"ciphertext of alpha")
    return storage


def test_storage_outside_own_folders_is_refused(api, admin_a):
    for path in ("/etc/backups", "/tmp/elsewhere", "/"):
        response = api(admin_a).post(
            f"{WS_A}/backup-storages", {"name": "etc", "type": "local", "configuration": {"path": path}}, format="json"
        )
        assert response.status_code == 400, path
        body = response.json()["error"]
        assert body["code"] == "INVALID_STORAGE_CONFIG"
        assert "Not inside this workspace's folders" in str(body["details"]["path"])
    probe = api(admin_a).post(
        "/api/v1/storage/test", {"provider_type": "local", "configuration": {"path": "/root"}}, format="json"
    )
    assert probe.status_code == 400
    assert not Storage.objects.filter(name="etc").exists()


def test_file_source_outside_own_folders_is_refused(api, admin_a, tenant_a):
    refused = api(admin_a).post(
        f"{WS_A}/applications",
        {"name": "steal", "sources": [{"name": "shadow", "type": "path", "path": "/etc"}]},
        format="json",
    )
    assert refused.status_code == 400
    assert "Not inside this workspace's folders" in str(refused.json()["error"]["details"])
    allowed = api(admin_a).post(
        f"{WS_A}/applications",
        {"name": "site", "sources": [{"name": "files", "type": "path", "path": str(root(tenant_a) / "site")}]},
        format="json",
    )
    assert allowed.status_code == 201, allowed.content
    assert not Application.objects.filter(name="steal").exists()


def test_tenant_b_cannot_back_up_or_restore_into_tenant_a_folders(api, admin_b, tenant_a, tenant_b, a_storage):
    """The attack: B points a source at A's storage folder, and restores into A's folder."""
    for path in (
        str(root(tenant_a) / "store"),
        str(root(tenant_a)),
        str(root(tenant_a) / "store" / "alpha"),
        str(root(tenant_b) / ".." / root(tenant_a).name / "store"),
    ):
        for kind in ("path", "sqlite"):
            response = api(admin_b).post(
                f"{WS_B}/applications",
                {"name": "grab", "sources": [{"name": "loot", "type": kind, "path": path}]},
                format="json",
            )
            assert response.status_code == 400, (kind, path, response.content)
    assert not Application.objects.filter(tenant=tenant_b, name="grab").exists()
    storage = api(admin_b).post(
        f"{WS_B}/backup-storages",
        {"name": "mine", "type": "local", "configuration": {"path": str(root(tenant_a) / "b-store")}},
        format="json",
    )
    assert storage.status_code == 400

    app = Application.objects.create(tenant=tenant_b, name="b-app")
    backup = Backup.objects.create(tenant=tenant_b, application=app, status="completed", storage_path="x")
    response = api(admin_b).post(
        f"{WS_B}/applications/{app.pk}/backups/{backup.pk}/restore",
        {"target_path": str(root(tenant_a) / "planted"), "restore_options": {"restore_strategy": "create_new"}},
        format="json",
    )
    assert response.status_code == 400
    assert "target_path" in response.json()["error"]["details"]
    assert not Restore.objects.filter(tenant=tenant_b).exists()


def test_storage_folders_are_never_sources_or_restore_targets(api, admin_a, tenant_a, a_storage):
    store = root(tenant_a) / "store"
    for path in (store, store / "alpha", root(tenant_a)):  # the folder, inside it, or above it
        response = api(admin_a).post(
            f"{WS_A}/applications", {"name": "self", "sources": [{"type": "path", "path": str(path)}]}, format="json"
        )
        assert response.status_code == 400, path
        assert "storage folder" in str(response.json()["error"]["details"])
    # A second storage may not overlap the first, nor a folder that is backed up.
    source_dir = root(tenant_a) / "site"
    services.application_create(tenant=tenant_a, name="site", sources=[{"type": "path", "path": str(source_dir)}])
    for path in (store / "nested", source_dir / "backups", root(tenant_a)):
        response = api(admin_a).post(
            f"{WS_A}/backup-storages",
            {"name": "two", "type": "local", "configuration": {"path": str(path)}},
            format="json",
        )
        assert response.status_code == 400, path
    app = Application.objects.create(tenant=tenant_a, name="a-app")
    backup = Backup.objects.create(tenant=tenant_a, application=app, status="completed", storage_path="x")
    response = api(admin_a).post(
        f"{WS_A}/applications/{app.pk}/backups/{backup.pk}/restore",
        {"target_path": str(store / "alpha"), "restore_options": {"restore_strategy": "create_new"}},
        format="json",
    )
    assert response.status_code == 400


def test_a_symlink_to_another_tenants_folder_is_seen_through(api, admin_b, tenant_a, tenant_b, a_storage):
    link = root(tenant_b) / "innocent"
    link.symlink_to(root(tenant_a) / "store")
    response = api(admin_b).post(
        f"{WS_B}/applications", {"name": "grab", "sources": [{"type": "path", "path": str(link)}]}, format="json"
    )
    assert response.status_code == 400
    response = api(admin_b).post(
        f"{WS_B}/applications",
        {"name": "grab", "sources": [{"type": "path", "path": str(link / "alpha")}]},
        format="json",
    )
    assert response.status_code == 400


def test_a_bind_mount_of_another_tenants_folder_is_recognised(admin_b, tenant_a, tenant_b, a_storage):
    mount_point = root(tenant_b) / "mounted"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "--bind", str(root(tenant_a) / "store"), str(mount_point)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"bind mounts need root here: {done.stderr.decode().strip()}")
    try:
        from backups import confinement

        assert confinement.check_data_path(tenant_b, str(mount_point / "alpha")) is not None
        assert confinement.check_data_path(tenant_b, str(mount_point)) is not None
        assert confinement.check_data_path(tenant_b, str(root(tenant_b) / "fine")) is None
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_default_folders_are_root_slash_slug(api, settings, tmp_path):
    """Without folders set by an operator, a tenant gets ``<root>/<slug>`` of each platform root."""
    settings.LOCAL_PATH_ROOTS = [str(tmp_path / "roots")]
    settings.BACKUP_LOCAL_ROOT = str(tmp_path / "backups")
    from tests.conftest import make_member

    charlie = Tenant.objects.create(slug="charlie", name="C", plan=Plan.DEDICATED)
    Tenant.objects.create(slug="delta", name="D", plan=Plan.DEDICATED)
    admin = make_member(charlie, "carol", "admin")
    client = api(admin)

    def source(path):
        return client.post(
            "/api/v1/workspaces/charlie/applications",
            {"name": f"app{abs(hash(path))}", "sources": [{"type": "path", "path": path}]},
            format="json",
        ).status_code

    assert source(str(tmp_path / "roots" / "charlie" / "www")) == 201
    assert source(str(tmp_path / "roots" / "delta" / "www")) == 400
    assert source(str(tmp_path / "roots" / "www")) == 400
    # The default storage folder (<BACKUP_LOCAL_ROOT>/<slug>) is the tenant's, but never a source.
    assert source(str(tmp_path / "backups" / "charlie")) == 400
    created = client.post(
        "/api/v1/workspaces/charlie/backup-storages",
        {"name": "local", "type": "local", "configuration": {"path": str(tmp_path / "backups" / "charlie")}},
        format="json",
    )
    assert created.status_code == 201, created.content


def test_rows_that_break_the_rules_fail_at_run_time_and_are_reported(tenant_a, tenant_b, a_storage, capsys):
    """A source written before the rules (straight into the database) pointing into another
    tenant's storage: the backup refuses to read it, and ``check --database`` lists it."""
    app = Application.objects.create(tenant=tenant_b, name="old")
    Source.objects.create(
        tenant=tenant_b, application=app, name="loot", type="path", path=str(root(tenant_a) / "store")
    )
    storage_b = services.storage_create(
        tenant=tenant_b, name="b", type="local", configuration={"path": str(root(tenant_b) / "store")}
    )
    op = backup_start(tenant=tenant_b, application=app, storage=storage_b)
    run_backup(op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "failed"
    assert "loot" in backup.error_message and "Not inside this workspace's folders" in backup.error_message
    stored = [p for p in (root(tenant_b) / "store").rglob("*") if p.is_file()]
    assert stored == []  # nothing of A's was read or written
    call_command("check", "--database", "default")
    err = capsys.readouterr().err
    assert "backups.W001" in err and f"source {app.sources.get().pk} of tenant 'bravo'" in err


def test_relative_and_dotdot_paths_are_refused(api, admin_a, tenant_a):
    for path in ("relative/dir", f"{root(tenant_a)}/../{os.path.basename(root(tenant_a))}/x", "/\x00etc"):
        response = api(admin_a).post(
            f"{WS_A}/applications", {"name": "x", "sources": [{"type": "path", "path": path}]}, format="json"
        )
        assert response.status_code == 400, path
