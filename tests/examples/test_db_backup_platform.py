"""Every example of db-backup-platform.md, sent as written (ids replaced by real objects)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from tests.conftest import make_member

from . import docs
from .harness import Row, parametrize, run_http, shape_problems, table_problems

DOCUMENT = "db-backup-platform.md"
EXAMPLES = docs.examples(DOCUMENT)
PENDING = "route not served yet (tests/endpoints_pending.txt): switch on by removing this skip"

# Which object an id stands for: by the collection before it in the path, or by field name.
DEFAULT_IDS = {"servers": "server", "backups": "backup", "schedules": "schedule", "users": "user",
               "commands": "command", "server_id": "server", "target_server_id": "server",
               "retention_policy_id": "retention_policy", "channel_id": "channel"}


def _login_user(world) -> None:
    from tenants.models import Role

    user = make_member(world.tenant, "admin", Role.ADMIN)
    user.set_password("admin123")  # the document's password (too weak for the API's own checks)
    user.save()


TABLE: dict[str, Row] = {
    "POST /api/v1/auth/login": Row(auth="none", setup=_login_user),
    "GET /api/v1/servers": Row(needs=("server",)),
    "POST /api/v1/servers": Row(status=201),
    "GET /api/v1/servers/{id}": Row(),
    "PUT /api/v1/servers/{id}": Row(),
    "DELETE /api/v1/servers/{id}": Row(status=204),
    "POST /api/v1/servers/{id}/test-connection": Row(),
    "GET /api/v1/servers/{id}/databases": Row(),
    "GET /api/v1/backups?server_id=1&db_type=postgresql&limit=50": Row(needs=("backup",)),
    "POST /api/v1/backups": Row(status=201),
    "GET /api/v1/backups/{id}": Row(),
    "POST /api/v1/backups/{id}/download": Row(),
    "POST /api/v1/backups/{id}/restore": Row(status=201),
    "DELETE /api/v1/backups/{id}": Row(status=204),
    "GET /api/v1/schedules": Row(needs=("schedule",)),
    "POST /api/v1/schedules": Row(status=201),
    "PUT /api/v1/schedules/{id}": Row(),
    "DELETE /api/v1/schedules/{id}": Row(status=204),
    "GET /api/v1/retention-policies": Row(needs=("retention_policy",)),
    "POST /api/v1/retention-policies": Row(status=201),
    "GET /api/v1/commands": Row(skip=PENDING),
    "POST /api/v1/commands": Row(status=201, skip=PENDING),
    "POST /api/v1/commands/{id}/execute": Row(status=201, skip=PENDING),
    "GET /api/v1/commands/{id}/executions": Row(skip=PENDING),
    "GET /api/v1/notifications/channels": Row(skip=PENDING),
    "POST /api/v1/notifications/channels": Row(status=201, skip=PENDING),
    "POST /api/v1/notifications/test": Row(skip=PENDING),
    "GET /api/v1/audit/logs?action=backup_create&limit=100": Row(needs=("backup",)),
    "GET /api/v1/audit/export?format=csv&start_date=2024-01-01&end_date=2024-01-31": Row(),
    "GET /api/v1/users": Row(needs=("user",)),
    "POST /api/v1/users": Row(status=201),
    "PUT /api/v1/users/{id}": Row(),
    "DELETE /api/v1/users/{id}": Row(status=204),
    "WS /ws": Row(),
}


def test_every_example_has_a_row():
    assert not table_problems(DOCUMENT, EXAMPLES, TABLE), "\n".join(table_problems(DOCUMENT, EXAMPLES, TABLE))


MODULE = __name__.rsplit(".", 1)[-1]


@pytest.mark.parametrize("example", parametrize(MODULE, DOCUMENT, EXAMPLES, TABLE, http=True))
def test_example(example, world):
    run_http(example, TABLE, world, APIClient(), defaults=DEFAULT_IDS)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize("example", parametrize(MODULE, DOCUMENT, EXAMPLES, TABLE, http=False))
async def test_websocket_example(example, world):
    await _websocket_events(example, world)


async def _websocket_events(example, world) -> None:
    """"WebSocket Events": a socket receives each documented event, in the documented shape,
    while a real backup runs (progress), a server is checked (health) and a backup fails
    (notification)."""
    from backupplatform.asgi import application
    from backups.services import backups as backup_services

    token = world.token
    socket = WebsocketCommunicator(application, f"{example.path}?token={token}")
    assert (await socket.connect(timeout=5))[0]

    def work() -> None:
        world.get("backup")  # server health checked, then a backup with progress
        op = backup_services.backup_start(tenant=world.tenant, actor=world.admin, server=world.get("server"),
                                          database_name="no_such_database", queue=False)
        backup_services.backup_run(operation_id=op.pk)  # fails: a notification

    await database_sync_to_async(work)()
    received = []
    while not await socket.receive_nothing(timeout=1):
        received.append(await socket.receive_json_from(timeout=5))
    await socket.disconnect()
    problems = []
    for message in example.response:
        ours = [m for m in received if m.get("type") == message["type"]]
        if not ours:
            problems.append(f"no {message['type']} event (received {sorted({m.get('type') for m in received})})")
            continue
        problems += shape_problems(message, ours[-1], message["type"], TABLE[example.key])
    assert not problems, "\n".join(problems)
