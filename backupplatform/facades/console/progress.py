"""system-backup-recovery.rst "Progress Monitoring": backup and restore progress, and
cancelling any running operation.

Progress is the ``Operation`` row the engines write (at most every 0.4 s): percent (which
only grows), step, bytes done and expected, throughput and ETA. A restore is found by the
operation's id (console recoveries, WebSocket events) or by the ``restore_id`` number that
``POST /api/v1/backups/{id}/restore`` answers.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

from backupplatform import humanize
from backupplatform.errors import NotFound
from backupplatform.facades.base import respond
from backupplatform.facades.serializers import InputSerializer, StrictCharField, validated
from backupplatform.isotime import utc_iso as iso
from backups import backup_selectors as selectors
from backups.models import Operation, OperationKind, OperationStatus
from backups.services.operations import operation_stop
from tenants.models import Role

from .conventions import ConsoleView

#: The seed's ``operation`` names.
OPERATION_NAMES = {
    OperationKind.BACKUP: "backup_create",
    OperationKind.RESTORE: "restore",
    OperationKind.RECOVERY: "recovery",
    OperationKind.VERIFY: "verify",
    OperationKind.IMPORT: "import",
    OperationKind.SYNC: "storage_sync",
    OperationKind.CLEANUP: "cleanup",
}
#: Where each kind's progress is read (the routes of both parts of the console).
PROGRESS_ROUTES = {
    OperationKind.BACKUP: ("console-progress", "job_id"),
    OperationKind.RESTORE: ("console-restore-progress", "restore_id"),
    OperationKind.RECOVERY: ("console-restore-progress", "restore_id"),
    OperationKind.CLEANUP: ("console-cleanup-progress", "cleanup_id"),
}


def progress_url(op: Operation) -> str | None:
    route = PROGRESS_ROUTES.get(op.kind)
    return reverse(route[0], kwargs={route[1]: op.public_id}) if route else None


def elapsed_seconds(op: Operation) -> int | None:
    if op.started_at is None:
        return None
    return max(0, int(((op.finished_at or timezone.now()) - op.started_at).total_seconds()))


def eta_seconds(op: Operation) -> int | None:
    if op.status in (OperationStatus.COMPLETED, OperationStatus.FAILED, OperationStatus.CANCELLED):
        return 0 if op.status == OperationStatus.COMPLETED else None
    return op.eta_seconds


def byte_figures(op: Operation, *, processed: str = "processed", total: str = "total") -> dict:
    """Bytes done and expected, throughput, ETA and elapsed time, each human and exact."""
    elapsed, eta = elapsed_seconds(op), eta_seconds(op)
    return {
        processed: humanize.size(op.bytes_done),
        f"{processed}_bytes": op.bytes_done,
        total: humanize.size(op.bytes_total),
        f"{total}_bytes": op.bytes_total,
        "speed": humanize.rate(op.throughput_bps),
        "speed_bytes_per_second": op.throughput_bps,
        "eta": humanize.clock(eta),
        "eta_seconds": eta,
        "elapsed": humanize.clock(elapsed),
        "elapsed_seconds": elapsed,
    }


def backup_progress_body(op: Operation) -> dict:
    return {
        "job_id": op.public_id,
        "operation": OPERATION_NAMES.get(op.kind, op.kind),
        "status": op.status,
        "progress": op.progress,
        "current_step": op.step,
        "current_component": op.component or None,
        "backup_id": op.backup_id,
        "details": byte_figures(op),
        "errors": op.errors,
        "warnings": op.warnings,
        "error_message": op.error_message or None,
        "started_at": iso(op.started_at),
        "finished_at": iso(op.finished_at),
    }


def integrity_check(op: Operation) -> str:
    """Every chunk of the artifact is authenticated while it streams back: ``passed`` once
    the restore completed, ``pending`` before, ``incomplete`` if it stopped first."""
    if op.status == OperationStatus.COMPLETED:
        return "passed"
    return "pending" if op.status in (OperationStatus.PENDING, OperationStatus.RUNNING) else "incomplete"


def restore_progress_body(op: Operation, restore_id: str) -> dict:
    restore = getattr(op, "restore", None)
    files_processed, files_total = selectors.restore_file_counts(restore) if restore is not None else (None, None)
    return {
        "restore_id": restore_id,
        "job_id": op.public_id,
        "platform_restore_id": restore.pk if restore is not None else None,
        "operation": OPERATION_NAMES.get(op.kind, op.kind),
        "status": op.status,
        "progress": op.progress,
        "current_step": op.step,
        "current_component": op.component or None,
        "backup_id": op.backup_id,
        # Folders count files (known when the folder is restored); a database restore has none.
        "details": {
            "files_processed": files_processed,
            "files_total": files_total,
            **byte_figures(op, processed="data_processed", total="data_total"),
        },
        "integrity_check": integrity_check(op),
        "restart_required": False,  # the platform restores databases and folders; nothing restarts
        "errors": op.errors,
        "warnings": op.warnings,
        "error_message": op.error_message or None,
        "started_at": iso(op.started_at),
        "finished_at": iso(op.finished_at),
    }


# --- schema -----------------------------------------------------------------------------------

_n = {"allow_null": True}


def _figures(name: str, processed: str, total: str, extra: dict | None = None):
    return inline_serializer(
        name,
        {
            **(extra or {}),
            processed: serializers.CharField(**_n, help_text='e.g. "143 MB"'),
            f"{processed}_bytes": serializers.IntegerField(),
            total: serializers.CharField(**_n),
            f"{total}_bytes": serializers.IntegerField(**_n),
            "speed": serializers.CharField(**_n, help_text='e.g. "15 MB/s"'),
            "speed_bytes_per_second": serializers.IntegerField(**_n),
            "eta": serializers.CharField(**_n, help_text='"00:01:30"'),
            "eta_seconds": serializers.IntegerField(**_n),
            "elapsed": serializers.CharField(**_n),
            "elapsed_seconds": serializers.IntegerField(**_n),
        },
    )


_common = {
    "status": serializers.CharField(help_text="one of: " + ", ".join(OperationStatus.values)),
    "progress": serializers.IntegerField(),
    "current_step": serializers.CharField(),
    "current_component": serializers.CharField(**_n),
    "backup_id": serializers.IntegerField(**_n),
    "errors": serializers.IntegerField(),
    "warnings": serializers.IntegerField(),
    "error_message": serializers.CharField(**_n),
    "started_at": serializers.CharField(**_n),
    "finished_at": serializers.CharField(**_n),
}
BackupProgressShape = inline_serializer(
    "ConsoleBackupProgress",
    {
        "job_id": serializers.CharField(),
        "operation": serializers.CharField(),
        **_common,
        "details": _figures("ConsoleBackupProgressDetails", "processed", "total"),
    },
)
RestoreProgressShape = inline_serializer(
    "ConsoleRestoreProgress",
    {
        "restore_id": serializers.CharField(),
        "job_id": serializers.CharField(),
        "platform_restore_id": serializers.IntegerField(**_n),
        "operation": serializers.CharField(),
        **_common,
        "details": _figures(
            "ConsoleRestoreProgressDetails",
            "data_processed",
            "data_total",
            {"files_processed": serializers.IntegerField(**_n), "files_total": serializers.IntegerField(**_n)},
        ),
        "integrity_check": serializers.CharField(help_text="one of: " + ", ".join(["pending", "passed", "incomplete"])),
        "restart_required": serializers.BooleanField(),
    },
)


class BackupProgressView(ConsoleView):
    """A backup's progress (viewers)."""

    roles = {"GET": Role.VIEWER}

    @extend_schema(operation_id="console_backup_progress", responses={200: BackupProgressShape})
    def get(self, request, job_id=None):
        op = selectors.operation_get(tenant=self.require_tenant(), public_id=job_id, kinds=(OperationKind.BACKUP,))
        if op is None:
            raise NotFound("No backup job with this id", code="BACKUP_NOT_FOUND", details={"job_id": job_id[:64]})
        return respond(backup_progress_body(op))


