"""Each facade's success envelope, error body, pagination and status codes, as its seed
documents them ("Response Format", "Error Responses", "Pagination")."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from audit.services import emit

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.facades.probe_urls")]

PROBES = {
    "platform": "/api/v1/_probe",
    "jobs": "/api/v1/jobs/_probe",
    "workspace": "/api/v1/workspaces/alpha/_probe",
    "console": "/cloud-integration/backup/_probe",
    "acronis": "/api/acronis/_probe",
}


def error_code(facade: str, body: dict) -> str:
    return {
        "platform": lambda b: b["code"],
        "jobs": lambda b: b["error"],
        "workspace": lambda b: b["error"]["code"],
        "console": lambda b: b["error"]["code"],
        "acronis": lambda b: b["error_code"],
    }[facade](body)


def assert_error_shape(facade: str, body: dict) -> None:
    if facade == "platform":
        assert set(body) >= {"detail", "code", "timestamp"}
    elif facade == "jobs":
        assert body["success"] is False and set(body) == {"success", "error", "message", "details"}
    elif facade == "workspace":
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    elif facade == "console":
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details", "timestamp"}
    elif facade == "acronis":
        assert body["success"] is False
        assert set(body) >= {"success", "error", "error_code", "timestamp", "help", "details"}


@pytest.fixture
def events(tenant_a, tenant_b):
    for i in range(3):
        emit(action=f"a_{i}", tenant=tenant_a)
    emit(action="b_secret", tenant=tenant_b)


def test_success_envelopes(api, operator_a):
    client = api(operator_a)
    bodies = {name: client.post(url, {"name": "x"}, format="json") for name, url in PROBES.items()}
    assert all(r.status_code == 201 for r in bodies.values()), {k: r.content for k, r in bodies.items()}
    assert bodies["platform"].json() == {"name": "x"}
    assert bodies["console"].json() == {"name": "x"}
    assert bodies["jobs"].json() == {"success": True, "message": "Created", "data": {"name": "x"}}
    assert bodies["workspace"].json() == {"data": {"name": "x"}}
    acronis = bodies["acronis"].json()
    assert acronis["success"] is True and acronis["data"] == {"name": "x"} and "timestamp" in acronis


def test_paginated_lists_and_tenant_scoping(api, admin_a, events):
    client = api(admin_a)
    platform = client.get(PROBES["platform"], {"limit": 2, "offset": 1}).json()
    assert platform["total"] == 3 and [e["action"] for e in platform["items"]] == ["a_1", "a_2"]
    jobs = client.get(PROBES["jobs"], {"page": 2, "page_size": 2}).json()
    assert (jobs["success"], jobs["total"], jobs["page"], jobs["page_size"], jobs["total_pages"]) == (True, 3, 2, 2, 2)
    assert [e["action"] for e in jobs["data"]] == ["a_2"]
    ws = client.get(PROBES["workspace"], {"per_page": 2}).json()
    assert ws["pagination"] == {"page": 1, "per_page": 2, "total": 3, "pages": 2}
    console = client.get(PROBES["console"], {"limit": 1}).json()
    assert console["total"] == 3 and len(console["events"]) == 1
    acronis = client.get(PROBES["acronis"], {"per_page": 2}).json()
    assert acronis["pagination"]["has_next"] is True and acronis["pagination"]["next_page"] == 2
    assert acronis["count"] == 2
    for body in (platform["items"], jobs["data"], ws["data"], console["events"], acronis["data"]):
        assert "b_secret" not in str(body)


@pytest.mark.parametrize("facade", PROBES)
def test_malformed_json_is_400_in_facade_shape(api, operator_a, facade):
    response = api(operator_a).post(PROBES[facade], data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert_error_shape(facade, response.json())


@pytest.mark.parametrize("facade", PROBES)
@pytest.mark.parametrize(
    "payload", [{"name": 5}, {"name": "x", "enabled": "yes"}, {"name": "x", "surprise": 1}, ["name"], {}]
)
def test_wrong_types_unknown_and_missing_fields_are_validation_errors(api, operator_a, facade, payload):
    response = api(operator_a).post(PROBES[facade], payload, format="json")
    expected = 422 if facade == "platform" else 400
    assert response.status_code == expected, response.content
    body = response.json()
    assert_error_shape(facade, body)
    assert error_code(facade, body) in ("VALIDATION_ERROR", "ACRONIS_VALIDATION_ERROR")


@pytest.mark.parametrize("facade", PROBES)
def test_method_not_allowed_is_405(api, admin_a, facade):
    response = api(admin_a).delete(PROBES[facade])
    assert response.status_code == 405
    assert_error_shape(facade, response.json())


@pytest.mark.parametrize("facade", PROBES)
def test_unknown_route_is_404_in_facade_shape(api, admin_a, facade):
    response = api(admin_a).get(PROBES[facade].replace("_probe", "no-such-thing"))
    assert response.status_code == 404
    assert_error_shape(facade, response.json())


@pytest.mark.parametrize("facade", PROBES)
def test_unauthenticated_is_401_and_viewer_write_is_403(api, viewer_a, facade):
    anonymous = APIClient().get(PROBES[facade])
    assert anonymous.status_code == 401
    assert_error_shape(facade, anonymous.json())
    forbidden = api(viewer_a).post(PROBES[facade], {"name": "x"}, format="json")
    assert forbidden.status_code == 403
    assert_error_shape(facade, forbidden.json())


@pytest.mark.parametrize("facade", PROBES)
def test_unexpected_error_is_500_in_facade_shape_without_internals(api, admin_a, facade):
    client = api(admin_a)
    client.raise_request_exception = False
    response = client.get(PROBES[facade] + "/boom")
    assert response.status_code == 500
    assert_error_shape(facade, response.json())
    assert "secret internals" not in response.content.decode()


def test_other_workspace_in_url_is_404(api, admin_a, tenant_b):
    response = api(admin_a).get("/api/v1/workspaces/bravo/_probe")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_bad_pagination_parameters_are_validation_errors(api, admin_a):
    response = api(admin_a).get(PROBES["jobs"], {"page": "zero"})
    assert response.status_code == 400 and response.json()["details"] == {
        "page": ["A whole number is required, got 'zero'."]
    }
    response = api(admin_a).get(PROBES["acronis"], {"per_page": 500})
    assert response.status_code == 400 and response.json()["error_code"] == "ACRONIS_VALIDATION_ERROR"


def test_oversized_body_is_413_not_500(api, operator_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = api(operator_a).post(PROBES["jobs"], {"name": "x" * 5000}, format="json")
    assert response.status_code == 413
    assert response.json()["error"] == "REQUEST_TOO_LARGE"


def test_console_and_jobs_throttles_answer_429_with_retry_after(api, admin_a, settings):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    SimpleRateThrottle.THROTTLE_RATES = {"login": "5/min", "console": "3/min", "jobs": "2/min"}
    try:
        client = api(admin_a)
        assert [client.get(PROBES["console"]).status_code for _ in range(3)] == [200] * 3
        blocked = client.get(PROBES["console"])
        assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
        assert blocked.json()["error"]["code"] == "RATE_LIMITED"
        assert [client.get(PROBES["jobs"]).status_code for _ in range(2)] == [200] * 2
        blocked = client.get(PROBES["jobs"])
        assert blocked.status_code == 429 and blocked.json()["error"] == "RATE_LIMITED"
        assert blocked.json()["details"]["retry_after"] > 0
    finally:
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
