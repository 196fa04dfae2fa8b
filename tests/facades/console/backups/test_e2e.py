"""End to end with a real PostgreSQL, a real Celery worker and the Redis channel layer: a
backup made through ``create`` is followed on the sockets to ``backup_completed``, shows in
the list, details and statistics, is synced to S3 (moto's server) with verification, is
restored from the S3 copy once its local file is deleted by hand, downloads decrypted (from
S3) and restores with ``pg_restore``, and appears in the PDF and CSV reports."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import psycopg
import pytest
from channels.db import database_sync_to_async
from psycopg import sql

from backups.models import Backup, BackupCopy, Operation, Source, Storage
from backups.services.restores import restore_start
from tests.e2e.conftest import PG, needs_pg, pg_drop
from tests.support.workers import wait_for

from .conftest import CONSOLE
from .test_sockets import open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, needs_pg, pytest.mark.slow]


def row_count(database: str, table: str) -> int:
    with psycopg.connect(dbname=database, **PG) as conn:
        return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="needs pdftoppm (poppler-utils)")
async def test_console_backup_from_create_to_pg_restore_and_reports(
    api,
    operator_a,
    tenant_a,
    components_a,
    storage_a,
    pg_server_row,
    pg_source_db,
    start_worker,
    tmp_path,
    settings,
    s3_bucket,
):
    from PIL import Image

    settings.REPORT_RATE_SECONDS = 1
    await database_sync_to_async(Source.objects.create)(
        tenant=tenant_a,
        application=components_a,
        name="shop",
        type="postgresql",
        server=pg_server_row,
        database_name=pg_source_db,
        component="database",
        position=2,
    )
    start_worker()
    client = await database_sync_to_async(api)(operator_a)
    updates, notifications = await open_socket(operator_a, "updates"), await open_socket(operator_a, "notifications")

    created = await database_sync_to_async(client.post)(
        f"{CONSOLE}/create",
        {"name": "console_e2e", "components": ["database", "data"], "destination": "disk"},
        format="json",
    )
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
    await notifications.disconnect()

    listing = (await database_sync_to_async(client.get)(f"{CONSOLE}/list")).json()
    assert [b["id"] for b in listing["backups"]] == [backup_id] and listing["backups"][0]["status"] == "completed"
    details = (await database_sync_to_async(client.get)(f"{CONSOLE}/details/{backup_id}")).json()
    assert details["components"]["database"]["included"] and details["components"]["database"]["size_bytes"] > 0
    assert details["components"]["config"]["included"] is False
    assert [loc["storage"] for loc in details["storage_locations"]] == ["disk"]
    stats = (await database_sync_to_async(client.get)(f"{CONSOLE}/statistics", {"period": "24h"})).json()
    assert stats["summary"]["successful"] == 1 and stats["summary"]["total_size_bytes"] == details["compressed_size"]

    # Synced to S3 by the worker, followed on the socket, re-read and checked there.
    aws = await database_sync_to_async(Storage.objects.create)(
        tenant=tenant_a, name="aws", type="s3", configuration=s3_bucket.configuration, credentials=s3_bucket.credentials
    )
    sync = await database_sync_to_async(client.post)(
        f"{CONSOLE}/storage/sync",
        {"source": "disk", "destination": "aws", "backup_ids": [backup_id], "verify_after_sync": True},
        format="json",
    )
    assert sync.status_code == 200, sync.content
    sync_id = sync.json()["sync_id"]
    while True:
        message = await updates.receive_json_from(timeout=120)
        if message["type"] == "sync_progress" and message["status"] in ("completed", "failed"):
            break
    assert message["sync_id"] == sync_id and message["status"] == "completed", message
    await updates.disconnect()
    details = (await database_sync_to_async(client.get)(f"{CONSOLE}/details/{backup_id}")).json()
    assert {(loc["storage"], loc["verified"]) for loc in details["storage_locations"]} >= {("aws", True)}
    copy = await database_sync_to_async(BackupCopy.objects.get)(backup_id=backup_id, storage=aws)
    assert copy.verified and copy.checksum == details["checksum"].removeprefix("sha256:")

    # The local file is deleted by hand: the worker's restore reads the S3 copy.
    backup = await database_sync_to_async(Backup.objects.get)(pk=backup_id)
    (Path(storage_a.configuration["path"]) / backup.storage_path).unlink()
    from_s3 = f"{pg_source_db}_from_s3"
    restore = await database_sync_to_async(restore_start)(
        tenant=tenant_a,
        backup=backup,
        actor=operator_a,
        target_path=str(tmp_path / "restored-from-s3"),
        options={"namespace_mapping": {pg_source_db: from_s3}},
    )
    public_id = await database_sync_to_async(lambda: Operation.objects.get(pk=restore.operation_id).public_id)()

    def restore_finished():
        body = client.get(f"{CONSOLE}/restore/progress/{public_id}").json()
        return body if body["status"] in ("completed", "failed") else None

    try:
        finished = await database_sync_to_async(wait_for)(restore_finished, timeout=120, interval=0.5)
        assert finished["status"] == "completed", finished
        assert row_count(from_s3, "customers") == row_count(pg_source_db, "customers") == 300
    finally:
        pg_drop(from_s3)
    assert (
        await database_sync_to_async(BackupCopy.objects.get)(backup_id=backup_id, storage=storage_a)
    ).status == "missing"

    download = await database_sync_to_async(client.get)(f"{CONSOLE}/download/{backup_id}")
    content = await database_sync_to_async(lambda: b"".join(download.streaming_content))()
    with tarfile.open(fileobj=io.BytesIO(content)) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("-shop.dump"))
        dump = tmp_path / "shop.dump"
        dump.write_bytes(tar.extractfile(member).read())
    target = f"{pg_source_db}_restored"
    try:
        subprocess.run(["createdb", "-h", PG["host"], "-p", str(PG["port"]), "-U", PG["user"], target], check=True)
        subprocess.run(
            [
                "pg_restore",
                "--no-owner",
                "-h",
                PG["host"],
                "-p",
                str(PG["port"]),
                "-U",
                PG["user"],
                "-d",
                target,
                str(dump),
            ],
            check=True,
        )
        assert row_count(target, "customers") == row_count(pg_source_db, "customers") == 300
    finally:
        pg_drop(target)

    pdf = await database_sync_to_async(client.get)(f"{CONSOLE}/report/generate", {"format": "pdf"})
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    path = tmp_path / "report.pdf"
    path.write_bytes(await database_sync_to_async(lambda: b"".join(pdf.streaming_content))())
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")], check=True
    )
    image = Image.open(next(tmp_path.glob("page*.png"))).convert("L")
    assert sum(image.histogram()[:200]) > image.width * image.height * 0.01

    def csv_report():
        response = client.get(f"{CONSOLE}/report/generate", {"format": "csv"})
        return response if response.status_code == 200 else None

    report = await database_sync_to_async(wait_for)(csv_report, timeout=10, interval=0.3)  # 1 report a second here
    text = await database_sync_to_async(lambda: b"".join(report.streaming_content).decode())()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(int(r["id"]), r["status"], r["name"]) for r in rows] == [(backup_id, "completed", "console_e2e")]
