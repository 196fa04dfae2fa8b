"""A rate-limited or unreachable Acronis through the API: capped attempts, the tenant's shared
backoff, the circuit breaker, failures kept briefly, and what ``/health`` shows of them."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator

import pytest

from acronis import services
from acronis.models import AcronisConfig
from tests.fixtures.services import blackhole_port, closed_port  # noqa: F401 - fixtures

from .conftest import AGENTS, SECRET, TOKEN, WORKLOADS

pytestmark = pytest.mark.django_db

POLICY_STATUSES = "/api/policy_management/v4/policy_statuses"


def get(api, user, route="agents"):
    return api(user).get(f"/api/acronis/{route}")


@contextlib.contextmanager
def listening(port: int) -> Iterator[socket.socket]:
    """Listen on ``port`` without ever accepting: a connection attempt stays queued."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def connections_made(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


# --- rate limiting ------------------------------------------------------------------------


def test_persistent_rate_limit_is_probed_not_hammered(api, viewer_a, configured_a, fake, settings):
    # Waits of 1, 2 and then 4 s (Retry-After 1 is only their floor): the backoff after the
    # third try outlasts the requests below even on a busy machine.
    settings.ACRONIS_CLIENT_OPTIONS = {"timeout": 1.0, "deadline": 10.0, "backoff_initial": 1.0}
    get(api, viewer_a, "health")  # a token in the cache
    fake.reset_counters()
    fake.inject(AGENTS, 429, times=None, retry_after=1)
    fake.inject(WORKLOADS, 429, times=None, retry_after=1)

    first = get(api, viewer_a, "agents")

    assert first.status_code == 429
    body = first.json()
    assert body["error_code"] == "ACRONIS_RATE_LIMITED" and body["retry_after"] >= 1
    assert first["Retry-After"] == str(body["retry_after"])
    assert fake.calls[AGENTS] == 3  # one try and two retries, Retry-After as the floor

    # The tenant now backs off: the other routes and the health check wait with it.
    again = get(api, viewer_a, "agents")
    other = get(api, viewer_a, "workloads")
    health = get(api, viewer_a, "health")

    assert again.status_code == other.status_code == 429
    assert other.json()["error_code"] == "ACRONIS_RATE_LIMITED" and other.json()["retry_after"] >= 1
    assert fake.calls[AGENTS] == 3 and fake.calls[WORKLOADS] == 0
    assert health.status_code == 503
    assert health.json()["data"]["rate_limit"]["backing_off"] is True
    assert health.json()["details"]["upstream_error_code"] == "ACRONIS_RATE_LIMITED"


def test_rate_limit_backoff_ends_with_the_next_normal_answer(api, viewer_a, configured_a, fake, settings):
    settings.ACRONIS_CLIENT_OPTIONS = {"timeout": 1.0, "deadline": 10.0, "max_attempts": 1}
    fake.inject(AGENTS, 429, times=1, retry_after=1)
    limited = get(api, viewer_a, "agents")
    assert limited.status_code == 429 and fake.calls[AGENTS] == 1

    time.sleep(limited.json()["retry_after"])

    assert get(api, viewer_a, "agents").status_code == 200
    assert get(api, viewer_a, "health").json()["data"]["rate_limit"] == {"backing_off": False, "retry_after": None}


def test_persistent_server_error_is_tried_three_times(api, viewer_a, configured_a, fake, settings):
    settings.ACRONIS_CLIENT_OPTIONS = {"timeout": 1.0, "deadline": 10.0, "backoff_initial": 0.05, "backoff_max": 0.2}
    fake.inject(AGENTS, 503, times=None)

    response = get(api, viewer_a, "agents")

    assert response.status_code == 502 and response.json()["error_code"] == "ACRONIS_SERVER_ERROR"
    assert fake.calls[AGENTS] == 3


# --- unreachable upstream: circuit breaker ---------------------------------------------------


