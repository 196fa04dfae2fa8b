"""Fixtures of the API fuzz tests: a workspace with one real object of every kind (so the ids
in generated paths resolve), the OpenAPI schema served by the platform, and a count of
what was run, printed at the end of the session."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from rest_framework_simplejwt.tokens import RefreshToken

from tests.conftest import make_member

# What the fuzz tests ran, by suite, for the summary line (the CI log shows it).
RUN: dict[str, dict] = {}

# ``{id}`` means a different row under each prefix.
ID_BY_PREFIX = [
    ("/api/v1/backups/", "backup"),
    ("/api/v1/jobs/", "job"),
    ("/api/v1/api-keys/", "api_key"),
    ("/api/v1/retention-policies/", "policy"),
    ("/api/v1/schedules/", "job"),
    ("/api/v1/servers/", "server"),
    ("/api/v1/users/", "user"),
    ("/api/v1/storage/", "storage"),
    ("/api/v1/verify/", "verification"),
    ("/api/v1/restores/", "restore"),
    ("/api/v1/commands/", "command"),
    ("/api/v1/notifications/channels/", "channel"),
    ("/api/v1/webhooks/", "webhook"),
    ("/api/v1/drills/", "drill"),
]
ID_BY_NAME = {
    "app_id": "app",
    "backup_id": "backup",
    "restore_id": "restore",
    "storage_id": "storage",
    "cleanup_id": "cleanup",
    "token": "token",
    "agent_id": "agent",
    "recovery_id": "recovery",
    "import_id": "import",
    "sync_id": "sync",
}
BODY_IDS = {
    "server_id": "server",
    "target_server_id": "server",
    "application_id": "app",
    "storage_id": "storage",
    "schedule_id": "schedule",
    "cleanup_plan_id": "cleanup_plan",
    "snapshot_id": "snapshot",
    "backup_id": "backup",
    "channel_id": "channel",
}
# The console names a backup's operation ``job_id`` (progress, cancel) and a backup ``backup_id``.
ID_BY_NAME["job_id"] = "operation"
BODY_IDS.update({"job_id": "operation"})


def real_path_kind(path: str, name: str) -> str:
    if name == "ws_id":
        return "ws_id"
    if name in ID_BY_NAME:
        return ID_BY_NAME[name]
    for prefix, kind in ID_BY_PREFIX:
        if path.startswith(prefix):
            return kind
    raise AssertionError(f"no real value for {name} in {path}: add it to the fuzz world")


FACADE_PREFIXES = {
    "acronis": ("/api/acronis/",),
    "console": ("/cloud-integration/backup/",),
    "workspace": ("/api/v1/workspaces/{ws_id}/",),
    "jobs": tuple(f"/api/v1/{s}" for s in ("jobs", "storage", "verify", "api-keys", "webhooks")),
}


def facade_of(path: str) -> str:
    for name, prefixes in FACADE_PREFIXES.items():
        if path.startswith(prefixes):
            return name
    return "platform"


@pytest.fixture(scope="module")
def openapi(django_db_blocker):
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


@dataclass
class World:
    """Real rows of tenant ``alpha`` (and one of ``bravo``), and credentials of alpha's admin."""

    ws_id: str
    token: str
    api_key: str
    ids: dict[str, object] = field(default_factory=dict)
    other_ids: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The operation that made the world's backup (the console's ``job_id``).
        from backups.models import Operation

        if "backup" in self.ids and "operation" not in self.ids:
            self.ids["operation"] = (
                Operation.objects.filter(backup_id=self.ids["backup"], kind="backup")
                .values_list("public_id", flat=True)
                .first()
            )


def _completed_backup(tenant, app, storage, admin):
    from backups.services import backups as backup_services

    op = backup_services.backup_start(tenant=tenant, actor=admin, application=app, storage=storage)
    backup_services.backup_run(operation_id=op.pk)
    op.backup.refresh_from_db()
    assert op.backup.status == "completed", op.backup.error_message
    return op.backup


