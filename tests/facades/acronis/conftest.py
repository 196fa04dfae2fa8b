"""Fixtures: the loopback fake Acronis (real HTTP) and tenants configured against it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from acronis import services
from tests.support.acronis_fake import FakeAcronis

CLIENT_ID = "acr-client-alpha"
SECRET = "Zq7-Acronis-S3cret-Alpha-91f0"  # distinctive: any leak is found by substring
CLIENT_ID_B = "acr-client-bravo"
SECRET_B = "Zq7-Acronis-S3cret-Bravo-22c7"

AGENTS = "/api/agent_manager/v2/agents"
WORKLOADS = "/api/workload_management/v5/workloads"
ACTIVITIES = "/api/task_manager/v2/activities"
TOKEN = "/api/2/idp/token"


@pytest.fixture(autouse=True)
def _fast_client(settings):
    settings.ACRONIS_CLIENT_OPTIONS = {"timeout": 1.0, "deadline": 3.0, "backoff_initial": 0.05, "backoff_max": 0.2}


@pytest.fixture
def fake() -> Iterator[FakeAcronis]:
    with FakeAcronis(CLIENT_ID, SECRET) as server:
        yield server


@pytest.fixture
def fake_b() -> Iterator[FakeAcronis]:
    with FakeAcronis(CLIENT_ID_B, SECRET_B) as server:
        yield server


@pytest.fixture
def configured_a(tenant_a, fake):
    return services.config_save(
        tenant=tenant_a, base_url=fake.base_url + "/api/", client_id=CLIENT_ID, client_secret=SECRET, create=True
    )


@pytest.fixture
def configured_b(tenant_b, fake_b):
    return services.config_save(
        tenant=tenant_b, base_url=fake_b.base_url, client_id=CLIENT_ID_B, client_secret=SECRET_B, create=True
    )
