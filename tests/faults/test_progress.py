"""Progress carries bytes done, bytes total and throughput, and never goes backwards (a restore
at 98 % of its bytes must not drop to 95 % when its masking step starts)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from backupplatform.asgi import application
from backups.models import Operation
from backups.progress import ProgressReporter, progress_event
from backups.services.backups import backup_run, backup_start
from backups.services.operations import operation_claim
from backups.services.restores import restore_run, restore_start
from tests.e2e.conftest import pg_drop

from .conftest import needs_pg


@pytest.mark.django_db
def test_progress_never_goes_backwards_and_reports_bytes(tenant_a, pg_server_row, local_storage):
    op = backup_start(tenant=tenant_a, server=pg_server_row, database_name="db", storage=local_storage, queue=False)
    op = operation_claim(operation_id=op.pk)
    reporter = ProgressReporter(op, total=1000, interval=0)
    reporter.update(980)
    reporter.step("masking", progress=95)

    stored = Operation.objects.get(pk=op.pk)
    assert stored.progress == 98 and stored.step == "masking"
    assert stored.bytes_done == 980 and stored.bytes_total == 1000 and stored.throughput_bps > 0
    event = progress_event(stored)
    assert event["progress"] == 98 and event["current_step"] == "masking"
    assert event["bytes_done"] == 980 and event["bytes_total"] == 1000 and event["throughput_bps"] > 0
    assert event["bytes_processed"] == 980  # the seeds' key stays

    reporter.update(990)  # bytes keep counting; the percentage stays where it was
    assert Operation.objects.get(pk=op.pk).progress == 99


async def _socket_for(user) -> WebsocketCommunicator:
    token = await database_sync_to_async(lambda: str(AccessToken.for_user(user)))()
    communicator = WebsocketCommunicator(application, f"/ws?token={token}")
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@needs_pg
async def test_a_masked_restore_reports_progress_that_only_grows(
    operator_a, tenant_a, pg_server_row, local_storage, big_pg_db
):
    op = await database_sync_to_async(backup_start)(
        tenant=tenant_a, server=pg_server_row, database_name=big_pg_db, storage=local_storage, queue=False
    )
    await database_sync_to_async(backup_run)(operation_id=op.pk)
    await database_sync_to_async(op.backup.refresh_from_db)()
    target = f"{big_pg_db}_masked"
    socket = await _socket_for(operator_a)
    try:
        restore = await database_sync_to_async(restore_start)(
            tenant=tenant_a,
            backup=op.backup,
            target_server=pg_server_row,
            target_database=target,
            masking_rules={"label": "hash"},
            queue=False,
        )
        await database_sync_to_async(restore_run)(operation_id=restore.operation_id)
        events = []
        while True:
            event = await socket.receive_json_from(timeout=10)
            if event.get("type") == "restore_progress":
                events.append(event)
                if event["status"] in ("completed", "failed"):
                    break
    finally:
        await socket.disconnect()
        await database_sync_to_async(pg_drop)(target)
    assert events[-1]["status"] == "completed", events[-1]
    steps = [e["current_step"] for e in events]
    assert "restoring_data" in steps and "masking_data" in steps
    percents = [e["progress"] for e in events]
    assert percents == sorted(percents), percents
    # Every byte was restored (80 %, the rest is masking and the swap): masking never goes back.
    restored = max(e["progress"] for e in events if e["current_step"] == "restoring_data")
    assert restored <= 80 <= next(e["progress"] for e in events if e["current_step"] == "masking_data")
    assert all(e["bytes_total"] == op.backup.size_bytes for e in events if e["current_step"] == "restoring_data")
    assert any(e["bytes_done"] > 0 and e["throughput_bps"] > 0 for e in events)