def configure(tenant, port: int) -> AcronisConfig:
    return services.config_save(
        tenant=tenant, base_url=f"http://127.0.0.1:{port}", client_id="cid", client_secret=SECRET, create=True
    )


def test_refused_connections_open_the_breaker_and_later_calls_stay_off_the_network(
    api,
    viewer_a,
    tenant_a,
    closed_port,  # noqa: F811
):
    configure(tenant_a, closed_port)
    first = get(api, viewer_a, "agents")
    assert first.status_code == 502 and first.json()["error_code"] == "ACRONIS_CONNECTION_ERROR"

    with listening(closed_port) as sock:
        workloads = get(api, viewer_a, "workloads")
        backups = get(api, viewer_a, "backups")
        health = get(api, viewer_a, "health")
        reached = connections_made(sock)

    assert reached == 0  # the upstream is back, but nobody tried it during the cool-down
    for response in (workloads, backups):
        body = response.json()
        assert response.status_code == 502 and body["error_code"] == "ACRONIS_CONNECTION_ERROR"
        assert set(body) == {"success", "error", "error_code", "timestamp", "help", "details"}
    assert health.status_code == 503
    body = health.json()
    assert body["error_code"] == "ACRONIS_HEALTH_CHECK_FAILED"
    assert body["details"]["upstream_error_code"] == "ACRONIS_CONNECTION_ERROR"
    breaker = body["data"]["circuit_breaker"]
    assert breaker["state"] == "open" and breaker["consecutive_failures"] >= 3
    assert breaker["retry_in"] >= 1


def test_blackholed_upstream_opens_the_breaker_and_health_shows_it(
    api,
    viewer_a,
    tenant_a,
    blackhole_port,  # noqa: F811
    settings,
):
    settings.ACRONIS_CLIENT_OPTIONS = {"timeout": 0.3, "deadline": 3.0, "backoff_initial": 0.05, "backoff_max": 0.2}
    configure(tenant_a, blackhole_port)

    first = get(api, viewer_a, "agents")
    health = get(api, viewer_a, "health")

    assert first.status_code == 504 and first.json()["error_code"] == "ACRONIS_TIMEOUT_ERROR"
    assert health.json()["details"]["upstream_error_code"] == "ACRONIS_TIMEOUT_ERROR"
    assert health.json()["data"]["circuit_breaker"]["state"] == "open"
    assert health.json()["data"]["api_status"] == "disconnected"


def test_breaker_half_opens_after_the_cooldown_and_closes_on_an_answer(api, viewer_a, configured_a, fake, settings):
    settings.ACRONIS_CLIENT_OPTIONS = {
        "timeout": 0.3,
        "deadline": 3.0,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "breaker_cooldown": 2.0,
    }
    fake.inject(AGENTS, None, times=None, delay=2)  # every agents call times out
    assert get(api, viewer_a, "agents").status_code == 504
    calls = sum(fake.calls.values())

    assert get(api, viewer_a, "workloads").status_code == 504
    assert get(api, viewer_a, "health").json()["data"]["circuit_breaker"]["state"] == "open"
    assert sum(fake.calls.values()) == calls  # the open breaker kept both off the network

    fake.clear_injections()
    time.sleep(2.1)  # the cool-down passes: the next call is the probe

    assert get(api, viewer_a, "workloads").status_code == 200
    health = get(api, viewer_a, "health").json()
    assert health["success"] is True
    assert health["data"]["circuit_breaker"] == {"state": "closed", "consecutive_failures": 0, "retry_in": None}


