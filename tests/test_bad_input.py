"""Malformed and oversized bodies to every route of the foundation: never a 500, always the
facade's error body, nothing written."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from tenants.models import ApiKey, Membership

pytestmark = pytest.mark.django_db

ROUTES = [
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/me"),
    ("get", "/api/v1/workspaces"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("put", "/api/v1/users/{user}"),
    ("delete", "/api/v1/users/{user}"),
    ("get", "/api/v1/audit/logs"),
    ("get", "/api/v1/audit/export"),
    ("get", "/api/v1/api-keys"),
    ("post", "/api/v1/api-keys"),
    ("delete", "/api/v1/api-keys/{key}"),
]

BODIES = [
    "{",  # malformed JSON
    "[]",
    "null",
    '"text"',
    "12",
    json.dumps({"username": ["a"], "password": {"x": 1}, "role": 7, "name": None}),
    json.dumps({"username": "a" * 10_000, "password": "b" * 10_000, "name": "c" * 10_000, "role": "god"}),
    json.dumps({"refresh_token": 123, "email": "not-an-email", "is_active": "yes"}),
    "\udcff".encode("utf-8", "surrogatepass").decode("latin-1"),
]


@pytest.fixture
def target(admin_a, viewer_a, tenant_a):
    key = ApiKey.objects.create(tenant=tenant_a, name="k", role="viewer", prefix="abcd1234", key_hash="0" * 64)
    return {"user": viewer_a.pk, "key": key.pk}


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_bad_bodies_never_500(api, admin_a, target, method, path):
    client = api(admin_a)
    client.raise_request_exception = False
    url = path.format(**target)
    memberships, keys = Membership.objects.count(), ApiKey.objects.count()
    for body in BODIES:
        response = client.generic(method.upper(), url, body, content_type="application/json")
        assert response.status_code < 500, (url, body[:40], response.content[:300])
        if response.status_code >= 400 and response.get("Content-Type", "").startswith("application/json"):
            payload = response.json()
            assert "code" in payload or "error" in payload, payload
    if method != "delete":
        assert (Membership.objects.count(), ApiKey.objects.count()) == (memberships, keys)


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[0] != "get"])
def test_oversized_bodies_are_413(api, admin_a, target, method, path, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    client = api(admin_a)
    client.raise_request_exception = False
    before = AuditEvent.objects.count()
    body = json.dumps({"name": "x" * 200_000, "username": "y", "password": "z"})
    response = getattr(client, method)(path.format(**target), data=body, content_type="application/json")
    if method == "delete":  # a delete reads no body: it is carried out, never a 500
        assert response.status_code < 500
        return
    assert response.status_code == 413, response.content[:200]
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("path", ["/api/v1/users/abc", "/api/v1/users/99999999", "/api/v1/api-keys/xyz"])
def test_bad_ids_are_clear_errors(api, admin_a, path):
    response = api(admin_a).delete(path)
    assert response.status_code in (404, 422, 400)
    assert response.status_code != 500


def test_unsupported_media_type_is_415(api, admin_a):
    response = api(admin_a).post("/api/v1/api-keys", data="name=x", content_type="text/plain")
    assert response.status_code == 415 and response.json()["error"] == "UNSUPPORTED_MEDIA_TYPE"
