"""Tenant isolation and role rules on every route of the foundation (pretix-style tables)."""

from __future__ import annotations

import pytest

from tenants import services as tenant_services
from tenants.models import ApiKey, Membership, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(tenant_a, tenant_b, admin_a, operator_a, viewer_a, admin_b):
    key_a, _ = tenant_services.api_key_create(tenant=tenant_a, name="a-key", role=Role.VIEWER)
    key_b, _ = tenant_services.api_key_create(tenant=tenant_b, name="b-key", role=Role.VIEWER)
    return {"key_a": key_a, "key_b": key_b}


# (method, path template, body) -> each persona's expected status. "{b_user}" is bob's id.
MATRIX = [
    ("get", "/api/v1/users", None, {"admin_a": 200, "operator_a": 403, "viewer_a": 403}),
    (
        "post",
        "/api/v1/users",
        {"username": "newuser", "password": "Corr3ct-Horse-Battery", "role": "viewer"},
        {"admin_a": 201, "operator_a": 403, "viewer_a": 403},
    ),
    ("put", "/api/v1/users/{b_user}", {"role": "viewer"}, {"admin_a": 404, "operator_a": 403, "viewer_a": 403}),
    ("delete", "/api/v1/users/{b_user}", None, {"admin_a": 404, "operator_a": 403, "viewer_a": 403}),
    ("get", "/api/v1/api-keys", None, {"admin_a": 200, "operator_a": 403, "viewer_a": 403}),
    ("post", "/api/v1/api-keys", {"name": "k", "role": "viewer"}, {"admin_a": 201, "operator_a": 403, "viewer_a": 403}),
    ("delete", "/api/v1/api-keys/{b_key}", None, {"admin_a": 404, "operator_a": 403, "viewer_a": 403}),
    ("get", "/api/v1/audit/logs", None, {"admin_a": 200, "operator_a": 403, "viewer_a": 403}),
    ("get", "/api/v1/audit/export", None, {"admin_a": 200, "operator_a": 403, "viewer_a": 403}),
    ("get", "/api/v1/workspaces", None, {"admin_a": 200, "operator_a": 200, "viewer_a": 200}),
    ("get", "/api/v1/auth/me", None, {"admin_a": 200, "operator_a": 200, "viewer_a": 200}),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"), MATRIX, ids=lambda v: v if isinstance(v, str) else None
)
@pytest.mark.parametrize("persona", ["admin_a", "operator_a", "viewer_a"])
def test_permission_matrix(api, world, request, admin_b, method, path, body, expected, persona):
    user = request.getfixturevalue(persona)
    url = path.format(b_user=admin_b.pk, b_key=world["key_b"].pk)
    response = getattr(api(user), method)(url, body, format="json")
    assert response.status_code == expected[persona], response.content


def test_lists_never_show_other_tenants_rows(api, world, admin_a):
    client = api(admin_a)
    users = client.get("/api/v1/users").json()
    assert "bob" not in {u["username"] for u in users}
    assert {u["username"] for u in users} == {"alice", "oscar", "victor"}
    keys = client.get("/api/v1/api-keys").json()["data"]
    assert [k["name"] for k in keys] == ["a-key"]
    logs = client.get("/api/v1/audit/logs").json()
    assert logs["total"] > 0 and all("b-key" not in str(item) and "bob" not in str(item) for item in logs["items"])
    csv_text = b"".join(client.get("/api/v1/audit/export").streaming_content).decode()
    assert "bob" not in csv_text and "alice" in csv_text


def test_api_key_of_b_cannot_reach_a_by_header_or_url(api, world):
    _, raw = tenant_services.api_key_create(tenant=world["key_b"].tenant, name="b-admin", role=Role.ADMIN)
    client = api(api_key=raw, workspace="alpha")
    assert client.get("/api/v1/users").status_code == 404


def test_user_in_two_workspaces_picks_with_header(api, tenant_a, tenant_b, admin_a):
    tenant_services.membership_set(user=admin_a, tenant=tenant_b, role=Role.VIEWER)
    ambiguous = api(admin_a).get("/api/v1/users")
    assert ambiguous.status_code == 422
    assert ambiguous.json()["detail"][0]["loc"] == ["body", "X-Workspace"]
    as_admin = api(admin_a, workspace="alpha").get("/api/v1/users")
    assert as_admin.status_code == 200
    as_viewer = api(admin_a, workspace="bravo").get("/api/v1/users")
    assert as_viewer.status_code == 403
    assert api(admin_a, workspace="nope").get("/api/v1/users").status_code == 404
    assert [w["id"] for w in api(admin_a).get("/api/v1/workspaces").json()] == ["alpha", "bravo"]


