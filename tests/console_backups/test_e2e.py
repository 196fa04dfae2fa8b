"""End to end with a real PostgreSQL, a real Celery worker and the Redis channel layer: a
backup made through ``create`` is followed on the sockets to ``backup_completed``, shows in
the list, details and statistics, downloads decrypted and restores with ``pg_restore``, and
appears in the PDF and CSV reports."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import tarfile

import psycopg
import pytest
from channels.db import database_sync_to_async
from psycopg import sql

from backups.models import Source
from tests.backups_e2e.conftest import PG, needs_pg, pg_drop
from tests.backups_e2e.test_worker_crash import wait_for

from .conftest import CONSOLE
from .test_sockets import open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, needs_pg, pytest.mark.slow]


def row_count(database: str, table: str) -> int:
    with psycopg.connect(dbname=database, **PG) as conn:
        return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="needs pdftoppm (poppler-utils)")
async def test_console_backup_from_create_to_pg_restore_and_reports(api, operator_a, tenant_a, components_a,
                                                                    storage_a, pg_server_row, pg_source_db,
                                                                    start_worker, tmp_path, settings):
    from PIL import Image

    settings.REPORT_RATE_SECONDS = 1
    await database_sync_to_async(Source.objects.create)(
        tenant=tenant_a, application=components_a, name="shop", type="postgresql", server=pg_server_row,
        database_name=pg_source_db, component="database", position=2)
    start_worker()
    client = await database_sync_to_async(api)(operator_a)
    updates, notifications = await open_socket(operator_a, "updates"), await open_socket(operator_a, "notifications")

    created = await database_sync_to_async(client.post)(f"{CONSOLE}/create", {
        "name": "console_e2e", "components": ["database", "data"], "destination": "disk"}, format="json")
    assert created.status_code == 201, created.content
    job_id, backup_id = created.json()["job_id"], created.json()["backup_id"]

    progress = []
    while not progress or progress[-1]["status"] not in ("completed", "failed"):
        progress.append(await updates.receive_json_from(timeout=120))
    assert progress[-1]["status"] == "completed", progress[-1]
    assert all(m["type"] == "backup_progress" and m["job_id"] == job_id for m in progress)
    percents = [m["progress"] for m in progress]
    assert percents == sorted(percents) and percents[-1] == 100
    while True:
        done = await notifications.receive_json_from(timeout=60)
        if done["type"] == "backup_completed":
            break
    assert done["backup_id"] == backup_id and done["name"] == "console_e2e" and done["size_bytes"] > 0
    await updates.disconnect()
    await notifications.disconnect()

    listing = (await database_sync_to_async(client.get)(f"{CONSOLE}/list")).json()
    assert [b["id"] for b in listing["backups"]] == [backup_id] and listing["backups"][0]["status"] == "completed"
    details = (await database_sync_to_async(client.get)(f"{CONSOLE}/details/{backup_id}")).json()
    assert details["components"]["database"]["included"] and details["components"]["database"]["size_bytes"] > 0
    assert details["components"]["config"]["included"] is False
    assert [loc["storage"] for loc in details["storage_locations"]] == ["disk"]
    stats = (await database_sync_to_async(client.get)(f"{CONSOLE}/statistics", {"period": "24h"})).json()
    assert stats["summary"]["successful"] == 1 and stats["summary"]["total_size_bytes"] == details["compressed_size"]

    download = await database_sync_to_async(client.get)(f"{CONSOLE}/download/{backup_id}")
    content = await database_sync_to_async(lambda: b"".join(download.streaming_content))()
    with tarfile.open(fileobj=io.BytesIO(content)) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("-shop.dump"))
        dump = tmp_path / "shop.dump"
        dump.write_bytes(tar.extractfile(member).read())
    target = f"{pg_source_db}_restored"
    try:
        subprocess.run(["createdb", "-h", PG["host"], "-p", str(PG["port"]), "-U", PG["user"], target], check=True)
        subprocess.run(["pg_restore", "--no-owner", "-h", PG["host"], "-p", str(PG["port"]), "-U", PG["user"],
                        "-d", target, str(dump)], check=True)
        assert row_count(target, "customers") == row_count(pg_source_db, "customers") == 300
    finally:
        pg_drop(target)

    pdf = await database_sync_to_async(client.get)(f"{CONSOLE}/report/generate", {"format": "pdf"})
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    path = tmp_path / "report.pdf"
    path.write_bytes(await database_sync_to_async(lambda: b"".join(pdf.streaming_content))())
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")],
                   check=True)
    image = Image.open(next(tmp_path.glob("page*.png"))).convert("L")
    assert sum(image.histogram()[:200]) > image.width * image.height * 0.01

    def csv_report():
        response = client.get(f"{CONSOLE}/report/generate", {"format": "csv"})
        return response if response.status_code == 200 else None

    report = await database_sync_to_async(wait_for)(csv_report, timeout=10, interval=0.3)  # 1 report a second here
    text = await database_sync_to_async(lambda: b"".join(report.streaming_content).decode())()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(int(r["id"]), r["status"], r["name"]) for r in rows] == [(backup_id, "completed", "console_e2e")]