class RestoreProgressView(ConsoleView):
    """A restore's or recovery's progress (viewers), by operation id or platform restore id."""

    roles = {"GET": Role.VIEWER}

    @extend_schema(operation_id="console_restore_progress", responses={200: RestoreProgressShape})
    def get(self, request, restore_id=None):
        op = selectors.restore_operation_get(tenant=self.require_tenant(), restore_id=restore_id)
        if op is None:
            raise NotFound("No restore with this id", code="RESTORE_NOT_FOUND", details={"restore_id": restore_id[:64]})
        return respond(restore_progress_body(op, restore_id))


class ConsoleCancelSerializer(InputSerializer):
    job_id = StrictCharField(max_length=64, help_text="an operation's id (job_id, restore_id, sync_id, ...)")
    reason = StrictCharField(required=False, allow_blank=True, max_length=500)


CancelledShape = inline_serializer(
    "ConsoleOperationCancelled",
    {
        "status": serializers.CharField(
            help_text="cancelled; cancelling (the worker stops at its next check: follow "
            "progress_url); or completed/failed when it ended first"
        ),
        "job_id": serializers.CharField(),
        "operation": serializers.CharField(),
        "partial_data_cleaned": serializers.BooleanField(),
        "can_restart": serializers.BooleanField(),
        "message": serializers.CharField(),
        "progress_url": serializers.CharField(**_n),
    },
)


