"""Every example of workspace-backup-api.md, sent as written (ids replaced by real objects)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from . import docs
from .harness import Row, parametrize, run_http, table_problems

DOCUMENT = "workspace-backup-api.md"
EXAMPLES = docs.examples(DOCUMENT)

DEFAULT_IDS = {
    "wsId": "ws",
    "storageId": "storage",
    "appId": "app",
    "backupId": "app_backup",
    "restoreId": "restore",
    "storage_id": "storage",
    "target_application": "app2",
}
# How this API writes each kind of id ("storage-123", "app-456"; the workspace is its slug).
PREFIXES = {
    "storage": "storage",
    "storage2": "storage",
    "app": "app",
    "app2": "app",
    "app_backup": "backup",
    "restore": "restore",
}


def id_form(kind: str, value):
    return f"{PREFIXES[kind]}-{value}" if kind in PREFIXES else value


# The document describes Kubernetes applications; ours are databases and folders. Its
# Kubernetes-only keys have no counterpart here (README, "What is served").
K8S = "a Kubernetes resource count; our applications hold databases and folders (README)"
PASSED = "the document's keep_until (2024-12-31) has passed, and a past one is refused"

# Made once for the module (conftest.py ``module_world``).
PRECREATE = ("storage", "app", "app2", "policy", "app_backup", "verification", "restore")

TABLE: dict[str, Row] = {
    "POST /api/v1/workspaces/:wsId/backup-storages": Row(status=201),
    "GET /api/v1/workspaces/:wsId/backup-storages": Row(needs=("app_backup",)),
    "GET /api/v1/workspaces/:wsId/backup-storages/:storageId": Row(needs=("app_backup",)),
    "PUT /api/v1/workspaces/:wsId/backup-storages/:storageId": Row(),
    "DELETE /api/v1/workspaces/:wsId/backup-storages/:storageId": Row(ids={"storageId": "storage2"}),
    "GET /api/v1/workspaces/:wsId/backup-storages/:storageId/usage": Row(needs=("app_backup",)),
    "POST /api/v1/workspaces/:wsId/applications/:appId/backup-policy": Row(status=201, ids={"appId": "app2"}),
    "GET /api/v1/workspaces/:wsId/applications/:appId/backup-policy": Row(needs=("policy", "app_backup")),
    "PUT /api/v1/workspaces/:wsId/applications/:appId/backup-policy": Row(needs=("policy",)),
    "DELETE /api/v1/workspaces/:wsId/applications/:appId/backup-policy": Row(needs=("policy",)),
    "POST /api/v1/workspaces/:wsId/applications/:appId/backups/trigger": Row(
        status=202, needs=("app_backup",), future_dates=PASSED
    ),
    "GET /api/v1/workspaces/:wsId/applications/:appId/backups": Row(needs=("app_backup",)),
    "GET /api/v1/workspaces/:wsId/applications/:appId/backups/latest": Row(
        needs=("app_backup",), absent={f"data.manifest.{k}": K8S for k in ("volumes", "configmaps", "secrets", "pvcs")}
    ),
    "GET /api/v1/workspaces/:wsId/applications/:appId/backups/:backupId": Row(
        absent={f"data.manifest.{k}": K8S for k in ("volumes", "configmaps", "secrets", "pvcs", "included_namespaces")},
        needs=("verification",),
    ),
    "GET /api/v1/workspaces/:wsId/applications/:appId/backups/:backupId/manifest": Row(
        absent={
            **{f"data.resources.{k}": K8S for k in ("deployments", "services", "persistent_volumes", "configmaps")},
            "data.metadata.kubernetes_version": K8S,
        }
    ),
    "GET /api/v1/workspaces/:wsId/applications/:appId/backups/:backupId/download": Row(),
    "POST /api/v1/workspaces/:wsId/applications/:appId/backups/:backupId/restore": Row(status=202),
    "GET /api/v1/workspaces/:wsId/applications/:appId/restores": Row(
        needs=("restore",),
        absent={
            f"data[].restored_resources.{k}": K8S
            for k in ("deployments", "services", "persistent_volumes", "configmaps")
        },
    ),
    "GET /api/v1/workspaces/:wsId/applications/:appId/restores/:restoreId": Row(
        absent={f"data.restored_resources.{k}": K8S for k in ("deployments", "services", "persistent_volumes")}
    ),
    "GET /api/v1/workspaces/:wsId/backup-storage-usage": Row(needs=("app_backup",)),
}


def test_every_example_has_a_row():
    assert not table_problems(DOCUMENT, EXAMPLES, TABLE), "\n".join(table_problems(DOCUMENT, EXAMPLES, TABLE))


@pytest.mark.parametrize(
    "example", parametrize("test_workspace_backup_api::test_example", DOCUMENT, EXAMPLES, TABLE, http=True)
)
def test_example(example, world):
    run_http(example, TABLE, world, APIClient(), defaults=DEFAULT_IDS, id_form=id_form)
