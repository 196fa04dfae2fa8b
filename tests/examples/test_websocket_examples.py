"""The documents' WebSocket examples: each documented message arrives on the socket in the
documented shape while real work happens. Events go out after commit, so these run in
transactions that really commit (``fresh_world``)."""

from __future__ import annotations

from datetime import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from . import test_acronis_integration as acronis
from . import test_db_backup_platform as platform
from . import test_system_backup_recovery as console
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


@pytest.mark.parametrize(
    "example",
    parametrize(
        "test_websocket_examples::test_platform_socket",
        platform.DOCUMENT,
        platform.EXAMPLES,
        platform.TABLE,
        http=False,
    ),
)
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
        op = backup_services.backup_start(
            tenant=world.tenant,
            actor=world.admin,
            server=world.get("server"),
            database_name="no_such_database",
            queue=False,
        )
        backup_services.backup_run(operation_id=op.pk)  # fails: a notification

    await database_sync_to_async(work)()
    received = []
    while not await socket.receive_nothing(timeout=1):
        received.append(await socket.receive_json_from(timeout=5))
    await socket.disconnect()
    problems = _problems(example, platform.TABLE, received)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "example",
    parametrize(
        "test_websocket_examples::test_acronis_socket", acronis.DOCUMENT, acronis.EXAMPLES, acronis.TABLE, http=False
    ),
)
async def test_acronis_socket(example, tenant_a, admin_a, tmp_path, settings):
    """acronis-integration.md "WebSocket Support": a backup that changes state in Acronis reaches
    the socket as the documented message (the poller's work, run here as the beat task would)."""
    from acronis import services
    from backupplatform.asgi import application
    from tests.support.acronis_fake import FakeAcronis

    from .world import World

    settings.ACRONIS_CLIENT_OPTIONS = {"timeout": 1.0, "deadline": 3.0, "backoff_initial": 0.05, "backoff_max": 0.2}
    with FakeAcronis("acr-examples", "acr-examples-secret") as fake:
        world = await database_sync_to_async(World)(
            tenant=tenant_a, admin=admin_a, tmp_path=tmp_path, s3=None, database="", acronis=fake
        )
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


def _console_work(world, stream: str) -> None:
    """Real work whose events the console socket ``stream`` carries, each documented type once."""
    import hashlib

    from backups.services import imports
    from backups.services import restores as restore_services
    from schedules import services as schedule_services

    local = world.get("local")
    if stream == "updates":
        backup = world.get("console_backup")  # backup_progress
        restore = restore_services.restore_start(
            tenant=world.tenant,
            backup=backup,
            actor=world.admin,
            queue=False,
            target_path=str(world.tmp_path / "restored-for-socket"),
        )
        restore_services.restore_run(operation_id=restore.operation_id)  # restore_progress
        upload = world.tmp_path / "external_backup.tar.gz"
        upload.write_bytes(world.get("tar_gz"))
        staged = imports.StagedUpload(
            path=str(upload),
            name=upload.name,
            size=upload.stat().st_size,
            sha256=hashlib.sha256(upload.read_bytes()).hexdigest(),
        )
        op = imports.import_start(
            tenant=world.tenant,
            upload=staged,
            inspection=imports.inspect_upload(tenant=world.tenant, upload=staged),
            actor=world.admin,
            queue=False,
        )
        imports.import_run(operation_id=op.pk)  # import_progress
    elif stream == "notifications":
        # A storage whose cleanup threshold the backup crosses: storage_alert; the backup: backup_completed.
        local.quota_bytes, local.cleanup_threshold = 100_000, 1  # 1 kB: any backup crosses it
        local.save(update_fields=["quota_bytes", "cleanup_threshold"])
        world.get("console_backup")
        job = schedule_services.job_create(
            tenant=world.tenant,
            actor=world.admin,
            name="Nightly Full Backup",
            application=world.get("components"),
            storage=local,
            schedule_type="daily",
            schedule_time=time(2, 0),
            public_id="schedule_nightly",
        )
        schedule_services.job_run(job=job, actor=world.admin, trigger="scheduled", queue=False)  # schedule_event


@pytest.mark.parametrize(
    "example",
    parametrize(
        "test_websocket_examples::test_console_socket", console.DOCUMENT, console.EXAMPLES, console.TABLE, http=False
    ),
)
async def test_console_socket(example, fresh_world, settings):
    """system-backup-recovery.rst "WebSocket API": a backup, a restore and an import followed on
    /ws/backup/updates; a completed backup, a storage past its threshold and a scheduled run on
    /ws/backup/notifications; the health figures /ws/backup/health sends on connect."""
    from backupplatform.asgi import application

    settings.CONSOLE_WS_HEALTH_INTERVAL = 3600
    world = fresh_world
    stream = example.path.rsplit("/", 1)[-1]
    if stream == "health":  # a local storage holding a backup, synced to a cloud one
        await database_sync_to_async(world.get)("aws_copy")
    socket = WebsocketCommunicator(application, f"{example.path}?token={world.token}")
    assert (await socket.connect(timeout=5))[0]
    await database_sync_to_async(_console_work)(world, stream)
    received = []
    while not await socket.receive_nothing(timeout=1):
        received.append(await socket.receive_json_from(timeout=5))
    await socket.disconnect()
    problems = _problems(example, console.TABLE, received)
    assert not problems, "\n".join(problems)
