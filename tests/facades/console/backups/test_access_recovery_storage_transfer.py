"""Tenant isolation, roles and bad input on the console's recovery, storage, sync, import and
export routes, in the console's error body: another tenant's backups and operations are 404
(and its lists show none of them), a role below the route's is 403, no token is 401, and a
malformed or wrong-typed body is 400 VALIDATION_ERROR that starts nothing."""

from __future__ import annotations

import pytest

from backups.models import Operation, Snapshot, Storage
from backups.services import copies

from .conftest import CONSOLE

pytestmark = pytest.mark.django_db


@pytest.fixture
def sync_a(tenant_a, backup_a, storage_a, tmp_path):
    """A sync of tenant a's backup to a second local storage (queued, not run)."""
    second = Storage.objects.create(
        tenant=tenant_a, name="disk2", type="local", configuration={"path": str(tmp_path / "store2")}
    )
    return copies.sync_start(tenant=tenant_a, source=storage_a, destination=second, backups=[backup_a], queue=False)


@pytest.fixture
def recovery_a(api, operator_a, backup_a):
    response = api(operator_a).post(
        f"{CONSOLE}/recovery/initiate", {"backup_id": backup_a.pk, "confirmation": True}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["recovery_id"]


def error_code(response, status: int) -> str:
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert set(body) >= {"code", "message", "details", "timestamp"} and isinstance(body["details"], dict)
    return body["code"]


def test_another_tenants_backups_and_operations_are_404(api, admin_b, backup_a, sync_a, recovery_a):
    client = api(admin_b)
    assert error_code(client.get(f"{CONSOLE}/recovery/preview/{backup_a.pk}"), 404) == "BACKUP_NOT_FOUND"
    assert (
        error_code(
            client.post(
                f"{CONSOLE}/recovery/initiate", {"backup_id": backup_a.pk, "confirmation": True}, format="json"
            ),
            404,
        )
        == "BACKUP_NOT_FOUND"
    )
    error_code(client.get(f"{CONSOLE}/recovery/progress/{recovery_a}"), 404)
    error_code(client.get(f"{CONSOLE}/storage/sync/progress/{sync_a.public_id}"), 404)
    # Tenant a's storage names mean nothing in tenant b: nothing to sync from.
    error_code(client.post(f"{CONSOLE}/storage/sync", {"source": "disk", "destination": "disk2"}, format="json"), 400)
    assert client.get(f"{CONSOLE}/storage").json()["storage_locations"] == []
    exported = client.get(f"{CONSOLE}/export/config")
    assert exported.status_code == 200 and b"disk" not in exported.content


@pytest.mark.parametrize(
    "persona, method, path, body, status",
    [
        ("viewer", "post", "/recovery/initiate", {"backup_id": "{backup}", "confirmation": True}, 403),
        ("viewer", "post", "/storage/sync", {"source": "disk", "destination": "disk2"}, 403),
        ("operator", "post", "/storage/update", {"storage_locations": {"disk": {"quota": "1 GB"}}}, 403),
        ("operator", "get", "/export/config", None, 403),
        ("viewer", "post", "/import/validate", None, 403),
    ],
)
def test_roles_below_the_routes_are_403_and_change_nothing(
    api, viewer_a, operator_a, backup_a, sync_a, persona, method, path, body, status
):
    user = {"viewer": viewer_a, "operator": operator_a}[persona]
    before = Operation.objects.count()
    if body and body.get("backup_id") == "{backup}":
        body = {**body, "backup_id": backup_a.pk}
    response = (
        getattr(api(user), method)(f"{CONSOLE}{path}", body, format="json")
        if body is not None
        else getattr(api(user), method)(f"{CONSOLE}{path}")
    )
    assert error_code(response, status) == "FORBIDDEN"
    assert Operation.objects.count() == before and Storage.objects.get(name="disk").quota_bytes is None


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/recovery/preview/1"),
        ("post", "/recovery/initiate"),
        ("get", "/recovery/progress/x"),
        ("get", "/storage"),
        ("post", "/storage/update"),
        ("post", "/storage/sync"),
        ("get", "/storage/sync/progress/x"),
        ("get", "/export/config"),
        ("post", "/import/validate"),
        ("post", "/import"),
    ],
)
def test_without_a_token_every_route_is_401_in_the_console_body(method, path):
    from rest_framework.test import APIClient

    error_code(getattr(APIClient(), method)(f"{CONSOLE}{path}"), 401)


@pytest.mark.parametrize(
    "path, body",
    [
        ("/recovery/initiate", {"backup_id": "1", "confirmation": True}),
        ("/recovery/initiate", {"backup_id": 1, "confirmation": "yes"}),
        ("/recovery/initiate", {"backup_id": 1, "confirmation": True, "module_filter": "data"}),
        ("/recovery/initiate", {"backup_id": 1, "confirmation": True, "colour": 1}),
        ("/storage/sync", {"source": 5, "destination": "disk2"}),
        ("/storage/sync", {"source": "disk", "destination": "disk2", "backup_ids": "all"}),
        ("/storage/update", {"storage_locations": {"disk": {"quota": -5}}}),
        ("/storage/update", {"storage_locations": {"disk": {"cleanup_threshold": "high"}}}),
        ("/storage/update", {"policies": {"compression_default": "rar"}}),
    ],
)
def test_wrong_types_and_unknown_fields_are_400_and_start_nothing(api, admin_a, backup_a, sync_a, path, body):
    before = (Operation.objects.count(), Snapshot.objects.count())
    assert error_code(api(admin_a).post(f"{CONSOLE}{path}", body, format="json"), 400) == "VALIDATION_ERROR"
    assert (Operation.objects.count(), Snapshot.objects.count()) == before
    assert Storage.objects.get(name="disk").quota_bytes is None


@pytest.mark.parametrize("path", ["/recovery/initiate", "/storage/sync", "/storage/update"])
def test_malformed_json_is_400(api, admin_a, path):
    response = api(admin_a).generic("POST", f"{CONSOLE}{path}", "{", content_type="application/json")
    assert error_code(response, 400) == "BAD_REQUEST"


def test_odd_ids_are_404_not_500(api, admin_a):
    client = api(admin_a)
    for backup_id in ("³", "99999999999999999999999", "abc"):
        assert client.get(f"{CONSOLE}/recovery/preview/{backup_id}").status_code == 404
    for op_id in ("³", "x" * 300):
        assert client.get(f"{CONSOLE}/recovery/progress/{op_id}").status_code == 404
        assert client.get(f"{CONSOLE}/storage/sync/progress/{op_id}").status_code == 404