@pytest.fixture
def fuzz_world(db, tenant_a, tenant_b, admin_a, admin_b, tmp_path) -> Iterator[World]:
    """One of everything the API addresses by id, made through the services."""
    from acronis import services as acronis_services
    from backups import services
    from backups.models import Application, Source
    from backups.services import backups as backup_services
    from backups.services import restores as restore_services
    from backups.services import verifications as verification_services
    from schedules import services as schedule_services
    from tenants import services as tenant_services
    from tenants.models import Role
    from tests.support.acronis_fake import FakeAcronis

    files = tmp_path / "files"
    files.mkdir()
    for n in range(3):
        (files / f"f{n}.txt").write_text(f"file {n}\n" * 20)
    storage = services.storage_create(
        tenant=tenant_a, name="local", type="local", configuration={"path": str(tmp_path / "store")}, is_default=True
    )
    app = Application.objects.create(tenant=tenant_a, name="shop")
    Source.objects.create(tenant=tenant_a, application=app, name="files", type="path", path=str(files))
    server = services.server_create(
        tenant=tenant_a,
        name="pg",
        type="postgresql",
        host="127.0.0.1",
        port=5432,
        credentials={"username": "postgres", "password": ""},
    )
    backup = _completed_backup(tenant_a, app, storage, admin_a)
    restore = restore_services.restore_start(
        tenant=tenant_a, backup=backup, actor=admin_a, target_path=str(tmp_path / "restored"), queue=False
    )
    verification = verification_services.verification_start(tenant=tenant_a, backup=backup, actor=admin_a, queue=False)
    job = schedule_services.job_create(
        tenant=tenant_a,
        actor=admin_a,
        name="nightly",
        application=app,
        storage=storage,
        schedule_type="custom",
        cron_expression="0 3 * * *",
        retention_count=3,
    )
    policy = schedule_services.retention_policy_create(tenant=tenant_a, name="gfs", keep_last_n=3, keep_daily=7)
    executed = schedule_services.cleanup_analyse(tenant=tenant_a, actor=admin_a, reason="fuzz")
    cleanup = schedule_services.cleanup_execute(plan=executed, actor=admin_a, queue=False)
    plan = schedule_services.cleanup_analyse(tenant=tenant_a, actor=admin_a, reason="fuzz")
    viewer = make_member(tenant_a, "vera", Role.VIEWER)
    key, raw_key = tenant_services.api_key_create(
        tenant=tenant_a, name="automation", role=Role.ADMIN, created_by=admin_a
    )
    download_url, _ = backup_services.backup_download_link(backup=backup)
    from backups.services.operations import operation_create
    from backups.services.snapshots import snapshot_create

    snapshot = snapshot_create(tenant=tenant_a, actor=admin_a, name="baseline")
    console_ops = {
        kind: operation_create(tenant=tenant_a, kind=kind, backup=backup).public_id
        for kind in ("recovery", "import", "sync")
    }

    from audit import notifications
    from backups.services import commands as command_services

    command = command_services.command_create(tenant=tenant_a, name="disk", command_template="df -h {{path}}")
    # A channel whose test sends go nowhere, fast (a closed loopback port).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    channel = notifications.channel_create(
        tenant=tenant_a, name="ops", type="webhook", config={"url": f"http://127.0.0.1:{closed}/hook"}
    )
    webhook, _ = notifications.webhook_create(
        tenant=tenant_a, url="https://hooks.example.com/backups", event_types=["backup.failed"]
    )
    from schedules.models import Drill

    drill = Drill.objects.create(
        tenant=tenant_a,
        job=job,
        job_name=job.name,
        backup=backup,
        backup_ref=backup.pk,
        backup_checksum=backup.checksum,
        backup_taken_at=backup.started_at,
        status="passed",
        passed=True,
        checksum_verified=True,
        rto_seconds=0.4,
        rpo_seconds=30.0,
        assertions=[
            {"type": "checksum", "expect": backup.checksum, "actual": backup.checksum, "passed": True, "error": None}
        ],
        scratch={"dropped": True},
        started_at=backup.completed_at,
        completed_at=backup.completed_at,
    )

    # Another tenant's rows: their ids must be 404s to alpha's admin.
    other_storage = services.storage_create(
        tenant=tenant_b,
        name="local",
        type="local",
        configuration={"path": f"{tenant_b.path_roots[0]}/store-b"},
        is_default=True,
    )
    other_app = Application.objects.create(tenant=tenant_b, name="other")
    other_job = schedule_services.job_create(
        tenant=tenant_b,
        name="b-nightly",
        application=other_app,
        storage=other_storage,
        schedule_type="custom",
        cron_expression="0 4 * * *",
    )

    with FakeAcronis("fuzz-client", "fuzz-secret-value") as fake:
        acronis_services.config_save(
            tenant=tenant_a,
            base_url=fake.base_url + "/api/",
            client_id="fuzz-client",
            client_secret="fuzz-secret-value",
            create=True,
        )
        yield World(
            ws_id=tenant_a.slug,
            token=str(RefreshToken.for_user(admin_a).access_token),
            api_key=raw_key,
            ids={
                "backup": backup.pk,
                "restore": restore.pk,
                "verification": verification.pk,
                "job": job.pk,
                "policy": policy.pk,
                "cleanup": cleanup.public_id,
                "cleanup_plan": plan.public_id,
                "schedule": job.public_id,
                "server": server.pk,
                "storage": storage.pk,
                "app": app.pk,
                "user": viewer.pk,
                "api_key": key.pk,
                "token": download_url.rstrip("/").rsplit("/", 1)[-1],
                "agent": fake.agents[0]["id"],
                "snapshot": snapshot.pk,
                **console_ops,
                "command": command.pk,
                "channel": channel.pk,
                "webhook": webhook.pk,
                "drill": drill.pk,
            },
            other_ids={"storage": other_storage.pk, "app": other_app.pk, "job": other_job.pk, "ws_id": tenant_b.slug},
        )


