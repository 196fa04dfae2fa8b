"""Fixtures of the schedules tests: a local storage, an application with a small path
source, a PostgreSQL server row, and helpers to make backups with chosen times."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import Application, Backup, Source
from tests.builders import make_local_storage, make_pg_server
from tests.fixtures.services import *  # noqa: F403


@pytest.fixture
def storage_a(tenant_a, tmp_path):
    return make_local_storage(tenant_a, tmp_path / "store", "local")


@pytest.fixture
def files_dir(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    for n in range(3):
        (folder / f"f{n}.txt").write_text(f"file {n}\n" * 50)
    return folder


@pytest.fixture
def app_a(tenant_a, files_dir):
    app = Application.objects.create(tenant=tenant_a, name="shop")
    Source.objects.create(tenant=tenant_a, application=app, name="files", type="path", path=str(files_dir))
    return app


@pytest.fixture
def app_b(tenant_b):
    return Application.objects.create(tenant=tenant_b, name="other")


@pytest.fixture
def pg_server_a(tenant_a):
    return make_pg_server(tenant_a, "db1")


def make_backups(tenant, *, job=None, statuses, start=None, step=timedelta(days=1), storage=None, **extra):
    """Backups oldest first, one per ``step``, ending ``step`` before now (``created_at`` set)."""
    now = timezone.now()
    start = start or now - step * len(statuses)
    made = []
    for n, status in enumerate(statuses):
        backup = Backup.objects.create(
            tenant=tenant,
            job=job,
            status=status,
            storage=storage,
            application=job.application if job else None,
            stored_bytes=1000,
            storage_path=f"x/{n}.bpaf",
            **extra,
        )
        when = start + step * n
        Backup.objects.filter(pk=backup.pk).update(
            created_at=when, started_at=when, completed_at=when + timedelta(minutes=2)
        )
        backup.refresh_from_db()
        made.append(backup)
    return made
