"""Every example of db-backup-platform.md, sent as written (ids replaced by real objects)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.conftest import make_member

from . import docs
from .harness import Row, parametrize, run_http, table_problems

DOCUMENT = "db-backup-platform.md"
EXAMPLES = docs.examples(DOCUMENT)
# Commands run over SSH on the tests' SSH server (tests.fixtures.services.sftp_server).
NEEDS_SSH = True

# Which object an id stands for: by the collection before it in the path, or by field name.
DEFAULT_IDS = {
    "servers": "server",
    "backups": "backup",
    "schedules": "schedule",
    "users": "user",
    "commands": "command",
    "server_id": "server",
    "target_server_id": "server",
    "retention_policy_id": "retention_policy",
    "channel_id": "channel",
}


def _login_user(world) -> None:
    from tenants.models import Role

    user = make_member(world.tenant, "admin", Role.ADMIN)
    user.set_password("admin123")  # the document's password (too weak for the API's own checks)
    user.save()


def _the_receiver_got_the_message(world, response) -> None:
    """The test is really sent (synchronously): the Slack stand-in has the document's message."""
    assert any(b"Test notification" in body for body in world.received), world.received


# Made once for the module (conftest.py ``module_world``).
PRECREATE = ("server", "backup", "schedule", "retention_policy", "user")

TABLE: dict[str, Row] = {
    "POST /api/v1/auth/login": Row(auth="none", setup=_login_user),
    "GET /api/v1/servers": Row(needs=("server",)),
    "POST /api/v1/servers": Row(status=201),
    "GET /api/v1/servers/{id}": Row(),
    "PUT /api/v1/servers/{id}": Row(),
    "DELETE /api/v1/servers/{id}": Row(status=204, ids={"servers": "server2"}),
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
    "GET /api/v1/commands": Row(needs=("command",)),
    "POST /api/v1/commands": Row(status=201),
    "POST /api/v1/commands/{id}/execute": Row(
        status=201,
        ids={"commands": "docker_command", "server_id": "ssh_server"},
        vary={
            "status": "queued: the answer says pending until a worker starts the run (the executions list follows it)"
        },
    ),
    "GET /api/v1/commands/{id}/executions": Row(needs=("execution",)),
    "GET /api/v1/notifications/channels": Row(needs=("channel",)),
    "POST /api/v1/notifications/channels": Row(status=201),
    "POST /api/v1/notifications/test": Row(then=_the_receiver_got_the_message),
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


@pytest.mark.parametrize(
    "example", parametrize("test_db_backup_platform::test_example", DOCUMENT, EXAMPLES, TABLE, http=True)
)
def test_example(example, world):
    run_http(example, TABLE, world, APIClient(), defaults=DEFAULT_IDS)