def test_outsider_sees_nothing(api, world, outsider):
    client = api(outsider)
    assert client.get("/api/v1/workspaces").json() == []
    assert client.get("/api/v1/users").status_code == 403
    assert client.get("/api/v1/users", HTTP_X_WORKSPACE="alpha").status_code == 404


def test_superuser_sees_every_tenant_and_must_name_one_to_create(api, world, superuser):
    client = api(superuser)
    names = {u["username"] for u in client.get("/api/v1/users").json()}
    assert {"alice", "bob"} <= names
    create = client.post("/api/v1/api-keys", {"name": "x", "role": "viewer"}, format="json")
    assert create.status_code == 400
    create = api(superuser, workspace="bravo").post("/api/v1/api-keys", {"name": "x", "role": "viewer"}, format="json")
    assert create.status_code == 201 and create.json()["data"]["workspace"] == "bravo"


def test_api_key_auth_role_and_revocation(api, world, admin_a, tenant_a):
    created = api(admin_a).post("/api/v1/api-keys", {"name": "automation", "role": "admin"}, format="json")
    assert created.status_code == 201
    body = created.json()
    raw = body["data"]["key"]
    assert body["message"].startswith("API key created")
    stored = ApiKey.objects.get(pk=body["data"]["id"])
    assert raw not in (stored.key_hash, stored.prefix) and stored.key_hash != raw
    key_client = api(api_key=raw)
    me = key_client.get("/api/v1/auth/me").json()
    assert me["auth_method"] == "api_key" and me["workspace"] == "alpha" and me["role"] == "admin"
    assert key_client.get("/api/v1/users").status_code == 200
    stored.refresh_from_db()
    assert stored.last_used_at is not None
    listed = api(admin_a).get("/api/v1/api-keys").json()["data"]
    assert all("key" not in k for k in listed)
    revoke = api(admin_a).delete(f"/api/v1/api-keys/{stored.pk}")
    assert revoke.status_code == 200 and revoke.json()["data"]["is_active"] is False
    denied = key_client.get("/api/v1/users")
    assert denied.status_code == 401 and denied.json()["detail"] == "This API key has been revoked"
    assert api(api_key="bpk_deadbeef_nope").get("/api/v1/users").status_code == 401
    assert api(admin_a).delete(f"/api/v1/api-keys/{stored.pk}").status_code == 404


def test_viewer_key_cannot_manage(api, world):
    _, raw = tenant_services.api_key_create(tenant=world["key_a"].tenant, name="ro", role=Role.VIEWER)
    response = api(api_key=raw).post("/api/v1/api-keys", {"name": "escalate", "role": "admin"}, format="json")
    assert response.status_code == 403 and response.json()["error"] == "FORBIDDEN"


def test_users_api_crud(api, world, admin_a, viewer_a):
    client = api(admin_a)
    created = client.post(
        "/api/v1/users",
        {
            "username": "carol",
            "email": "c@example.com",
            "password": "Corr3ct-Horse-Battery",
            "full_name": "Carol Q",
            "role": "operator",
        },
        format="json",
    )
    assert created.status_code == 201
    carol = created.json()
    assert carol["role"] == "operator" and carol["full_name"] == "Carol Q" and "password" not in carol
    updated = client.put(f"/api/v1/users/{carol['id']}", {"role": "admin", "is_active": False}, format="json")
    assert updated.status_code == 200 and updated.json()["role"] == "admin" and updated.json()["is_active"] is False
    assert client.delete(f"/api/v1/users/{carol['id']}").status_code == 204
    assert not Membership.objects.filter(user_id=carol["id"]).exists()


def test_last_admin_cannot_be_demoted_or_removed(api, world, admin_a):
    client = api(admin_a)
    demote = client.put(f"/api/v1/users/{admin_a.pk}", {"role": "viewer"}, format="json")
    assert demote.status_code == 409 and demote.json()["code"] == "LAST_ADMIN"
    remove = client.delete(f"/api/v1/users/{admin_a.pk}")
    assert remove.status_code == 409


def test_deactivated_member_loses_access(api, world, admin_a, viewer_a):
    api(admin_a).put(f"/api/v1/users/{viewer_a.pk}", {"is_active": False}, format="json")
    assert api(viewer_a).get("/api/v1/workspaces").json() == []
    assert api(viewer_a).get("/api/v1/audit/logs", HTTP_X_WORKSPACE="alpha").status_code == 404
