"""Restore drills from the admin (run now, the read-only drill rows, the evidence download,
scoped to the staff user's workspaces) and from ``manage.py drill``."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from backups.services.backups import backup_run
from schedules import drills, services
from schedules.models import Drill

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def job(tenant_a, app_a, storage_a):
    job = services.job_create(
        tenant=tenant_a,
        name="nightly",
        application=app_a,
        storage=storage_a,
        schedule_type="custom",
        cron_expression="0 2 * * *",
    )
    op = services.job_run(job=job, queue=False)
    backup_run(operation_id=op.pk)
    return drills.drill_configure(job=job, assertions=[{"type": "file", "path": "f2.txt"}])


def test_the_drill_command_runs_a_drill_now_and_writes_the_evidence(job, tenant_a, tmp_path, capsys):
    call_command("drill", str(job.pk))
    out = capsys.readouterr().out
    drill = Drill.objects.get(job=job)
    assert drill.passed is True and f"Drill {drill.pk} passed" in out and '"rto_seconds"' in out
    drills.drill_configure(job=job, assertions=[{"type": "file", "path": "nope.txt"}])
    with pytest.raises(CommandError, match="FAILED: 1 of 2 assertion"):
        call_command("drill", str(job.pk))
    with pytest.raises(CommandError, match="No backup job"):
        call_command("drill", "999999")
    target = tmp_path / "evidence.json"
    call_command("drill", "--evidence", tenant_a.slug, "--format", "json", "--output", str(target))
    report = json.loads(target.read_text())
    assert [d["passed"] for d in report["drills"]] == [False, True]
    assert report["drills"][1]["backup_checksum"].startswith("sha256:")


def test_admin_runs_a_drill_and_staff_download_only_their_workspaces_evidence(job, staff_a, tenant_b, superuser):
    root = Client()
    root.force_login(superuser)
    response = root.post(
        "/admin/schedules/backupjob/", {"action": "drill_now", "_selected_action": [job.pk]}, follow=True
    )
    drill = Drill.objects.get(job=job)
    assert f"drill {drill.pk} of backup {drill.backup_ref} started" in response.content.decode()
    drills.drill_run(drill_id=drill.pk)  # what the worker does with the queued task

    staff = Client()
    staff.force_login(staff_a)
    listing = staff.get("/admin/schedules/drill/")
    assert listing.status_code == 200 and "Download evidence" in listing.content.decode()
    assert staff.get(f"/admin/schedules/drill/{drill.pk}/change/").status_code == 200
    page = staff.get("/admin/schedules/drill/evidence/")
    assert page.status_code == 200 and ">alpha<" in page.content.decode()
    assert "bravo" not in page.content.decode()
    pdf = staff.post("/admin/schedules/drill/evidence/", {"tenant": tenant_a_id(staff_a), "format": "pdf"})
    assert pdf["Content-Type"] == "application/pdf" and b"".join(pdf.streaming_content).startswith(b"%PDF")
    refused = staff.post("/admin/schedules/drill/evidence/", {"tenant": tenant_b.pk, "format": "json"})
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()

    # Another workspace's drill row is a 404 for this staff user.
    other = Drill.objects.create(tenant=tenant_b, job_name="theirs", status="failed")
    assert staff.get(f"/admin/schedules/drill/{other.pk}/change/").status_code == 404


def tenant_a_id(user) -> int:
    return user.memberships.get().tenant_id


def _form_data(job) -> dict:
    from django.forms.models import model_to_dict

    from schedules.admin import BackupJobForm

    data = model_to_dict(job, fields=BackupJobForm._meta.fields)
    for name in ("retention", "options", "notifications", "components", "drill_assertions"):
        if name in data:
            data[name] = json.dumps(data[name])
    data["days_of_week"] = [str(d) for d in job.days_of_week or []]
    data["compression"] = (job.options or {}).get("compression") or "zstd"
    data["notify_on_failure"] = "on"
    return {k: "" if v is None else v for k, v in data.items()}


def test_the_admin_job_form_sets_the_drill_schedule_through_the_service(job, superuser):
    client = Client()
    client.force_login(superuser)
    url = f"/admin/schedules/backupjob/{job.pk}/change/"
    bad = {
        **_form_data(job),
        "drill_assertions": json.dumps([{"type": "sql", "sql": "DELETE FROM items"}]),
        "drill_cron_expression": "0 5 * * 0",
    }
    page = client.post(url, bad)
    assert page.status_code == 200 and "read-only SELECT" in page.content.decode()
    job.refresh_from_db()
    assert job.drill_cron_expression == "" and job.drill_next_run_at is None
    good = {
        **_form_data(job),
        "drill_cron_expression": "0 5 * * 0",
        "drill_assertions": json.dumps([{"type": "file", "path": "f0.txt"}]),
    }
    response = client.post(url, good)
    assert response.status_code == 302, response.content.decode()[-2000:]
    job.refresh_from_db()
    assert job.drill_cron_expression == "0 5 * * 0" and job.drill_next_run_at is not None
    assert job.drill_assertions == [{"type": "file", "path": "f0.txt"}]


def test_staff_choose_servers_among_their_own_workspaces_servers(job, staff_a, tenant_a, tenant_b):
    from backups.models import Server

    Server.objects.create(tenant=tenant_a, name="our-scratch-pg", type="postgresql", host="127.0.0.1", port=5432)
    Server.objects.create(tenant=tenant_b, name="their-secret-pg", type="postgresql", host="127.0.0.1", port=5432)
    staff = Client()
    staff.force_login(staff_a)
    page = staff.get(f"/admin/schedules/backupjob/{job.pk}/change/").content.decode()
    for field in ("drill_server", "server"):
        choices = page[page.index(f'name="{field}"') :]
        choices = choices[: choices.index("</select>")]
        assert "our-scratch-pg" in choices and "their-secret-pg" not in choices, field
