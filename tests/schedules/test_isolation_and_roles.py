"""Every schedule route: another tenant's row is a 404; viewer reads, operator runs and
triggers, admin manages jobs, policies and cleanup execution."""

from __future__ import annotations

import pytest

from schedules import services
from schedules.models import RetentionPolicy

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows(tenant_a, tenant_b, app_a, app_b, storage_a, pg_server_a):
    job = services.job_create(
        tenant=tenant_a,
        name="a-job",
        application=app_a,
        storage=storage_a,
        schedule_type="hourly",
        public_id="schedule_a",
    )
    job_b = services.job_create(
        tenant=tenant_b, name="b-job", application=app_b, schedule_type="hourly", public_id="schedule_b"
    )
    policy = RetentionPolicy.objects.create(tenant=tenant_a, name="p", keep_last_n=3)
    policy_b = RetentionPolicy.objects.create(tenant=tenant_b, name="pb", keep_last_n=3)
    plan_b = services.cleanup_analyse(tenant=tenant_b)
    return {
        "job": job.pk,
        "job_b": job_b.pk,
        "policy": policy.pk,
        "policy_b": policy_b.pk,
        "app": app_a.pk,
        "app_b": app_b.pk,
        "plan_b": plan_b.public_id,
        "ws": tenant_a.slug,
        "ws_b": tenant_b.slug,
    }


# (method, path, body, least role that may do it)
ROUTES = [
    ("get", "/api/v1/schedules", None, "viewer"),
    ("get", "/api/v1/schedules/{job}", None, "viewer"),
    ("put", "/api/v1/schedules/{job}", {"enabled": False}, "admin"),
    ("delete", "/api/v1/schedules/{job}", None, "admin"),
    ("get", "/api/v1/retention-policies", None, "viewer"),
    ("post", "/api/v1/retention-policies", {"name": "new", "keep_days": 3}, "admin"),
    ("put", "/api/v1/retention-policies/{policy}", {"keep_days": 3}, "admin"),
    ("get", "/api/v1/jobs", None, "viewer"),
    ("get", "/api/v1/jobs/{job}", None, "viewer"),
    ("get", "/api/v1/jobs/{job}/executions", None, "viewer"),
    ("post", "/api/v1/jobs/{job}/run", {}, "operator"),
    ("put", "/api/v1/jobs/{job}", {"priority": 9}, "admin"),
    ("delete", "/api/v1/jobs/{job}", None, "admin"),
    ("get", "/api/v1/workspaces/{ws}/applications/{app}/backup-policy", None, "viewer"),
    ("put", "/api/v1/workspaces/{ws}/applications/{app}/backup-policy", {"enabled": False}, "admin"),
    ("delete", "/api/v1/workspaces/{ws}/applications/{app}/backup-policy", None, "admin"),
    ("post", "/api/v1/workspaces/{ws}/applications/{app}/backups/trigger", {}, "operator"),
    ("get", "/cloud-integration/backup/schedules", None, "viewer"),
    ("post", "/cloud-integration/backup/schedules/toggle", {"schedule_id": "schedule_a", "enabled": False}, "admin"),
    (
        "post",
        "/cloud-integration/backup/schedules/update",
        {"schedule_id": "schedule_a", "retention_count": 3},
        "admin",
    ),
    ("post", "/cloud-integration/backup/cleanup", {"dry_run": True}, "operator"),
    (
        "post",
        "/cloud-integration/backup/cleanup/execute",
        {"cleanup_plan_id": "ANALYSIS-X", "confirmation": True},
        "admin",
    ),
]
RANK = {"viewer": 0, "operator": 1, "admin": 2}


@pytest.mark.parametrize(("method", "path", "payload", "least"), ROUTES)
@pytest.mark.parametrize("persona", ["viewer", "operator", "admin"])
def test_roles(api, rows, viewer_a, operator_a, admin_a, method, path, payload, least, persona):
    user = {"viewer": viewer_a, "operator": operator_a, "admin": admin_a}[persona]
    response = getattr(api(user), method)(path.format(**rows), payload, format="json")
    assert response.status_code < 500, response.content
    if RANK[persona] < RANK[least]:
        assert response.status_code == 403, (persona, path, response.content)
    else:
        assert response.status_code not in (401, 403), (persona, path, response.content)


FOREIGN = [
    ("get", "/api/v1/schedules/{job_b}", None),
    ("put", "/api/v1/schedules/{job_b}", {"enabled": False}),
    ("delete", "/api/v1/schedules/{job_b}", None),
    ("get", "/api/v1/retention-policies/{policy_b}", None),
    ("delete", "/api/v1/retention-policies/{policy_b}", None),
    ("get", "/api/v1/jobs/{job_b}", None),
    ("post", "/api/v1/jobs/{job_b}/run", {}),
    ("get", "/api/v1/jobs/{job_b}/executions", None),
    ("delete", "/api/v1/jobs/{job_b}", None),
    ("get", "/api/v1/workspaces/{ws}/applications/{app_b}/backup-policy", None),
    ("post", "/api/v1/workspaces/{ws}/applications/{app_b}/backups/trigger", {}),
    ("get", "/api/v1/workspaces/{ws_b}/applications/{app_b}/backup-policy", None),
    ("post", "/cloud-integration/backup/schedules/toggle", {"schedule_id": "schedule_b", "enabled": False}),
    ("post", "/cloud-integration/backup/cleanup/execute", {"cleanup_plan_id": "{plan_b}", "confirmation": True}),
]


@pytest.mark.parametrize(("method", "path", "payload"), FOREIGN)
def test_other_tenants_rows_are_404(api, rows, admin_a, method, path, payload):
    if payload and "cleanup_plan_id" in payload:
        payload = {**payload, "cleanup_plan_id": rows["plan_b"]}
    response = getattr(api(admin_a), method)(path.format(**rows), payload, format="json")
    assert response.status_code == 404, response.content
    from schedules.models import BackupJob

    assert BackupJob.objects.get(pk=rows["job_b"]).enabled is True


def test_anonymous_is_401_everywhere(api, rows):
    for method, path, payload, _ in ROUTES:
        assert getattr(api(), method)(path.format(**rows), payload, format="json").status_code == 401


BAD_BODIES = ["{", "[]", "null", '"text"', "12", '{"name": ["a"], "enabled": "yes", "schedule": 5}']


@pytest.mark.parametrize(("method", "path", "payload", "least"), [r for r in ROUTES if r[0] in ("post", "put")])
def test_bad_bodies_never_500(api, rows, admin_a, method, path, payload, least):
    client = api(admin_a)
    for raw in BAD_BODIES:
        response = client.generic(method.upper(), path.format(**rows), raw, content_type="application/json")
        assert 400 <= response.status_code < 500, (path, raw, response.content)
