"""Every new console route: roles, anonymous callers, another tenant's ids, bad input, and the
console's error body (``details`` always an object), on both ``/cloud-integration/backup``
and its ``/v1`` alias. Never a 500."""

from __future__ import annotations

import pytest

from backups.models import Backup, Operation
from backups.services.backups import backup_start
from backups.services.restores import restore_start

from .conftest import make_backup

pytestmark = pytest.mark.django_db

PREFIXES = ["/cloud-integration/backup", "/cloud-integration/v1/backup"]
# method, path, body, least role, and the status a caller with that role gets here (the
# delete meets the restore that reads the backup).
ROUTES = [
    ("get", "/status", None, "viewer", 200),
    ("get", "/list", None, "viewer", 200),
    ("post", "/create", {"components": ["data"]}, "operator", 201),
    ("get", "/download/{backup}", None, "operator", 200),
    ("post", "/delete", {"backup_id": "{backup}"}, "admin", 409),
    ("get", "/details/{backup}", None, "viewer", 200),
    ("get", "/progress/{job}", None, "viewer", 200),
    ("get", "/restore/progress/{restore}", None, "viewer", 200),
    ("post", "/operation/cancel", {"job_id": "{job}"}, "operator", 200),
    ("get", "/statistics", None, "viewer", 200),
    ("get", "/report/generate", None, "viewer", 200),
]
RANK = {"viewer": 0, "operator": 1, "admin": 2}


@pytest.fixture
def rows(tenant_a, components_a, storage_a, tmp_path):
    backup = make_backup(tenant_a, components_a, storage_a, name="alpha_backup")
    op = backup_start(tenant=tenant_a, application=components_a, storage=storage_a, queue=False)
    restore = restore_start(tenant=tenant_a, backup=backup, target_path=str(tmp_path / "back"), queue=False)
    return {"backup": backup.pk, "job": op.public_id, "restore": restore.pk}


def fill(value, rows):
    if isinstance(value, str):
        filled = value.format(**rows)
        return int(filled) if value == "{backup}" else filled
    if isinstance(value, dict):
        return {k: fill(v, rows) for k, v in value.items()}
    return value


def call(client, method, path, payload, rows):
    response = getattr(client, method)(fill(path, rows), fill(payload, rows), format="json")
    assert response.status_code < 500, (path, response.content[:300])
    return response


def console_error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details", "timestamp"}
    assert isinstance(body["error"]["details"], dict), body
    return body["error"]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(("method", "path", "payload", "least", "allowed"), ROUTES)
@pytest.mark.parametrize("persona", ["viewer", "operator", "admin"])
def test_roles(api, rows, viewer_a, operator_a, admin_a, prefix, method, path, payload, least, allowed, persona):
    user = {"viewer": viewer_a, "operator": operator_a, "admin": admin_a}[persona]
    response = call(api(user), method, prefix + path, payload, rows)
    if RANK[persona] < RANK[least]:
        assert response.status_code == 403, (persona, path, response.content)
        assert console_error(response) == {**console_error(response), "code": "FORBIDDEN", "details": {}}
    else:
        assert response.status_code == allowed, (persona, path, response.content)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_anonymous_is_401_in_the_console_error_body(api, rows, prefix):
    for method, path, payload, _, _ in ROUTES:
        response = call(api(), method, prefix + path, payload, rows)
        assert response.status_code == 401, path
        assert console_error(response)["details"] == {}


FOREIGN = [
    ("get", "/download/{backup}", None),
    ("post", "/delete", {"backup_id": "{backup}"}),
    ("get", "/details/{backup}", None),
    ("get", "/progress/{job}", None),
    ("get", "/restore/progress/{restore}", None),
    ("post", "/operation/cancel", {"job_id": "{job}"}),
]


@pytest.mark.parametrize(("method", "path", "payload"), FOREIGN)
def test_another_tenants_rows_are_404(api, rows, admin_b, method, path, payload):
    before = (
        list(Backup.objects.values_list("pk", "status")),
        list(Operation.objects.values_list("pk", "status", "cancel_requested")),
    )
    response = call(api(admin_b), method, PREFIXES[0] + path, payload, rows)
    assert response.status_code == 404, response.content
    assert console_error(response)["code"] in ("BACKUP_NOT_FOUND", "RESTORE_NOT_FOUND", "OPERATION_NOT_FOUND")
    assert b"alpha_backup" not in response.content
    assert (
        list(Backup.objects.values_list("pk", "status")),
        list(Operation.objects.values_list("pk", "status", "cancel_requested")),
    ) == before


def test_another_tenants_lists_and_figures_show_none_of_a(api, rows, admin_b):
    client = api(admin_b)
    assert client.get(f"{PREFIXES[0]}/list").json()["total"] == 0
    assert client.get(f"{PREFIXES[0]}/statistics").json()["summary"]["total_backups"] == 0
    assert client.get(f"{PREFIXES[0]}/status").json()["total_backups"] == 0
    report = b"".join(client.get(f"{PREFIXES[0]}/report/generate", {"format": "csv"}).streaming_content)
    assert b"alpha_backup" not in report and report.count(b"\n") == 1


BAD_BODIES = [
    "{",
    "[]",
    "null",
    '"text"',
    "12",
    '{"backup_id": [1], "job_id": {"a": 1}, "components": 5}',
    '{"backup_id": "1", "job_id": 7, "name": ["x"], "encrypt": "yes"}',
    '{"unexpected": true}',
]


@pytest.mark.parametrize("path", ["/create", "/delete", "/operation/cancel"])
def test_bad_bodies_are_validation_errors_and_change_nothing(api, rows, admin_a, path):
    client = api(admin_a)
    before = (
        Backup.objects.count(),
        Operation.objects.count(),
        list(Operation.objects.values_list("status", "cancel_requested")),
    )
    for raw in BAD_BODIES:
        response = client.generic("POST", PREFIXES[0] + path, raw, content_type="application/json")
        assert response.status_code == 400, (path, raw, response.content)
        assert console_error(response)["code"] in ("VALIDATION_ERROR", "BAD_REQUEST")
    assert (
        Backup.objects.count(),
        Operation.objects.count(),
        list(Operation.objects.values_list("status", "cancel_requested")),
    ) == before


def test_other_errors_have_object_details_too(api, admin_a, rows):
    client = api(admin_a)
    wrong_method = client.put(f"{PREFIXES[0]}/status", {}, format="json")
    assert wrong_method.status_code == 405 and console_error(wrong_method)["details"] == {}
    wrong_type = client.post(f"{PREFIXES[0]}/create", "components=data", content_type="text/plain")
    assert wrong_type.status_code == 415 and console_error(wrong_type)["details"] == {}
    missing = client.get(f"{PREFIXES[0]}/no-such-route")
    assert missing.status_code == 404 and console_error(missing)["details"] == {}
    unknown = client.get(f"{PREFIXES[0]}/details/999999")
    assert console_error(unknown) == {
        **console_error(unknown),
        "code": "BACKUP_NOT_FOUND",
        "details": {"backup_id": "999999"},
    }
