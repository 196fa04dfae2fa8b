"""Operations: claiming, finishing, cancelling and reaping long work.

Status moves ``pending -> running -> completed | failed | cancelled``. A task claims its
operation with a conditional update (idempotent under redelivery: ``acks_late``); a crashed
worker leaves a ``running`` row whose heartbeat stops, which ``operation_reap`` fails.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import emit, publish
from backupplatform.errors import Conflict, NotFound
from tenants.models import Tenant, TenantScope

from ..models import Backup, BackupStatus, Operation, OperationKind, OperationStatus

logger = logging.getLogger(__name__)

ACTIVE = (OperationStatus.PENDING, OperationStatus.RUNNING)


def operation_create(*, tenant: Tenant, kind: str, actor: Any = None, backup: Backup | None = None,
                     step: str = "queued", details: dict | None = None) -> Operation:
    return Operation.objects.create(
        tenant=tenant, kind=kind, backup=backup, step=step, details=details or {},
        celery_task_id=str(uuid.uuid4()),
        created_by=actor if getattr(actor, "pk", None) else None,
    )


def operation_claim(*, operation_id: int) -> Operation | None:
    """Move a pending operation to running; ``None`` if someone else has it (or it ended)."""
    now = timezone.now()
    claimed = Operation.objects.filter(pk=operation_id, status=OperationStatus.PENDING).update(
        status=OperationStatus.RUNNING, started_at=now, heartbeat_at=now, step="starting")
    if claimed != 1:
        return None
    return Operation.objects.select_related("tenant", "backup").get(pk=operation_id)


def operation_finish(*, op: Operation, status: str, error: str = "", details: dict | None = None,
                     step: str | None = None) -> Operation:
    op.status = status
    op.finished_at = timezone.now()
    op.error_message = error[:5000]
    if status == OperationStatus.COMPLETED:
        op.progress = 100
    if step is not None:
        op.step = step
    if details:
        op.details = {**op.details, **details}
    if error:
        op.errors = op.errors + 1
    Operation.objects.filter(pk=op.pk).update(
        status=op.status, finished_at=op.finished_at, error_message=op.error_message, progress=op.progress,
        step=op.step, details=op.details, errors=op.errors, heartbeat_at=op.finished_at)
    from ..progress import progress_event

    publish(tenant_id=op.tenant_id, event=progress_event(op))
    return op


@transaction.atomic
def operation_cancel(*, tenant: TenantScope, public_id: str, reason: str = "") -> Operation:
    """Ask a running operation to stop (checked between chunks); a pending one stops at once."""
    op = Operation.objects.select_for_update().for_tenant(tenant).filter(public_id=public_id).first()
    if op is None:
        raise NotFound("Operation not found", code="OPERATION_NOT_FOUND")
    if op.status not in ACTIVE:
        raise Conflict(f"The operation has already ended ({op.status})", code="OPERATION_NOT_RUNNING")
    op.cancel_requested = True
    fields = ["cancel_requested"]
    if op.status == OperationStatus.PENDING:
        op.status = OperationStatus.CANCELLED
        op.finished_at = timezone.now()
        op.step = "cancelled"
        fields += ["status", "finished_at", "step"]
        if op.backup_id and op.kind == OperationKind.BACKUP:
            Backup.objects.filter(pk=op.backup_id, status__in=[BackupStatus.PENDING]).update(
                status=BackupStatus.CANCELLED, error_message="Cancelled before it started")
    op.save(update_fields=fields)
    emit(action=f"{op.kind}_cancel", tenant=op.tenant, resource_type="operation", resource_id=op.public_id,
         details={"reason": reason, "status": op.status})
    return op


def operation_stop(*, tenant: TenantScope, public_id: str, reason: str = "", wait: float = 0.0,
                   poll: float = 0.2) -> Operation:
    """Cancel an operation and wait up to ``wait`` seconds for its worker to stop it and
    remove its partial data (the pipeline checks the flag between chunks). Returns the
    operation as it is then: ``cancelled`` (or another end), or still running when the
    worker has not reached its next check. A pending operation stops at once, and its
    restore or verification row says so too."""
    import time

    from ..models import Restore, Verification

    op = operation_cancel(tenant=tenant, public_id=public_id, reason=reason)
    if op.status == OperationStatus.CANCELLED:
        for model in (Restore, Verification):
            model.objects.filter(operation=op, status=OperationStatus.PENDING).update(
                status=OperationStatus.CANCELLED, completed_at=op.finished_at)
    deadline = time.monotonic() + max(0.0, wait)
    while op.status in ACTIVE and time.monotonic() < deadline:
        time.sleep(poll)
        op.refresh_from_db(fields=["status", "step", "finished_at", "progress", "error_message"])
    return op


def heartbeat_timeout() -> timedelta:
    return timedelta(seconds=getattr(settings, "OPERATION_HEARTBEAT_TIMEOUT", 120))


def operation_reap(*, now=None) -> list[str]:
    """Fail operations whose worker died (no heartbeat), deleting their partial artifacts."""
    from .backups import backup_discard_artifact

    now = now or timezone.now()
    stale = Operation.objects.filter(status=OperationStatus.RUNNING, heartbeat_at__lt=now - heartbeat_timeout())
    reaped = []
    for op in stale.select_related("backup", "tenant"):
        with transaction.atomic():
            locked = Operation.objects.select_for_update().filter(pk=op.pk, status=OperationStatus.RUNNING).first()
            if locked is None:
                continue
            message = "The worker running this operation stopped responding; partial data was removed"
            operation_finish(op=locked, status=OperationStatus.FAILED, error=message, step="failed")
            backup = locked.backup
            if locked.kind == OperationKind.BACKUP and backup is not None and backup.status != BackupStatus.COMPLETED:
                backup_discard_artifact(backup=backup)
                Backup.objects.filter(pk=backup.pk).update(status=BackupStatus.FAILED, error_message=message,
                                                           completed_at=now)
            emit(action=f"{locked.kind}_reaped", tenant=locked.tenant, resource_type="operation",
                 resource_id=locked.public_id, details={"heartbeat_at": op.heartbeat_at})
            reaped.append(locked.public_id)
    if reaped:
        logger.warning("reaped %d operation(s) whose worker died: %s", len(reaped), ", ".join(reaped))
    return reaped
