"""Every example of acronis-integration.md, sent as written (ids replaced by real objects),
against a workspace configured for the fake Acronis server (the one part that cannot run here).
Its curl commands name ``localhost:5000``: they go to the jobs API's listener, which serves
``/api/acronis/`` too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rest_framework.test import APIClient

from tests.support.acronis_fake import FakeAcronis

from . import docs
from .harness import Row, parametrize, run_http, table_problems
from .world import World

DOCUMENT = "acronis-integration.md"
EXAMPLES = docs.examples(DOCUMENT)
SHAPES = docs.documented_shapes(DOCUMENT)
JOBS_PORT = 5000

DEFAULT_IDS = {"agent_id": "agent", "agent": "agent"}
OFFLINE = "an offline agent has no uptime (README, Acronis integration)"
AGENTS = {"data[].uptime": OFFLINE, "data[].uptime_timestamp": OFFLINE}
CREATED = "the configuration is created: 201 (the document names no status)"
NO_CHILDREN = "a backup without child activities in Acronis has none"
RUNNING = "a backup still running has not completed (running backups are counted too: README)"

TABLE: dict[str, Row] = {
    "GET /api/acronis/config": Row(needs=("acronis_config",)),
    "POST /api/acronis/config": Row(status=201),
    "PUT /api/acronis/config": Row(needs=("acronis_config",)),
    "DELETE /api/acronis/config": Row(needs=("acronis_config",)),
    "GET /api/acronis/agents": Row(needs=("acronis_config",), nullable=AGENTS),
    "GET /api/acronis/workloads": Row(needs=("acronis_config",)),
    "GET /api/acronis/associations": Row(needs=("acronis_config",)),
    "GET /api/acronis/backups": Row(
        needs=("acronis_config",),
        nullable={
            f"data.workload_data.{{id}}.backups[].{key}": RUNNING
            for key in ("completed_at", "result", "duration_minutes")
        },
    ),
    "GET /api/acronis/agent/{agent_id}/backups": Row(absent={"data.backups[].activities[]": NO_CHILDREN}),
    "GET /api/acronis/health": Row(needs=("acronis_config",)),
    "GET /api/acronis/health [2]": Row(needs=("acronis_config",)),
    "GET /api/acronis/config [2]": Row(needs=("acronis_config",)),
    "POST /api/acronis/config [2]": Row(status=201),
    "GET /api/acronis/agents [2]": Row(needs=("acronis_config",)),
    "GET /api/acronis/agent/550e8400-e29b-41d4-a716-446655440000/backups": Row(
        absent={"data.backups[].activities[]": NO_CHILDREN}
    ),
    "WS /api/acronis/ws": Row(),
}


@pytest.fixture(autouse=True)
def _fast_client(settings):
    settings.ACRONIS_CLIENT_OPTIONS = {"timeout": 1.0, "deadline": 3.0, "backoff_initial": 0.05, "backoff_max": 0.2}


@pytest.fixture
def acronis() -> Iterator[FakeAcronis]:
    with FakeAcronis("acr-examples", "acr-examples-secret") as fake:
        yield fake


@pytest.fixture
def world(tenant_a, admin_a, tmp_path, acronis) -> World:
    return World(tenant=tenant_a, admin=admin_a, tmp_path=tmp_path, s3=None, database="", acronis=acronis)


def test_every_example_has_a_row():
    assert not table_problems(DOCUMENT, EXAMPLES, TABLE), "\n".join(table_problems(DOCUMENT, EXAMPLES, TABLE))


@pytest.mark.parametrize(
    "example", parametrize("test_acronis_integration::test_example", DOCUMENT, EXAMPLES, TABLE, http=True)
)
def test_example(example, world, settings):
    extra = {}
    if example.host:  # "curl http://localhost:5000/api/acronis/...": the jobs API's listener
        settings.JOBS_API_PORTS = [JOBS_PORT]
        extra = {"SERVER_PORT": str(JOBS_PORT), "HTTP_HOST": example.host}
    run_http(example, TABLE, world, APIClient(), defaults=DEFAULT_IDS, shapes=SHAPES, **extra)
