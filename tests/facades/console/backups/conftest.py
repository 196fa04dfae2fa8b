"""A workspace whose default application (the console's components) has real sources, a
local storage, and backups made by the real pipeline."""

from __future__ import annotations

import pytest

from backups.models import Application, Backup, Source
from backups.services import application_get_default
from backups.services.backups import backup_run, backup_start
from tests.builders import make_local_storage
from tests.e2e.conftest import pg_server_row, pg_source_db  # noqa: F401 (fixtures of the end-to-end test)
from tests.fixtures.services import *  # noqa: F403

CONSOLE = "/cloud-integration/backup"


@pytest.fixture
def files_dir(tmp_path):
    folder = tmp_path / "www"
    folder.mkdir()
    for n in range(5):
        (folder / f"page{n}.html").write_text(f"<p>page {n}</p>\n" * 200)
    return folder


@pytest.fixture
def storage_a(tenant_a, tmp_path):
    return make_local_storage(tenant_a, tmp_path / "store", "disk")


@pytest.fixture
def settings_dir(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "app.conf").write_text("[server]\nport = 8080\n")
    return folder


@pytest.fixture
def components_a(tenant_a, files_dir, settings_dir) -> Application:
    """The default application: a web folder (``data``) and a settings folder (``config``)."""
    app = application_get_default(tenant=tenant_a)
    Source.objects.create(
        tenant=tenant_a, application=app, name="www", type="path", path=str(files_dir), component="data", position=0
    )
    Source.objects.create(
        tenant=tenant_a,
        application=app,
        name="settings",
        type="path",
        path=str(settings_dir),
        component="config",
        position=1,
    )
    return app


def make_backup(tenant, application, storage, *, components=None, name="", actor=None) -> Backup:
    op = backup_start(
        tenant=tenant,
        actor=actor,
        application=application,
        storage=storage,
        components=components,
        name=name,
        queue=False,
    )
    backup_run(operation_id=op.pk)
    backup = Backup.objects.select_related("storage").get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message
    return backup


@pytest.fixture
def backup_a(tenant_a, components_a, storage_a, admin_a) -> Backup:
    return make_backup(tenant_a, components_a, storage_a, name="nightly_a", actor=admin_a)
