"""Progress bodies of the console's snapshot, recovery, import and sync operations, in the
shape of system-backup-recovery.rst "Progress Monitoring" (``restore/progress``)."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from backupplatform.errors import NotFound
from backupplatform.facades.scheduling import iso
from backups import backup_selectors
from backups.progress import format_eta
from backups.services.copies import human_bytes

RESTORE_PROGRESS_PREFIX = "/cloud-integration/backup/restore/progress/"


def operation_or_404(request_tenant, public_id: str, kind: str, what: str):
    op = backup_selectors.operation_get(tenant=request_tenant, public_id=public_id, kinds=(kind,))
    if op is None:
        raise NotFound(f"{what} not found", code="NOT_FOUND", details={"id": public_id})
    return op


def _elapsed(op) -> str | None:
    if op.started_at is None:
        return None
    from django.utils import timezone

    end = op.finished_at or timezone.now()
    return format_eta(int((end - op.started_at).total_seconds()))


def progress_body(op, *, id_field: str, operation: str, details: dict | None = None) -> dict:
    return {
        id_field: op.public_id,
        "operation": operation,
        "status": op.status,
        "progress": op.progress,
        "current_step": op.step,
        "current_component": op.component,
        "details": {
            "data_processed": human_bytes(op.bytes_done),
            "data_total": human_bytes(op.bytes_total) if op.bytes_total else None,
            "speed": f"{human_bytes(op.throughput_bps)}/s" if op.throughput_bps else None,
            "eta": format_eta(op.eta_seconds),
            "elapsed": _elapsed(op),
            **(details or {}),
        },
        "errors": op.errors,
        "warnings": op.warnings,
        "error_message": op.error_message or None,
        "started_at": iso(op.started_at),
        "finished_at": iso(op.finished_at),
    }


_ts = {"allow_null": True, "help_text": "ISO 8601 UTC"}


def progress_shape(name: str, id_field: str, details: dict) -> serializers.Serializer:
    return inline_serializer(
        name,
        {
            id_field: serializers.CharField(),
            "operation": serializers.CharField(),
            "status": serializers.CharField(),
            "progress": serializers.IntegerField(),
            "current_step": serializers.CharField(),
            "current_component": serializers.CharField(),
            "details": inline_serializer(
                f"{name}Details",
                {
                    "data_processed": serializers.CharField(),
                    "data_total": serializers.CharField(allow_null=True),
                    "speed": serializers.CharField(allow_null=True),
                    "eta": serializers.CharField(allow_null=True),
                    "elapsed": serializers.CharField(allow_null=True),
                    **details,
                },
            ),
            "errors": serializers.IntegerField(),
            "warnings": serializers.IntegerField(),
            "error_message": serializers.CharField(allow_null=True),
            "started_at": serializers.CharField(**_ts),
            "finished_at": serializers.CharField(**_ts),
        },
    )
