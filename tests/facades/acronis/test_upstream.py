"""Upstream behaviour through the API: tokens, retries, every ACRONIS_* error, health."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from acronis import services
from audit.models import AuditEvent

from .conftest import AGENTS, CLIENT_ID, SECRET, TOKEN, WORKLOADS

pytestmark = pytest.mark.django_db


def get(api, user, route="agents"):
    return api(user).get(f"/api/acronis/{route}")


def test_token_is_reused_across_requests_and_refreshed_before_expiry(api, viewer_a, configured_a, fake):
    fake.token_lifetime = 3  # refreshed half-way through (client: max(lifetime - margin, lifetime / 2))
    assert get(api, viewer_a, "agents").status_code == 200
    assert get(api, viewer_a, "workloads").status_code == 200
    assert fake.calls[TOKEN] == 1  # second request reused the cached token
    time.sleep(1.7)
    assert get(api, viewer_a, "backups").status_code == 200
    assert fake.calls[TOKEN] == 2  # refreshed before it expired: no 401 seen
    assert fake.count(status=401) == 0


def test_one_retry_on_401(api, viewer_a, configured_a, fake):
    assert get(api, viewer_a, "workloads").status_code == 200
    fake.expire_tokens()
    response = get(api, viewer_a, "agents")
    assert response.status_code == 200
    assert fake.count(AGENTS, status=401) == 1 and fake.calls[TOKEN] == 2


def test_auth_failed_after_second_401(api, viewer_a, configured_a, fake):
    fake.inject(AGENTS, 401, times=2)
    response = get(api, viewer_a)
    assert response.status_code == 502
    assert response.json()["error_code"] == "ACRONIS_AUTH_FAILED"


def test_bad_credentials(api, admin_a, configured_a, fake, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Secret-Value-For-Test-77"
    api(admin_a).put(
        "/api/acronis/config",
        {"base_url": fake.base_url, "client_id": CLIENT_ID, "client_secret": wrong},
        format="json",
    )
    response = get(api, admin_a)
    assert response.status_code == 502
    body = response.json()
    assert body["error_code"] == "ACRONIS_CREDENTIALS_INVALID" and body["help"]
    assert wrong not in response.content.decode() and wrong not in caplog.text
    assert SECRET not in caplog.text
    for event in AuditEvent.objects.all():
        assert wrong not in str(event.details) and SECRET not in str(event.details)


def test_retry_after_is_honoured(api, viewer_a, configured_a, fake):
    fake.inject(AGENTS, 429, times=1, retry_after=1)
    started = time.monotonic()
    response = get(api, viewer_a)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.95
    assert fake.calls[AGENTS] == 2


def test_rate_limited_longer_than_deadline(api, viewer_a, configured_a, fake):
    fake.inject(AGENTS, 429, times=None, retry_after=60)
    response = get(api, viewer_a)
    assert response.status_code == 429
    body = response.json()
    assert body["error_code"] == "ACRONIS_RATE_LIMITED" and body["retry_after"] == 60
    assert response["Retry-After"] == "60"


def test_server_error(api, viewer_a, configured_a, fake):
    fake.inject(WORKLOADS, 500, times=None)
    response = get(api, viewer_a, "workloads")
    assert response.status_code == 502 and response.json()["error_code"] == "ACRONIS_SERVER_ERROR"
    assert "500" in response.json()["details"]["technical_error"]


def test_timeout(api, viewer_a, configured_a, fake, settings):
    settings.ACRONIS_CLIENT_OPTIONS = {"timeout": 0.3, "deadline": 0.8, "backoff_initial": 0.05, "backoff_max": 0.1}
    fake.inject(AGENTS, None, times=None, delay=2)
    response = get(api, viewer_a)
    assert response.status_code == 504 and response.json()["error_code"] == "ACRONIS_TIMEOUT_ERROR"


def test_connection_error(api, viewer_a, tenant_a):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    services.config_save(
        tenant=tenant_a, base_url=f"http://127.0.0.1:{port}", client_id="x", client_secret=SECRET, create=True
    )
    response = get(api, viewer_a)
    assert response.status_code == 502 and response.json()["error_code"] == "ACRONIS_CONNECTION_ERROR"


def test_failure_is_not_cached(api, viewer_a, configured_a, fake):
    fake.inject(AGENTS, 500, times=None)
    assert get(api, viewer_a).status_code == 502
    fake.clear_injections()
    # The failure memo only serves requests that were waiting on the failed load.
    assert get(api, viewer_a).status_code == 200


# --- health -------------------------------------------------------------------------------


def test_health_ok(api, viewer_a, configured_a, fake):
    body = get(api, viewer_a, "health").json()
    assert body["success"] is True
    data = body["data"]
    assert data["api_status"] == "connected" and data["token_valid"] is True
    assert [e["endpoint"] for e in data["endpoints_tested"]] == ["/agents", "/workloads"]
    assert all(e["status"] == "ok" and isinstance(e["response_time_ms"], int) for e in data["endpoints_tested"])
    assert data["configuration"] == {"base_url": configured_a.base_url, "configured": True}
    assert data["last_check"].endswith("Z")


def test_health_failure(api, viewer_a, configured_a, fake):
    fake.inject(WORKLOADS, 500, times=None)
    response = get(api, viewer_a, "health")
    assert response.status_code == 503
    body = response.json()
    assert body["success"] is False and body["error_code"] == "ACRONIS_HEALTH_CHECK_FAILED"
    assert body["error"] == "Acronis API health check failed"
    assert body["data"]["api_status"] == "degraded" and body["data"]["errors"]
    assert body["details"]["upstream_error_code"] == "ACRONIS_SERVER_ERROR"


def test_health_bad_credentials(api, viewer_a, tenant_a, fake):
    services.config_save(
        tenant=tenant_a, base_url=fake.base_url, client_id=CLIENT_ID, client_secret="not-the-secret", create=True
    )
    body = get(api, viewer_a, "health").json()
    assert body["error_code"] == "ACRONIS_HEALTH_CHECK_FAILED"
    assert body["data"]["api_status"] == "disconnected" and body["data"]["token_valid"] is False
    assert "not-the-secret" not in str(body)


def test_health_unconfigured(api, viewer_a):
    response = get(api, viewer_a, "health")
    assert response.status_code == 503
    body = response.json()
    assert body["error_code"] == "ACRONIS_HEALTH_CHECK_FAILED"
    assert body["data"]["configuration"] == {"configured": False}
    assert body["data"]["api_status"] == "not_configured"
