"""Every example of system-backup-recovery.rst (the console API), sent as written (ids replaced
by real objects) with the status its ``:statuscode:`` names. The routes still being built are
skipped by their rows: removing a row's ``skip`` switches its example on."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from . import docs
from .harness import Row, parametrize, run_http, table_problems

DOCUMENT = "system-backup-recovery.rst"
EXAMPLES = docs.examples(DOCUMENT)
PENDING = "route not served yet (tests/endpoints_pending.txt): switch on by removing this skip"

DEFAULT_IDS = {"schedule_id": "console_schedule", "cleanup_plan_id": "cleanup_plan", "backup_id": "app_backup",
               "job_id": "backup_operation", "restore_id": "restore_operation", "snapshot_id": "snapshot"}

# Made once for the module (conftest.py ``module_world``).
PRECREATE = ("console_schedule", "cleanup_plan")

TABLE: dict[str, Row] = {
    "GET /cloud-integration/backup/status": Row(skip=PENDING),
    "GET /cloud-integration/backup/list": Row(skip=PENDING),
    "POST /cloud-integration/backup/create": Row(skip=PENDING),
    "GET /cloud-integration/backup/download/{backup_id}": Row(skip=PENDING),
    "POST /cloud-integration/backup/delete": Row(skip=PENDING),
    "GET /cloud-integration/backup/details/{backup_id}": Row(skip=PENDING),
    "GET /cloud-integration/backup/snapshots": Row(skip=PENDING),
    "POST /cloud-integration/backup/snapshots/create": Row(skip=PENDING),
    "POST /cloud-integration/backup/snapshots/restore": Row(skip=PENDING),
    "GET /cloud-integration/backup/schedules": Row(needs=("console_schedule",)),
    "POST /cloud-integration/backup/schedules/update": Row(),
    "POST /cloud-integration/backup/schedules/toggle": Row(),
    "POST /cloud-integration/backup/recovery/initiate": Row(skip=PENDING),
    "GET /cloud-integration/backup/recovery/preview/{backup_id}": Row(skip=PENDING),
    "POST /cloud-integration/backup/import": Row(skip=PENDING),
    "POST /cloud-integration/backup/import/validate": Row(skip=PENDING),
    "GET /cloud-integration/backup/export/config": Row(skip=PENDING),
    "GET /cloud-integration/backup/storage": Row(skip=PENDING),
    "POST /cloud-integration/backup/storage/update": Row(skip=PENDING),
    "POST /cloud-integration/backup/storage/sync": Row(skip=PENDING),
    "POST /cloud-integration/backup/cleanup": Row(needs=("console_schedule",)),
    "POST /cloud-integration/backup/cleanup/execute": Row(),
    "GET /cloud-integration/backup/progress/{job_id}": Row(skip=PENDING),
    "GET /cloud-integration/backup/restore/progress/{restore_id}": Row(skip=PENDING),
    "POST /cloud-integration/backup/operation/cancel": Row(skip=PENDING),
    "GET /cloud-integration/backup/statistics": Row(skip=PENDING),
    "GET /cloud-integration/backup/report/generate": Row(skip=PENDING),
    "WS /ws/backup/updates": Row(skip=PENDING),
    "WS /ws/backup/notifications": Row(skip=PENDING),
    "WS /ws/backup/health": Row(skip=PENDING),
}


def test_every_example_has_a_row():
    assert not table_problems(DOCUMENT, EXAMPLES, TABLE), "\n".join(table_problems(DOCUMENT, EXAMPLES, TABLE))


@pytest.mark.parametrize("example", parametrize("test_system_backup_recovery::test_example", DOCUMENT, EXAMPLES, TABLE, http=True))
def test_example(example, world):
    run_http(example, TABLE, world, APIClient(), defaults=DEFAULT_IDS)


@pytest.mark.parametrize("example", parametrize("test_system_backup_recovery::test_websocket_example", DOCUMENT, EXAMPLES, TABLE, http=False))
def test_websocket_example(example):
    pytest.fail(f"{example.key}: no scenario yet; write one as test_db_backup_platform.py does")
