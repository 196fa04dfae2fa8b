"""Isolation and roles on every route of servers, applications and storages (pretix-style
tables), and bad input that must never become a 500."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backups import services
from backups.models import Application, Server, Storage

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows(tenant_a, tenant_b, admin_a, operator_a, viewer_a, admin_b, tmp_path, closed_port):
    def make(tenant, suffix):
        folder = Path(tenant.path_roots[0]) / suffix
        folder.mkdir()
        return {
            "server": services.server_create(
                tenant=tenant, name=f"srv-{suffix}", type="postgresql", host="127.0.0.1", port=closed_port
            ),
            "storage": services.storage_create(
                tenant=tenant, name=f"st-{suffix}", type="local", configuration={"path": str(folder)}
            ),
            "app": services.application_create(tenant=tenant, name=f"app-{suffix}"),
            "root": tenant.path_roots[0],
        }

    return {"a": make(tenant_a, "a"), "b": make(tenant_b, "b")}


def ids(rows, owner):
    r = rows[owner]
    return {"srv": r["server"].pk, "st": r["storage"].pk, "app": r["app"].pk, "root": r["root"]}


# (method, path, body) -> expected status for admin_a, operator_a, viewer_a on tenant A's rows.
OWN = [
    ("get", "/api/v1/servers", None, (200, 200, 200)),
    ("post", "/api/v1/servers", {"name": "n", "type": "ssh", "host": "h", "port": 22}, (201, 403, 403)),
    ("get", "/api/v1/servers/{srv}", None, (200, 200, 200)),
    ("put", "/api/v1/servers/{srv}", {"description": "d"}, (200, 403, 403)),
    ("post", "/api/v1/servers/{srv}/test-connection", None, (200, 200, 403)),
    ("get", "/api/v1/servers/{srv}/databases", None, (502, 502, 502)),
    ("delete", "/api/v1/servers/{srv}", None, (204, 403, 403)),
    ("get", "/api/v1/workspaces/alpha/backup-storages", None, (200, 200, 200)),
    (
        "post",
        "/api/v1/workspaces/alpha/backup-storages",
        {"name": "n", "type": "local", "configuration": {"path": "{root}/new"}},
        (201, 403, 403),
    ),
    ("get", "/api/v1/workspaces/alpha/backup-storages/{st}", None, (200, 200, 200)),
    ("put", "/api/v1/workspaces/alpha/backup-storages/{st}", {"description": "d"}, (200, 403, 403)),
    ("get", "/api/v1/workspaces/alpha/backup-storages/{st}/usage", None, (200, 200, 200)),
    ("delete", "/api/v1/workspaces/alpha/backup-storages/{st}", None, (200, 403, 403)),
    ("get", "/api/v1/workspaces/alpha/backup-storage-usage", None, (200, 200, 200)),
    ("get", "/api/v1/workspaces/alpha/applications", None, (200, 200, 200)),
    ("post", "/api/v1/workspaces/alpha/applications", {"name": "n"}, (201, 403, 403)),
    ("get", "/api/v1/workspaces/alpha/applications/{app}", None, (200, 200, 200)),
    ("put", "/api/v1/workspaces/alpha/applications/{app}", {"description": "d"}, (200, 403, 403)),
    ("delete", "/api/v1/workspaces/alpha/applications/{app}", None, (200, 403, 403)),
    ("get", "/api/v1/storage/providers", None, (200, 200, 200)),
    ("get", "/api/v1/storage/providers/{st}", None, (200, 200, 200)),
    ("post", "/api/v1/storage/test", {"storage_id": "{st}"}, (200, 200, 403)),
    ("get", "/api/v1/storage/{st}/space", None, (200, 200, 200)),
    ("get", "/api/v1/storage/{st}/backups", None, (200, 200, 200)),
]
PERSONAS = ["admin_a", "operator_a", "viewer_a"]


def _fill(value, keys):
    if isinstance(value, str):
        if value.startswith("{") and value.endswith("}") and value[1:-1] in keys:
            return keys[value[1:-1]]
        return value.format(**keys)
    if isinstance(value, dict):
        return {k: _fill(v, keys) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "body", "expected"), OWN, ids=lambda v: v if isinstance(v, str) else None)
@pytest.mark.parametrize("persona", PERSONAS)
def test_roles_on_own_rows(api, rows, request, method, path, body, expected, persona):
    keys = ids(rows, "a")
    response = getattr(api(request.getfixturevalue(persona)), method)(
        _fill(path, keys), _fill(body, keys), format="json"
    )
    assert response.status_code == expected[PERSONAS.index(persona)], response.content


# Tenant A's users on tenant B's rows: 404 for every role that may act at all, never 200/403.
FOREIGN = [(m, p, b) for m, p, b, _ in OWN if "{" in p]


@pytest.mark.parametrize(("method", "path", "body"), FOREIGN, ids=lambda v: v if isinstance(v, str) else None)
def test_other_tenants_rows_are_404(api, rows, admin_a, method, path, body):
    keys = ids(rows, "b")
    response = getattr(api(admin_a), method)(_fill(path, keys), _fill(body, keys), format="json")
    assert response.status_code == 404, response.content
    assert Server.objects.filter(pk=keys["srv"]).exists() and Storage.objects.filter(pk=keys["st"]).exists()
    assert Application.objects.filter(pk=keys["app"]).exists()


def test_other_workspace_url_is_404(api, rows, admin_a):
    assert api(admin_a).get("/api/v1/workspaces/bravo/backup-storages").status_code == 404
    assert api(admin_a).get("/api/v1/workspaces/bravo/applications").status_code == 404


def test_lists_never_show_other_tenants_rows(api, rows, admin_a):
    client = api(admin_a)
    assert [s["name"] for s in client.get("/api/v1/servers").json()] == ["srv-a"]
    assert [s["name"] for s in client.get("/api/v1/workspaces/alpha/backup-storages").json()["data"]] == ["st-a"]
    assert {a["name"] for a in client.get("/api/v1/workspaces/alpha/applications").json()["data"]} == {
        "default",
        "app-a",
    }
    assert [p["name"] for p in client.get("/api/v1/storage/providers").json()["data"]] == ["st-a"]
    usage = client.get("/api/v1/workspaces/alpha/backup-storage-usage").json()["data"]
    assert [s["name"] for s in usage["by_storage"]] == ["st-a"]


def test_anonymous_is_401(api, rows):
    for path in ("/api/v1/servers", "/api/v1/workspaces/alpha/backup-storages", "/api/v1/storage/providers"):
        assert api().get(path).status_code == 401


WRITES = [
    ("post", "/api/v1/servers"),
    ("put", "/api/v1/servers/{srv}"),
    ("post", "/api/v1/workspaces/alpha/backup-storages"),
    ("put", "/api/v1/workspaces/alpha/backup-storages/{st}"),
    ("post", "/api/v1/workspaces/alpha/applications"),
    ("put", "/api/v1/workspaces/alpha/applications/{app}"),
    ("post", "/api/v1/storage/test"),
]
BAD_BODIES = [
    "{",
    "[]",
    "null",
    '"text"',
    "12",
    json.dumps({"name": 5, "type": ["s3"], "port": "22", "configuration": [], "credentials": "x", "sources": {}}),
    json.dumps({"name": "n", "sources": [1, "x", None], "tags": [], "labels": 3}),
    json.dumps({"name": "n", "sources": [{"type": "path", "path": 7, "include": "x"}]}),
    json.dumps({"storage_id": "1", "provider_type": 3, "configuration": {"path": {"a": 1}}}),
    json.dumps({"provider_type": "local", "configuration": {"path": ["/x"]}}),
    json.dumps({"name": "n", "type": "local", "configuration": {"path": None}, "quota_bytes": True}),
    json.dumps({"unknown_field": 1}),
]


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_bad_bodies_are_the_facades_error_never_500(api, rows, admin_a, method, path):
    client = api(admin_a)
    client.raise_request_exception = False
    url = _fill(path, ids(rows, "a"))
    counts = (Server.objects.count(), Storage.objects.count(), Application.objects.count())
    for body in BAD_BODIES:
        response = client.generic(method.upper(), url, body, content_type="application/json")
        assert 400 <= response.status_code < 500, (url, body[:60], response.content[:300])
        payload = response.json()
        if url.startswith("/api/v1/workspaces/"):
            assert set(payload) == {"error"} and payload["error"]["code"], payload
        elif url.startswith("/api/v1/storage/"):
            assert payload["success"] is False and payload["error"], payload
        else:
            assert "code" in payload and "detail" in payload, payload
    assert (Server.objects.count(), Storage.objects.count(), Application.objects.count()) == counts


def _code(payload: dict) -> str:
    error = payload.get("error")
    return error["code"] if isinstance(error, dict) else (error if "success" in payload else payload["code"])


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/v1/servers/{}", "SERVER_NOT_FOUND"),
        ("/api/v1/workspaces/alpha/backup-storages/{}", "STORAGE_NOT_FOUND"),
        ("/api/v1/workspaces/alpha/applications/{}", "APPLICATION_NOT_FOUND"),
        ("/api/v1/storage/providers/{}", "STORAGE_NOT_FOUND"),
        ("/api/v1/storage/{}/space", "STORAGE_NOT_FOUND"),
        ("/api/v1/storage/{}/backups", "STORAGE_NOT_FOUND"),
        ("/api/v1/jobs/{}", "JOB_NOT_FOUND"),
        ("/api/v1/schedules/{}", "SCHEDULE_NOT_FOUND"),
        ("/api/v1/retention-policies/{}", "RETENTION_POLICY_NOT_FOUND"),
    ],
)
def test_a_malformed_id_and_a_missing_one_get_the_same_404_of_their_kind(api, rows, admin_a, path, code):
    answers = [api(admin_a).get(path.format(pk)) for pk in ("abc", "x1", "99999", "storage-x")]
    assert {r.status_code for r in answers} == {404}, [r.content for r in answers]
    assert {_code(r.json()) for r in answers} == {code}, [r.content for r in answers]
