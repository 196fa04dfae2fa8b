"""Live progress: a backup's progress and completion reach the tenant's sockets, and only its."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from backupplatform.asgi import application
from backups.models import Operation
from backups.services.backups import backup_run, backup_start

from .conftest import needs_pg

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, needs_pg]


async def socket_for(user):
    token = await database_sync_to_async(lambda: str(AccessToken.for_user(user)))()
    communicator = WebsocketCommunicator(application, f"/ws?token={token}")
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


async def test_backup_progress_and_completion_events(
    operator_a, admin_b, tenant_a, pg_server_row, local_storage, pg_source_db
):
    mine, theirs = await socket_for(operator_a), await socket_for(admin_b)
    op = await database_sync_to_async(backup_start)(
        tenant=tenant_a, server=pg_server_row, database_name=pg_source_db, storage=local_storage, queue=False
    )
    await database_sync_to_async(backup_run)(operation_id=op.pk)
    events = []
    while True:
        event = await mine.receive_json_from(timeout=5)
        events.append(event)
        if event["type"] in ("backup_completed", "backup_failed"):
            break
    types = [e["type"] for e in events]
    assert "backup_started" in types and "backup_progress" in types and types[-1] == "backup_completed"
    progress = [e for e in events if e["type"] == "backup_progress"]
    assert progress[-1]["progress"] == 100 and progress[-1]["backup_id"] == op.backup_id
    assert all(e.get("job_id") == op.public_id for e in progress)
    assert events[-1]["backup_id"] == op.backup_id and events[-1]["size"] > 0
    assert await theirs.receive_nothing(timeout=0.3)
    final = await database_sync_to_async(Operation.objects.get)(pk=op.pk)
    assert final.status == "completed" and final.progress == 100
    await mine.disconnect()
    await theirs.disconnect()
