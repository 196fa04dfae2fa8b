"""The documents' WebSocket examples: each documented message arrives on the socket in the
documented shape while real work happens. Events go out after commit, so these run in
transactions that really commit (``fresh_world``). The console's sockets are still to come
(their rows in test_system_backup_recovery.py say so)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from . import test_acronis_integration as acronis
from . import test_db_backup_platform as platform
from .harness import parametrize, shape_problems

pytestmark = pytest.mark.django_db(transaction=True)


def _problems(example, table, received: list[dict]) -> list[str]:
    problems = []
    for message in example.response:
        ours = [m for m in received if m.get("type") == message["type"]]
        if not ours:
            problems.append(f"no {message['type']} event (received {sorted({m.get('type') for m in received})})")
            continue
        problems += shape_problems(message, ours[-1], message["type"], table[example.key])
    return problems


@pytest.mark.parametrize("example", parametrize("test_websocket_examples::test_platform_socket", platform.DOCUMENT, platform.EXAMPLES,
                                                platform.TABLE, http=False))
async def test_platform_socket(example, fresh_world):
    """db-backup-platform.md "WebSocket Events": progress of a real backup, the server's health,
    and the notification of a backup that fails."""
    from backupplatform.asgi import application
    from backups.services import backups as backup_services

    world = fresh_world
    socket = WebsocketCommunicator(application, f"{example.path}?token={world.token}")
    assert (await socket.connect(timeout=5))[0]

    def work() -> None:
        world.get("backup")  # the server is checked (health), then backed up (progress)
        op = backup_services.backup_start(tenant=world.tenant, actor=world.admin, server=world.get("server"),
                                          database_name="no_such_database", queue=False)
        backup_services.backup_run(operation_id=op.pk)  # fails: a notification

    await database_sync_to_async(work)()
    received = []
    while not await socket.receive_nothing(timeout=1):
        received.append(await socket.receive_json_from(timeout=5))
    await socket.disconnect()
    problems = _problems(example, platform.TABLE, received)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("example", parametrize("test_websocket_examples::test_acronis_socket", acronis.DOCUMENT, acronis.EXAMPLES,
                                                acronis.TABLE, http=False))
async def test_acronis_socket(example, tenant_a, admin_a, tmp_path, settings):
    """acronis-integration.md "WebSocket Support": a backup that changes state in Acronis reaches
    the socket as the documented message (the poller's work, run here as the beat task would)."""
    from acronis import services
    from backupplatform.asgi import application
    from tests.support.acronis_fake import FakeAcronis

    from .world import World

    settings.ACRONIS_CLIENT_OPTIONS = {"timeout": 1.0, "deadline": 3.0, "backoff_initial": 0.05, "backoff_max": 0.2}
    with FakeAcronis("acr-examples", "acr-examples-secret") as fake:
        world = await database_sync_to_async(World)(tenant=tenant_a, admin=admin_a, tmp_path=tmp_path, s3=None,
                                                    database="", acronis=fake)
        await database_sync_to_async(world.get)("acronis_config")
        socket = WebsocketCommunicator(application, f"{example.path}?token={world.token}")
        assert (await socket.connect(timeout=5))[0]
        await database_sync_to_async(services.poll_tenant)(tenant=world.tenant)  # the baseline
        running = next(a for a in fake.activities if a["state"] == "started")
        fake.set_activity_state(running["idString"], "completed", result_code="ok")
        await database_sync_to_async(services.poll_tenant)(tenant=world.tenant)
        message = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
    assert message["data"]["status"] == "completed"
    problems = _problems(example, acronis.TABLE, [message])
    assert not problems, "\n".join(problems)