def cancel_wait_seconds() -> float:
    """How long ``operation/cancel`` waits for the worker to stop (``CONSOLE_CANCEL_WAIT``)."""
    return float(getattr(settings, "CONSOLE_CANCEL_WAIT", 5.0))


class CancelView(ConsoleView):
    """Cancel a running or queued operation (operators). Partial data is removed by the
    worker; the answer waits a few seconds for it to say so."""

    roles = {"POST": Role.OPERATOR}

    @extend_schema(
        operation_id="console_operation_cancel", request=ConsoleCancelSerializer, responses={200: CancelledShape}
    )
    def post(self, request):
        tenant = self.require_tenant()
        data = validated(ConsoleCancelSerializer, request.data)
        found = selectors.operation_get(tenant=tenant, public_id=data["job_id"]) or selectors.restore_operation_get(
            tenant=tenant, restore_id=data["job_id"]
        )
        if found is None:
            raise NotFound("No operation with this id", code="OPERATION_NOT_FOUND", details={"job_id": data["job_id"]})
        op = operation_stop(
            tenant=tenant, public_id=found.public_id, reason=data.get("reason", ""), wait=cancel_wait_seconds()
        )
        done = op.status == OperationStatus.CANCELLED
        # A restore of folders keeps the files it already wrote (listed in its result); a
        # database restore drops its staging copy; a backup removes its partial artifact.
        files_kept = op.kind in (OperationKind.RESTORE, OperationKind.RECOVERY) and not (
            op.backup is not None and op.backup.server_id
        )
        return respond(
            {
                "status": "cancelled"
                if done
                else "cancelling"
                if op.status in (OperationStatus.PENDING, OperationStatus.RUNNING)
                else op.status,
                "job_id": op.public_id,
                "operation": OPERATION_NAMES.get(op.kind, op.kind),
                "partial_data_cleaned": done and not files_kept,
                # A cleanup spent its plan: a new analysis starts it again.
                "can_restart": op.kind != OperationKind.CLEANUP,
                "message": "Operation cancelled"
                if done
                else (
                    "Cancelling: the worker stops at its next check"
                    if op.status in (OperationStatus.PENDING, OperationStatus.RUNNING)
                    else f"The operation ended first ({op.status})"
                ),
                "progress_url": progress_url(op),
            }
        )
