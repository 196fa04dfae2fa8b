"""Restore drills through the platform API: the drill policy, drills started now, the list,
the evidence report (JSON and a PDF whose first page renders), roles, other workspaces' rows
as 404 and bad input as the facade's 422."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from audit.models import AuditEvent
from backups.models import Backup, Server
from backups.services.backups import backup_run
from schedules import drills, services
from schedules.models import Drill

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def files_job(tenant_a, app_a, storage_a):
    return services.job_create(
        tenant=tenant_a,
        name="files",
        application=app_a,
        storage=storage_a,
        schedule_type="custom",
        cron_expression="0 3 * * *",
        timezone="Europe/Berlin",
    )


def backed_up(job):
    op = services.job_run(job=job, queue=False)
    backup_run(operation_id=op.pk)
    return Backup.objects.get(pk=op.backup_id)


def first_page_ink(pdf: bytes, tmp_path: Path) -> tuple[tuple[int, int], int]:
    """Render page 1 with pdftoppm; its size and how many pixels are not white."""
    (tmp_path / "e.pdf").write_bytes(pdf)
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "60",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(tmp_path / "e.pdf"),
            str(tmp_path / "page"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    image = Image.open(tmp_path / "page.png").convert("L")
    return image.size, sum(image.histogram()[:200])


def test_the_drill_policy_is_read_by_viewers_and_set_by_admins(api, files_job, admin_a, operator_a, viewer_a):
    url = f"/api/v1/schedules/{files_job.pk}/drill-policy"
    body = api(viewer_a).get(url).json()
    assert body == {
        "schedule_id": files_job.pk,
        "cron_expression": "",
        "timezone": "Europe/Berlin",
        "next_drill": None,
        "assertions": [],
        "scratch_server_id": None,
    }
    wanted = {"cron_expression": "0 5 * * 0", "assertions": [{"type": "file", "path": "f1.txt"}]}
    assert api(operator_a).put(url, wanted, format="json").status_code == 403
    response = api(admin_a).put(url, wanted, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["cron_expression"] == "0 5 * * 0" and body["next_drill"]
    assert body["assertions"] == [{"type": "file", "path": "f1.txt"}]
    assert api(viewer_a).get(url).json() == body
    assert AuditEvent.objects.filter(action="drill_configure", resource_id=str(files_job.pk)).exists()
    # Turning the schedule off keeps the assertions.
    off = api(admin_a).put(url, {"cron_expression": ""}, format="json").json()
    assert off["next_drill"] is None and off["assertions"] == body["assertions"]


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"assertions": [{"type": "sql", "sql": "DROP TABLE items"}]}, ["body", "assertions.0.sql"]),
        ({"assertions": [{"type": "file", "path": "../etc/passwd"}]}, ["body", "assertions.0.path"]),
        ({"assertions": [{"type": "row_count", "table": "items"}]}, ["body", "assertions.0"]),
        ({"assertions": [{"type": "teleport"}]}, ["body", "assertions.0.type"]),
        ({"assertions": "SELECT 1"}, ["body", "assertions"]),
        ({"assertions": [7]}, ["body", "assertions", "0"]),
        ({"cron_expression": "every day"}, ["body", "cron_expression"]),
        ({"cron_expression": 5}, ["body", "cron_expression"]),
        ({"scratch_server_id": "x"}, ["body", "scratch_server_id"]),
        ({"schedule": "weekly"}, ["body", "schedule"]),
    ],
)
def test_bad_drill_policies_are_refused_and_nothing_changes(api, files_job, admin_a, payload, loc):
    response = api(admin_a).put(f"/api/v1/schedules/{files_job.pk}/drill-policy", payload, format="json")
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR" and loc in [item["loc"] for item in body["detail"]], body
    files_job.refresh_from_db()
    assert files_job.drill_cron_expression == "" and files_job.drill_assertions == []


def test_a_drill_started_through_the_api_shows_its_evidence(api, files_job, operator_a, viewer_a, files_dir, tmp_path):
    backup = backed_up(files_job)
    digest = hashlib.sha256((files_dir / "f0.txt").read_bytes()).hexdigest()
    drills.drill_configure(job=files_job, assertions=[{"type": "file", "path": "f0.txt", "sha256": digest}])
    assert api(viewer_a).post(f"/api/v1/schedules/{files_job.pk}/drills", {}, format="json").status_code == 403
    response = api(operator_a).post(f"/api/v1/schedules/{files_job.pk}/drills", {}, format="json")
    assert response.status_code == 201, response.content
    started = response.json()
    assert started["status"] == "pending" and started["backup_id"] == backup.pk
    assert started["status_url"] == f"/api/v1/drills/{started['id']}"
    drills.drill_run(drill_id=started["id"])  # what the worker does with the queued task

    drill = api(viewer_a).get(started["status_url"]).json()
    assert drill["status"] == "passed" and drill["passed"] is True
    assert drill["backup_checksum"] == f"sha256:{backup.checksum}" and drill["checksum_verified"] is True
    assert drill["rto_seconds"] > 0 and drill["rpo_seconds"] >= 0 and drill["scratch_dropped"] is True
    assert [(a["type"], a["passed"]) for a in drill["assertions"]] == [("checksum", True), ("file", True)]
    listed = api(viewer_a).get(f"/api/v1/drills?schedule_id={files_job.pk}").json()
    assert listed["total"] == 1 and listed["items"][0] == drill
    assert api(viewer_a).get("/api/v1/drills?schedule_id=999999").json() == {"total": 0, "items": []}

    evidence = api(viewer_a).get("/api/v1/drills/evidence?format=json")
    assert evidence.status_code == 200 and evidence["Content-Type"] == "application/json"
    assert 'filename="drill_evidence_alpha_' in evidence["Content-Disposition"]
    report = json.loads(b"".join(evidence.streaming_content))
    assert report["summary"]["drills"] == 1 and report["summary"]["passed"] == 1
    assert report["drills"][0]["backup_id"] == backup.pk and report["drills"][0]["assertions"] == drill["assertions"]

    pdf = api(viewer_a).get("/api/v1/drills/evidence")  # PDF by default
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    content = b"".join(pdf.streaming_content)
    assert content.startswith(b"%PDF")
    if shutil.which("pdftoppm"):
        size, ink = first_page_ink(content, tmp_path)
        assert size[1] > size[0] and ink > 500  # A4 portrait, with text on it


def test_starting_a_drill_needs_a_completed_backup_of_that_schedule(
    api, files_job, operator_a, tenant_a, app_b, tenant_b, storage_a
):
    url = f"/api/v1/schedules/{files_job.pk}/drills"
    refused = api(operator_a).post(url, {}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "NO_BACKUP_TO_DRILL"
    other = services.job_create(
        tenant=tenant_a,
        name="other",
        server=Server.objects.create(tenant=tenant_a, name="pg", type="postgresql", host="127.0.0.1", port=5432),
        database_name="x",
        storage=storage_a,
        schedule_type="custom",
        cron_expression="0 3 * * *",
    )
    from tests.schedules.conftest import make_backups

    [foreign] = make_backups(tenant_a, job=other, statuses=["completed"])
    response = api(operator_a).post(url, {"backup_id": foreign.pk}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "BACKUP_NOT_FOUND"
    for body in ({"backup_id": "1"}, {"backup_id": 0}, {"unknown": 1}, [1]):
        assert api(operator_a).post(url, body, format="json").status_code == 422, body
    assert not Drill.objects.exists()


def test_other_workspaces_drills_and_schedules_are_not_found(api, files_job, admin_a, admin_b, tenant_b):
    backed_up(files_job)
    drill = drills.drill_start(tenant=files_job.tenant, job=files_job, queue=False)
    drills.drill_run(drill_id=drill.pk)
    theirs = api(admin_b)
    for method, path, code in [
        ("get", f"/api/v1/drills/{drill.pk}", "DRILL_NOT_FOUND"),
        ("get", f"/api/v1/schedules/{files_job.pk}/drill-policy", "SCHEDULE_NOT_FOUND"),
        ("put", f"/api/v1/schedules/{files_job.pk}/drill-policy", "SCHEDULE_NOT_FOUND"),
        ("post", f"/api/v1/schedules/{files_job.pk}/drills", "SCHEDULE_NOT_FOUND"),
        ("get", "/api/v1/drills/abc", "DRILL_NOT_FOUND"),
        ("get", f"/api/v1/drills/{'9' * 25}", "DRILL_NOT_FOUND"),
    ]:
        response = getattr(theirs, method)(path, {}, format="json") if method != "get" else theirs.get(path)
        assert response.status_code == 404 and response.json()["code"] == code, (path, response.content)
    assert theirs.get("/api/v1/drills").json() == {"total": 0, "items": []}
    report = json.loads(b"".join(theirs.get("/api/v1/drills/evidence?format=json").streaming_content))
    assert report["workspace"]["slug"] == "bravo" and report["drills"] == []
    # A scratch server of another workspace is not found either.
    server_b = Server.objects.create(tenant=tenant_b, name="theirs", type="postgresql", host="127.0.0.1", port=5432)
    response = api(admin_a).put(
        f"/api/v1/schedules/{files_job.pk}/drill-policy", {"scratch_server_id": server_b.pk}, format="json"
    )
    assert response.status_code == 404 and response.json()["code"] == "SERVER_NOT_FOUND"


@pytest.mark.parametrize(
    "query",
    [
        "format=xml",
        "start_date=yesterday",
        "end_date=2026-13-01",
        "start_date=2026-05-02&end_date=2026-05-01",
        "start_date=2020-01-01&end_date=2026-01-01",
        "colour=red",
        "end_date=9999-12-31",
        "end_date=0001-01-05",
    ],
)
def test_bad_evidence_queries_are_422(api, viewer_a, query):
    response = api(viewer_a).get(f"/api/v1/drills/evidence?{query}")
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR" and all(item["loc"][0] == "query" for item in body["detail"]), body