class InTransactionWSGI:
    """Django's real WSGI handler (middleware, URL routing, handler500...). Its
    per-request ``close_old_connections`` is switched off while a request runs, as in
    Django's test client, so requests see and roll back with the test's transaction."""

    def __init__(self) -> None:
        self.handler = WSGIHandler()

    def __call__(self, environ, start_response):
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = self.handler(environ, start_response)
            try:
                return list(response)
            finally:
                close = getattr(response, "close", None)
                if close is not None:
                    close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)


WSGI_APP = InTransactionWSGI()


def record(suite: str, operation: str, status: int) -> None:
    run = RUN.setdefault(suite, {"by_operation": {}, "seconds": 0.0})
    run["by_operation"].setdefault(operation, Counter())[status] += 1


SUITES = {"test_odd_input.py": "odd input"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    started = time.monotonic()
    yield
    name = Path(str(item.fspath)).name
    suite = "schemathesis" if name.startswith("test_openapi_fuzz_") else SUITES.get(name)
    if suite is not None:
        RUN.setdefault(suite, {"by_operation": {}, "seconds": 0.0})["seconds"] += time.monotonic() - started


def fuzz_summary(terminalreporter) -> None:
    """Printed by the root conftest (also under pytest-xdist, from what the workers sent)."""
    if not RUN:
        return
    terminalreporter.write_sep("-", "API fuzzing")
    for suite, run in sorted(RUN.items()):
        classes: Counter = Counter()
        for counts in run["by_operation"].values():
            for status, n in counts.items():
                classes[f"{status // 100}xx"] += n
        total = sum(classes.values())
        terminalreporter.write_line(
            f"API fuzzing ({suite}): {len(run['by_operation'])} operations, {total} requests "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(classes.items()))}) in {run['seconds']:.0f} s"
        )
        if os.environ.get("FUZZ_STATUS_TABLE"):
            for operation, counts in sorted(run["by_operation"].items()):
                terminalreporter.write_line(f"  {operation}: {dict(sorted(counts.items()))}")


def pytest_sessionfinish(session):
    """A pytest-xdist worker hands its counts to the controller (``tests/conftest.py``)."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None and RUN:
        output["api_fuzzing"] = {
            suite: {"seconds": run["seconds"], "by_operation": {op: dict(c) for op, c in run["by_operation"].items()}}
            for suite, run in RUN.items()
        }


def merge_worker_output(data: dict) -> None:
    for suite, run in data.items():
        mine = RUN.setdefault(suite, {"by_operation": {}, "seconds": 0.0})
        mine["seconds"] += run["seconds"]
        for operation, counts in run["by_operation"].items():
            mine["by_operation"].setdefault(operation, Counter()).update({int(k): v for k, v in counts.items()})
