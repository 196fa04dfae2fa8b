"""Every list endpoint of every facade runs a fixed number of queries, whatever the number of
rows (CONVENTIONS.md "Pin query counts on list endpoints"): the same count with 3 rows and
with 20, each row with its related objects (storage, server, application, job, sources...),
so a per-row query (N+1) changes the count and fails here."""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from acronis import services as acronis_services
from audit import notifications
from audit.services import emit
from backups import services
from backups.models import Application, Backup, Operation, Restore, Source, Verification
from backups.services import commands as command_services
from schedules import services as schedule_services
from tenants import services as tenant_services
from tenants.models import Role
from tests.support.acronis_fake import FakeAcronis

from ..conftest import make_member

pytestmark = pytest.mark.django_db

WS = "/api/v1/workspaces/alpha"

# url -> queries it may run (authentication, tenant, the page, prefetches). Totals of the large
# tables (backups, operations, restores, verifications, audit) come from the count cache
# while nothing was written (backupplatform/counting.py), so they run no COUNT here.
PINNED = {
    # platform
    "/api/v1/backups": 3,
    "/api/v1/users": 3,
    "/api/v1/audit/logs": 3,
    "/api/v1/schedules": 3,
    "/api/v1/retention-policies": 3,
    "/api/v1/servers": 3,
    "/api/v1/workspaces": 3,
    "/api/v1/commands": 3,
    "/api/v1/commands/{command}/executions": 4,
    "/api/v1/notifications/channels": 3,
    # jobs
    "/api/v1/jobs": 4,
    "/api/v1/jobs/{job}/executions": 4,
    "/api/v1/api-keys": 4,
    "/api/v1/webhooks": 4,
    "/api/v1/storage/providers": 4,
    "/api/v1/storage/{storage}/backups": 4,
    "/api/v1/verify": 3,
    # workspace
    f"{WS}/applications": 6,
    f"{WS}/backup-storages": 4,
    f"{WS}/applications/{{app}}/backups": 4,
    f"{WS}/applications/{{app}}/restores": 4,
    # console
    "/cloud-integration/backup/schedules": 3,
}
# The Acronis lists read our database for the configuration and, on a cache miss, record each
# agent's online streak (``AcronisAgentState``): rows there are the upstream agents.
# (cache miss, cache hit)
ACRONIS_PINNED = {
    "/api/acronis/agents": (8, 3),
    "/api/acronis/workloads": (4, 3),
    "/api/acronis/associations": (12, 3),
}