def test_an_unreachable_upstream_is_remembered_briefly_by_each_route(
    api,
    viewer_a,
    tenant_a,
    closed_port,  # noqa: F811
    settings,
):
    # A breaker that never opens here: what is left is the route's own short memory.
    settings.ACRONIS_CLIENT_OPTIONS = {"timeout": 1.0, "deadline": 3.0, "breaker_threshold": 100}
    configure(tenant_a, closed_port)
    assert get(api, viewer_a, "agents").json()["error_code"] == "ACRONIS_CONNECTION_ERROR"

    with listening(closed_port) as sock:
        again = get(api, viewer_a, "agents")
        reached = connections_made(sock)

    assert reached == 0
    assert again.status_code == 502 and again.json()["error_code"] == "ACRONIS_CONNECTION_ERROR"


# --- configuration at call time -------------------------------------------------------------


def test_a_stored_base_url_httpx_refuses_is_a_documented_error(api, viewer_a, tenant_a):
    # Saved before the base URL was validated: the model layer does not check it.
    AcronisConfig.objects.create(
        tenant=tenant_a, base_url="https://x\u0007.example", client_id="cid", client_secret=SECRET
    )

    agents = get(api, viewer_a, "agents")
    health = get(api, viewer_a, "health")

    assert agents.status_code == 502 and agents.json()["error_code"] == "ACRONIS_CONFIG_INVALID"
    assert health.status_code == 503
    assert health.json()["details"]["upstream_error_code"] == "ACRONIS_CONFIG_INVALID"


# --- customer scope and policy statuses -----------------------------------------------------


def test_tenant_scope_gets_a_customer_scoped_token(api, admin_a, viewer_a, fake):
    customer = fake.tenants[1]
    response = api(admin_a).post(
        "/api/acronis/config",
        {
            "base_url": fake.base_url,
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "tenant_scope": customer["uuid"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content

    agents = get(api, viewer_a, "agents")

    assert agents.status_code == 200
    assert {a["hostname"] for a in agents.json()["data"]} == {
        a["hostname"] for a in fake.agents if a["tenant"]["id"] == customer["id"]
    }
    token_requests = [r for r in fake.requests if r.path == TOKEN]
    assert [r.form["grant_type"] for r in token_requests] == [
        ["client_credentials"],
        ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
    ]
    exchange = token_requests[1]
    assert exchange.form["scope"] == [f"urn:acronis.com:tenant-id:{customer['uuid']}"]
    assert exchange.form["assertion"] == ["***"] and exchange.authorization == "bearer"
    assert [r.token_scope for r in fake.requests if r.path == AGENTS] == [customer["uuid"]]


@pytest.mark.parametrize("scoped", [False, True])
def test_policy_statuses_are_asked_for_with_a_tenant_id(api, admin_a, viewer_a, fake, scoped):
    customer = fake.tenants[1]  # its mailbox workload has no agent: policy statuses are read
    body = {"base_url": fake.base_url, "client_id": fake.client_id, "client_secret": fake.client_secret}
    if scoped:
        body["tenant_scope"] = customer["uuid"]
    assert api(admin_a).post("/api/acronis/config", body, format="json").status_code == 201

    response = get(api, viewer_a, "associations")

    assert response.status_code == 200, response.content
    asked = [r.query.get("tenant_id") for r in fake.requests if r.path == POLICY_STATUSES]
    assert asked == [[customer["uuid"] if scoped else fake.root_tenant_uuid]]


# --- logging --------------------------------------------------------------------------------


def test_upstream_urls_with_cursors_and_filters_are_not_logged_at_info(api, viewer_a, configured_a, fake, caplog):
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="acronis")

    assert get(api, viewer_a, "backups").status_code == 200

    pages = [r for r in fake.requests if r.path == "/api/task_manager/v2/activities"]
    assert len(pages) > 1 and "after" in pages[1].query  # a cursor was followed
    for record in caplog.records:
        if record.levelno >= logging.INFO:
            assert "policyType" not in record.getMessage() and "after=" not in record.getMessage()
            assert not record.name.startswith(("httpx", "httpcore"))
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("acronis")]
    assert "Acronis GET /api/task_manager/v2/activities -> 200" in " ".join(ours)
    assert not any("?" in line for line in ours)
