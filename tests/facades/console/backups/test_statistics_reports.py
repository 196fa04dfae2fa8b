"""system-backup-recovery.rst "Reporting & Statistics": statistics by aggregate queries,
reports as PDF, HTML and CSV."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from backups.models import Backup, Verification

from .conftest import CONSOLE
from .test_backups_api import content_of, error_of

pytestmark = pytest.mark.django_db


def add_backups(tenant, app, storage, n: int, *, start: int = 0) -> list[Backup]:
    """``n`` backups over the last days: every fifth failed, every seventh config-only."""
    now = timezone.now()
    rows = []
    for i in range(start, start + n):
        failed = i % 5 == 4
        rows.append(
            Backup(
                tenant=tenant,
                name=f"b{i}",
                application=app,
                storage=storage,
                status="failed" if failed else "completed",
                stored_bytes=0 if failed else 1_000_000 + i,
                size_bytes=0 if failed else 3_000_000,
                components=["config"] if i % 7 == 6 else [],
                error_message="pg_dump: connection refused" if failed else "",
                started_at=now - timedelta(days=i % 6, minutes=5),
                completed_at=now - timedelta(days=i % 6),
            )
        )
    created = Backup.objects.bulk_create(rows)
    for backup in created:  # created_at is auto_now_add: spread the rows over the days
        Backup.objects.filter(pk=backup.pk).update(created_at=backup.completed_at)
    return created


def test_statistics_figures(api, viewer_a, tenant_a, components_a, storage_a):
    rows = add_backups(tenant_a, components_a, storage_a, 10)
    old = add_backups(tenant_a, components_a, storage_a, 1, start=100)[0]
    Backup.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    body = api(viewer_a).get(f"{CONSOLE}/statistics", {"period": "30d"}).json()
    s = body["summary"]
    completed = [b for b in rows if b.status == "completed"]
    assert (s["total_backups"], s["successful"], s["failed"]) == (10, 8, 2)
    assert s["success_rate"] == "80%" and s["success_rate_percent"] == 80.0
    assert s["total_size_bytes"] == sum(b.stored_bytes for b in completed)
    assert s["average_size_bytes"] == sum(b.stored_bytes for b in completed) // 8
    assert s["storage_used_bytes"] == s["total_size_bytes"] + old.stored_bytes  # all that is stored now
    assert s["total_size"] == "8.0 MB" and s["average_duration"] == "00:05:00"
    assert s["storage_growth_bytes_per_week"] == int(s["total_size_bytes"] / (30 / 7))
    assert s["storage_growth"].endswith("/week")
    assert body["by_type"]["config"]["count"] == 1 and body["by_type"]["full"]["count"] == 9
    assert len(body["timeline"]) == 31 and body["timeline"][-1]["date"] == timezone.now().date().isoformat()
    assert sum(d["successful"] for d in body["timeline"]) == 8 and sum(d["failed"] for d in body["timeline"]) == 2
    assert body["by_type"]["pre-ota"]["count"] == 0 and body["by_type"]["snapshot"]["count"] == 0
    local = body["storage_distribution"]["local"]
    assert (
        local["count"] == 8
        and local["locations"]["disk"]["count"] == 8
        and local["locations"]["disk"]["type"] == "local"
    )
    assert body["storage_distribution"]["cloud"]["count"] == 0
    day = api(viewer_a).get(f"{CONSOLE}/statistics", {"period": "24h"}).json()
    assert day["summary"]["total_backups"] == 2 and len(day["timeline"]) == 2
    error_of(api(viewer_a).get(f"{CONSOLE}/statistics", {"period": "1y"}), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("url", [f"{CONSOLE}/statistics", f"{CONSOLE}/list"])
def test_statistics_and_list_query_count_does_not_grow_with_backups(
    api, viewer_a, tenant_a, components_a, storage_a, url
):
    client = api(viewer_a)
    add_backups(tenant_a, components_a, storage_a, 3)
    client.get(url)  # warm-up (content types, the tenant's default storage)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    add_backups(tenant_a, components_a, storage_a, 47, start=3)
    with CaptureQueriesContext(connection) as many:
        body = client.get(url).json()
    assert body.get("total", body.get("summary", {}).get("total_backups")) == 50
    assert len(many) == len(few), [q["sql"][:120] for q in many.captured_queries]
    assert len(few) <= 8


def test_csv_report_has_one_row_per_backup(api, viewer_a, tenant_a, components_a, storage_a):
    rows = add_backups(tenant_a, components_a, storage_a, 7)
    today = timezone.now().date()
    response = api(viewer_a).get(
        f"{CONSOLE}/report/generate",
        {"format": "csv", "start_date": (today - timedelta(days=10)).isoformat(), "end_date": today.isoformat()},
    )
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    start = (today - timedelta(days=10)).strftime("%Y%m%d")
    assert response["Content-Disposition"] == (f'attachment; filename="backup_report_{start}_{today:%Y%m%d}.csv"')
    table = list(csv.DictReader(io.StringIO(content_of(response).decode())))
    assert sorted(int(r["id"]) for r in table) == sorted(b.pk for b in rows)
    failed = next(r for r in table if r["status"] == "failed")
    assert failed["error"] == "pg_dump: connection refused" and failed["storage"] == "disk"
    assert {r["type"] for r in table} == {"full", "config"}


def test_html_report_shows_summary_chart_failures_and_verifications(
    api, viewer_a, tenant_a, components_a, storage_a, backup_a
):
    add_backups(tenant_a, components_a, storage_a, 5)
    Verification.objects.create(
        tenant=tenant_a,
        backup=backup_a,
        test_type="decrypt",
        status="completed",
        passed=False,
        error_message="chunk 3 failed authentication",
        completed_at=timezone.now(),
    )
    response = api(viewer_a).get(f"{CONSOLE}/report/generate", {"format": "html"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = content_of(response).decode()
    assert "Backup report: Alpha Inc" in html and "<svg" in html and "pg_dump: connection refused" in html
    assert "chunk 3 failed authentication" in html and "1 verification(s): 0 passed, 1 failed" in html
    assert "<script" not in html and "http" not in html.split("<body>", 1)[1]  # nothing fetched from elsewhere


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="needs pdftoppm (poppler-utils)")
def test_pdf_report_renders_a_non_blank_first_page(api, viewer_a, tenant_a, components_a, storage_a, tmp_path):
    from PIL import Image

    add_backups(tenant_a, components_a, storage_a, 12)
    response = api(viewer_a).get(f"{CONSOLE}/report/generate", {"format": "pdf"})
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith('attachment; filename="backup_report_')
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(content_of(response))
    assert pdf.read_bytes().startswith(b"%PDF")
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")], check=True)
    page = next(tmp_path.glob("page*.png"))
    image = Image.open(page).convert("L")
    dark = sum(image.histogram()[:200])  # pixels darker than light grey
    assert dark > image.width * image.height * 0.01  # text and charts, not a white page
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Backup report: Alpha Inc" in text and "pg_dump: connection refused" in text and "83.3%" in text


def test_one_report_per_minute_per_tenant(api, viewer_a, admin_b, tenant_a):
    client = api(viewer_a)
    assert client.get(f"{CONSOLE}/report/generate", {"format": "csv"}).status_code == 200
    refused = client.get(f"{CONSOLE}/report/generate", {"format": "html"})
    error = error_of(refused, 429, "RATE_LIMITED")
    assert 1 <= int(refused["Retry-After"]) <= 60 and error["details"]["retry_after"] == int(refused["Retry-After"])
    assert api(admin_b).get(f"{CONSOLE}/report/generate", {"format": "csv"}).status_code == 200  # another tenant


@pytest.mark.parametrize(
    "query",
    [
        {"format": "docx"},
        {"start_date": "2025-02-30"},
        {"start_date": "2025-06-02", "end_date": "2025-06-01"},
        {"start_date": "2020-01-01", "end_date": "2025-01-01"},
    ],
)
def test_report_refuses_bad_input_without_spending_the_minute(api, viewer_a, query):
    client = api(viewer_a)
    error_of(client.get(f"{CONSOLE}/report/generate", query), 400, "VALIDATION_ERROR")
    assert client.get(f"{CONSOLE}/report/generate", {"format": "csv"}).status_code == 200
