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
GATEWAY = (
    "the document's gateway modules (ACS, zoning, network): the configuration here is servers, storages, "
    "retention policies, applications, schedules and storage policies"
)
OUR_COMPONENTS = (
    "the document's gateway components (acs_config, zone_mappings, user_permissions) are not this "
    "platform's: its snapshots hold servers, storages, retention_policies, applications, schedules, "
    "storage_policies"
)
SAME_ID = "a backup's id is a number, as the document's own list, details and delete give it"

DEFAULT_IDS = {
    "schedule_id": "console_schedule",
    "cleanup_plan_id": "cleanup_plan",
    "backup_id": "console_backup",
    "job_id": "backup_operation",
    "restore_id": "restore_operation",
    "snapshot_id": "snapshot",
}

# Made once for the module (conftest.py ``module_world``).
# Its locations are named as the document names them ("local", the default, and "aws"); its
# components are the default application's sources, one per documented component.
PRECREATE = ("console_schedule", "cleanup_plan", "local", "aws", "components", "console_backup")

TABLE: dict[str, Row] = {
    "GET /cloud-integration/backup/status": Row(),
    "GET /cloud-integration/backup/list": Row(),
    "POST /cloud-integration/backup/create": Row(retyped={"backup_id": SAME_ID}),
    "GET /cloud-integration/backup/download/{backup_id}": Row(),
    "POST /cloud-integration/backup/delete": Row(ids={"backup_id": "spare_backup"}),
    "GET /cloud-integration/backup/details/{backup_id}": Row(
        needs=("console_verification",), absent={"metadata.gateway_id": GATEWAY}
    ),
    "GET /cloud-integration/backup/snapshots": Row(needs=("snapshot",)),
    "POST /cloud-integration/backup/snapshots/create": Row(
        replace={"components": (["servers", "storages", "schedules"], OUR_COMPONENTS)}
    ),
    "POST /cloud-integration/backup/snapshots/restore": Row(
        replace={"components": (["storages", "schedules"], OUR_COMPONENTS)},
        retyped={"pre_restore_backup_id": "the snapshot taken first: its id is a number, as every snapshot_id"},
    ),
    "GET /cloud-integration/backup/schedules": Row(needs=("console_schedule",)),
    "POST /cloud-integration/backup/schedules/update": Row(),
    "POST /cloud-integration/backup/schedules/toggle": Row(),
    "POST /cloud-integration/backup/recovery/initiate": Row(),
    "GET /cloud-integration/backup/recovery/preview/{backup_id}": Row(),
    "POST /cloud-integration/backup/import": Row(files={"file": "tar_gz"}),
    "POST /cloud-integration/backup/import/validate": Row(
        files={"file": "tar_gz"},
        nullable={"validation.gateway_id": "a plain archive names no application (our own artifacts give theirs)"},
    ),
    "GET /cloud-integration/backup/export/config": Row(
        absent={f"modules.{m}": GATEWAY for m in ("acs", "zoning", "network")}
    ),
    "GET /cloud-integration/backup/storage": Row(),
    "POST /cloud-integration/backup/storage/update": Row(),
    "POST /cloud-integration/backup/storage/sync": Row(),
    "POST /cloud-integration/backup/cleanup": Row(needs=("console_schedule",)),
    "POST /cloud-integration/backup/cleanup/execute": Row(),
    "GET /cloud-integration/backup/progress/{job_id}": Row(ids={"job_id": "console_job"}),
    "GET /cloud-integration/backup/restore/progress/{restore_id}": Row(),
    "POST /cloud-integration/backup/operation/cancel": Row(),
    "GET /cloud-integration/backup/statistics": Row(),
    "GET /cloud-integration/backup/report/generate": Row(),
    "WS /ws/backup/updates": Row(retyped={"backup_progress.backup_id": SAME_ID}),
    "WS /ws/backup/notifications": Row(retyped={"backup_completed.backup_id": SAME_ID}),
    "WS /ws/backup/health": Row(),
}


def test_every_example_has_a_row():
    assert not table_problems(DOCUMENT, EXAMPLES, TABLE), "\n".join(table_problems(DOCUMENT, EXAMPLES, TABLE))


@pytest.mark.parametrize(
    "example", parametrize("test_system_backup_recovery::test_example", DOCUMENT, EXAMPLES, TABLE, http=True)
)
def test_example(example, world):
    run_http(example, TABLE, world, APIClient(), defaults=DEFAULT_IDS)


# The WebSocket examples run in test_websocket_examples.py (their events go out after commit).