class Rows:
    """``n`` rows of every listed kind in tenant alpha, each with its own related rows."""

    def __init__(self, tenant, admin, tmp_path):
        self.tenant, self.admin, self.tmp_path = tenant, admin, tmp_path
        self.count = 0
        self.main_storage = services.storage_create(
            tenant=tenant, name="main", type="local", configuration={"path": str(tmp_path / "main")}
        )
        self.main_app = Application.objects.create(tenant=tenant, name="main-app")
        self.main_job = schedule_services.job_create(
            tenant=tenant,
            name="main-job",
            application=self.main_app,
            storage=self.main_storage,
            schedule_type="custom",
            cron_expression="0 1 * * *",
        )
        self.main_command = command_services.command_create(
            tenant=tenant, name="main-cmd", command_template="echo {{x}}"
        )

    def add(self, n: int) -> None:
        tenant = self.tenant
        for i in range(self.count, self.count + n):
            storage = services.storage_create(
                tenant=tenant, name=f"s{i}", type="local", configuration={"path": str(self.tmp_path / f"s{i}")}
            )
            server = services.server_create(
                tenant=tenant,
                name=f"db{i}",
                type="postgresql",
                host="127.0.0.1",
                port=5432,
                credentials={"username": "u", "password": "p"},
            )
            app = Application.objects.create(tenant=tenant, name=f"app{i}")
            Source.objects.create(tenant=tenant, application=app, name="files", type="path", path=f"/tmp/x{i}")
            Source.objects.create(
                tenant=tenant, application=app, name="db", type="postgresql", server=server, database_name="shop"
            )
            job = schedule_services.job_create(
                tenant=tenant,
                name=f"job{i}",
                application=app,
                storage=storage,
                schedule_type="custom",
                cron_expression=f"{i % 60} 2 * * *",
            )
            schedule_services.retention_policy_create(tenant=tenant, name=f"policy{i}", keep_last_n=3)
            for backup_app, backup_job, backup_storage in (
                (app, job, storage),
                (self.main_app, self.main_job, self.main_storage),
            ):
                backup = Backup.objects.create(
                    tenant=tenant,
                    application=backup_app,
                    job=backup_job,
                    storage=backup_storage,
                    server=server,
                    database_name="shop",
                    db_type="postgresql",
                    status="completed",
                    stored_bytes=1000 + i,
                    size_bytes=2000 + i,
                    checksum="ab" * 32,
                    storage_path=f"x/{i}.bpaf",
                    created_by=self.admin,
                    started_at=timezone.now() - timedelta(minutes=5),
                    completed_at=timezone.now(),
                )
                op = Operation.objects.create(tenant=tenant, kind="restore", backup=backup, created_by=self.admin)
                Restore.objects.create(
                    tenant=tenant,
                    backup=backup,
                    operation=op,
                    application=backup_app,
                    target_application=backup_app,
                    target_server=server,
                    created_by=self.admin,
                )
                vop = Operation.objects.create(tenant=tenant, kind="verify", backup=backup, created_by=self.admin)
                Verification.objects.create(tenant=tenant, backup=backup, operation=vop, created_by=self.admin)
            make_member(tenant, f"member{i}", Role.VIEWER)
            tenant_services.api_key_create(tenant=tenant, name=f"key{i}", role=Role.VIEWER, created_by=self.admin)
            emit(action="probe", tenant=tenant, resource_type="backup", resource_id=i)
            command = command_services.command_create(
                tenant=tenant, name=f"cmd{i}", command_template="echo {{x}}", actor=self.admin
            )
            ssh = services.server_create(tenant=tenant, name=f"ssh{i}", type="ssh", host="127.0.0.1", port=22)
            for target in (command, self.main_command):
                command_services.command_execute(command=target, server=ssh, variables={"x": str(i)}, actor=self.admin)
            notifications.channel_create(
                tenant=tenant, name=f"ch{i}", type="slack", config={"webhook_url": f"https://hooks.example.com/{i}"}
            )
            notifications.webhook_create(
                tenant=tenant, url=f"https://hooks.example.com/{i}", event_types=["backup.failed"]
            )
        self.count += n


def add_agents(fake: FakeAcronis, n: int) -> None:
    """``n`` more agents on the fake, copies of its first one under new ids and names."""
    with fake._lock:
        model = fake.agents[0]
        for i in range(n):
            agent = copy.deepcopy(model)
            agent["id"] = str(uuid.uuid4())
            agent["hostname"] = f"EXTRA-{len(fake.agents)}-{i}"
            fake.agents.append(agent)


@pytest.fixture
def acronis_fake(tenant_a, settings):
    settings.ACRONIS_CLIENT_OPTIONS = {"timeout": 1.0, "deadline": 3.0, "backoff_initial": 0.05, "backoff_max": 0.2}
    with FakeAcronis("qc-client", "qc-secret") as fake:
        acronis_services.config_save(
            tenant=tenant_a, base_url=fake.base_url, client_id="qc-client", client_secret="qc-secret", create=True
        )
        yield fake


def get(client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]


@pytest.mark.parametrize("url", list(PINNED))
def test_list_endpoint_query_count_does_not_grow_with_rows(
    url, api, admin_a, tenant_a, tmp_path, django_assert_num_queries
):
    rows = Rows(tenant_a, admin_a, tmp_path)
    rows.add(3)
    target = url.format(
        job=rows.main_job.pk, storage=rows.main_storage.pk, app=rows.main_app.pk, command=rows.main_command.pk
    )
    client = api(admin_a)
    get(client, target)  # warm: per-process caches (content types...) filled outside the count
    with django_assert_num_queries(PINNED[url]):
        get(client, target)
    rows.add(17)
    get(client, target)  # the writes moved the cached totals on: recounted once, outside the count
    with django_assert_num_queries(PINNED[url]):
        get(client, target)


@pytest.mark.parametrize("url", list(ACRONIS_PINNED))
def test_acronis_list_query_count_does_not_grow_with_agents(url, api, admin_a, acronis_fake, django_assert_num_queries):
    from django.core.cache import cache

    miss, hit = ACRONIS_PINNED[url]
    client = api(admin_a)
    get(client, url)  # first sight of every agent: their rows are created
    for more_agents in (0, 16):
        add_agents(acronis_fake, more_agents)
        cache.clear()
        get(client, url)  # first sight of the new agents
        cache.clear()
        with django_assert_num_queries(miss):
            get(client, url)
        with django_assert_num_queries(hit):
            get(client, url)
