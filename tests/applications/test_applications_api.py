"""Applications and sources (workspace facade extension): nested create/update, validation
paths ``sources[i].field``, the lazily created default application, tenant isolation."""

from __future__ import annotations

import pytest

from backups import services
from backups.models import Application, Source

pytestmark = pytest.mark.django_db

WS = "/api/v1/workspaces/alpha"


@pytest.fixture
def root(tenant_a):
    """A folder of tenant A's own (its roots are the test's temporary folder)."""
    return tenant_a.path_roots[0]


@pytest.fixture
def pg_server_a(tenant_a):
    return services.server_create(tenant=tenant_a, name="pg", type="postgresql", host="127.0.0.1", port=5432)


def test_create_with_sources_then_replace_them_atomically(api, admin_a, pg_server_a, root):
    client = api(admin_a)
    created = client.post(
        f"{WS}/applications",
        {
            "name": "web-app",
            "namespace": "prod",
            "labels": {"team": "web"},
            "sources": [
                {"type": "postgresql", "server_id": pg_server_a.pk, "database_name": "shop"},
                {"type": "path", "path": f"{root}/site/uploads", "include": ["*.jpg"], "exclude": ["tmp/**"]},
                {"type": "sqlite", "name": "cache", "path": f"{root}/site/cache.db"},
                {"type": "platform_config"},
            ],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    app = created.json()["data"]
    assert app["workspace_id"] == "alpha" and app["is_default"] is False
    sources = app["sources"]
    assert [(s["name"], s["type"], s["component"]) for s in sources] == [
        ("shop", "postgresql", "database"),
        ("uploads", "path", "data"),
        ("cache", "sqlite", "database"),
        ("platform_config", "platform_config", "config"),
    ]
    shop_id = sources[0]["id"]

    # Replace: keep shop (renamed), drop the others, add one.
    updated = client.put(
        f"{WS}/applications/{app['id']}",
        {
            "sources": [
                {
                    "id": shop_id,
                    "name": "shop-db",
                    "type": "postgresql",
                    "server_id": pg_server_a.pk,
                    "database_name": "shop",
                },
                {"type": "path", "path": f"{root}/etc/app"},
            ]
        },
        format="json",
    )
    assert updated.status_code == 200, updated.content
    after = updated.json()["data"]["sources"]
    assert [(s["id"] == shop_id, s["name"]) for s in after] == [(True, "shop-db"), (False, "app")]
    assert Source.objects.filter(application_id=int(app["id"].removeprefix("app-"))).count() == 2

    # A partial update without sources leaves them alone.
    client.put(f"{WS}/applications/{app['id']}", {"description": "shop front"}, format="json")
    assert Source.objects.filter(application_id=int(app["id"].removeprefix("app-"))).count() == 2


def test_validation_errors_point_at_the_source_and_nothing_is_written(api, admin_a, pg_server_a, root):
    response = api(admin_a).post(
        f"{WS}/applications",
        {
            "name": "broken",
            "sources": [
                {"type": "path", "path": f"{root}/ok"},
                {"type": "postgresql", "server_id": pg_server_a.pk},
                {"type": "path", "path": "relative"},
                {"type": "mysql", "server_id": pg_server_a.pk, "database_name": "x"},
                {"type": "floppy"},
            ],
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert "sources[4].type" in error["details"], error
    assert not Application.objects.filter(name="broken").exists()
    response = api(admin_a).post(
        f"{WS}/applications",
        {
            "name": "broken",
            "sources": [
                {"type": "path", "path": f"{root}/ok"},
                {"type": "postgresql", "server_id": pg_server_a.pk},
                {"type": "path", "path": "relative"},
                {"type": "mysql", "server_id": pg_server_a.pk, "database_name": "x"},
            ],
        },
        format="json",
    )
    details = response.json()["error"]["details"]
    assert set(details) == {"sources[1].database_name", "sources[2].path", "sources[3].server_id"}, details
    assert not Application.objects.filter(name="broken").exists()


def test_failed_update_keeps_the_old_sources(api, admin_a, tenant_a, pg_server_a, root):
    app = services.application_create(tenant=tenant_a, name="a", sources=[{"type": "path", "path": f"{root}/data"}])
    response = api(admin_a).put(
        f"{WS}/applications/{app.pk}",
        {
            "name": "renamed",
            "sources": [{"type": "path", "path": f"{root}/new"}, {"type": "postgresql", "database_name": "x"}],
        },
        format="json",
    )
    assert response.status_code == 400 and "sources[1].server_id" in response.json()["error"]["details"]
    app.refresh_from_db()
    assert app.name == "a" and [s.path for s in app.sources.all()] == [f"{root}/data"]


def test_other_tenants_server_is_a_validation_error_not_a_leak(api, admin_a, tenant_b):
    foreign = services.server_create(tenant=tenant_b, name="theirs", type="postgresql", host="h", port=5432)
    response = api(admin_a).post(
        f"{WS}/applications",
        {"name": "x", "sources": [{"type": "postgresql", "server_id": foreign.pk, "database_name": "d"}]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"sources[0].server_id": ["Server not found."]}


def test_default_application_is_created_lazily_once_and_kept(api, admin_a, tenant_a):
    client = api(admin_a)
    first = client.get(f"{WS}/applications").json()
    assert [a["name"] for a in first["data"]] == ["default"] and first["data"][0]["is_default"] is True
    client.get(f"{WS}/applications")
    assert Application.objects.filter(tenant=tenant_a, is_default=True).count() == 1
    assert f"app-{services.application_get_default(tenant=tenant_a).pk}" == first["data"][0]["id"]
    refused = client.delete(f"{WS}/applications/{first['data'][0]['id']}")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "DEFAULT_APPLICATION"


def test_delete_keeps_backups(api, admin_a, tenant_a):
    from backups.models import Backup

    app = services.application_create(tenant=tenant_a, name="gone")
    backup = Backup.objects.create(tenant=tenant_a, application=app, status="completed")
    response = api(admin_a).delete(f"{WS}/applications/{app.pk}")
    assert response.status_code == 200 and response.json()["data"]["application_id"] == f"app-{app.pk}"
    backup.refresh_from_db()
    assert backup.application_id is None


def test_list_is_paginated_with_bounded_queries(api, viewer_a, tenant_a, django_assert_max_num_queries, root):
    for n in range(5):
        services.application_create(
            tenant=tenant_a, name=f"app-{n}", sources=[{"type": "path", "path": f"{root}/d{n}"}]
        )
    client = api(viewer_a)
    client.get(f"{WS}/applications")  # creates the default application
    with django_assert_max_num_queries(12):
        body = client.get(f"{WS}/applications?per_page=3&page=2").json()
    assert body["pagination"] == {"page": 2, "per_page": 3, "total": 6, "pages": 2}
    assert [a["name"] for a in body["data"]] == ["app-2", "app-3", "app-4"]
