"""Configuration snapshots (system-backup-recovery.rst "Snapshot Management").

A snapshot is a named, tagged copy of the tenant's configuration (``services.config``),
stored as a BPAF artifact (zstd, AES-256-GCM with the tenant's data key) in the snapshot
row; credentials inside it are sealed with the platform's field key as well. Restoring
applies the chosen components back in one transaction (all or nothing), in an ``Operation``
of kind ``restore`` (``details.source = "snapshot"``), optionally after taking a snapshot of
the current configuration first.
"""

from __future__ import annotations

import hashlib
import io
import logging
from typing import Any

from django.db import transaction

from audit.services import emit, stored_user
from backupplatform.errors import NotFound, ValidationFailed
from tenants.models import Tenant

from ..engines.base import EngineError
from ..engines.config import config_bytes, config_restore
from ..keys import key_for_id, tenant_data_key
from ..models import Operation, OperationKind, OperationStatus, Snapshot
from ..pipeline import ArtifactError, backup_stream, restore_stream
from . import operations
from .backups import _queue
from .config import COMPONENTS, config_components, platform_config_apply, platform_config_export

logger = logging.getLogger(__name__)


def _seal(tenant: Tenant, document: dict) -> tuple[bytes, str, str]:
    key_id, key = tenant_data_key(tenant)
    out = io.BytesIO()
    result = backup_stream(config_bytes(document), out, data_key=key, key_id=key_id, compression="zstd", zstd_threads=0)
    return out.getvalue(), result.sha256, key_id


def _summary(document: dict) -> dict:
    modules = document.get("modules", {})
    return {name: len(value) if isinstance(value, list) else 1 for name, value in modules.items()}


@transaction.atomic
def snapshot_save(
    *,
    tenant: Tenant,
    document: dict,
    name: str,
    actor: Any = None,
    description: str = "",
    tags: list[str] | None = None,
    trigger: str = "manual",
) -> Snapshot:
    """Store ``document`` (a configuration export) as an encrypted snapshot."""
    components = config_components(document)
    artifact, checksum, key_id = _seal(tenant, document)
    snapshot = Snapshot.objects.create(
        tenant=tenant,
        name=name,
        description=description,
        tags=list(tags or []),
        components=components,
        data={"counts": _summary(document)},
        size_bytes=len(artifact),
        artifact=artifact,
        checksum=checksum,
        key_id=key_id,
        trigger=trigger,
        created_by=stored_user(actor),
    )
    emit(
        action="snapshot_create",
        tenant=tenant,
        resource_type="snapshot",
        resource_id=snapshot.pk,
        details={"name": name, "components": components, "trigger": trigger, "size_bytes": len(artifact)},
    )
    return snapshot


def snapshot_create(
    *,
    tenant: Tenant,
    name: str,
    actor: Any = None,
    description: str = "",
    tags: list[str] | None = None,
    components: list[str] | None = None,
    trigger: str = "manual",
) -> Snapshot:
    """Snapshot the current configuration (``components``, default all)."""
    unknown = sorted(set(components or []) - set(COMPONENTS))
    if unknown:
        raise ValidationFailed(
            details={"components": [f"Unknown components: {', '.join(unknown)}; use {', '.join(COMPONENTS)}."]}
        )
    document = platform_config_export(
        tenant=tenant,
        components=components,
        secrets="sealed",
        metadata={"snapshot": name, "created_by": getattr(actor, "username", "")},
    )
    return snapshot_save(
        tenant=tenant, document=document, name=name, actor=actor, description=description, tags=tags, trigger=trigger
    )


def snapshot_document(*, snapshot: Snapshot) -> dict:
    """The snapshot's configuration, decrypted and authenticated."""
    data = bytes(snapshot.artifact or b"")
    if not data or hashlib.sha256(data).hexdigest() != snapshot.checksum:
        raise ValidationFailed("The snapshot's content is damaged (checksum mismatch)", code="ENCRYPTION_ERROR")
    try:
        key = key_for_id(snapshot.tenant, snapshot.key_id)
        return config_restore(b"".join(restore_stream(io.BytesIO(data), key)))
    except (ArtifactError, EngineError) as exc:
        raise ValidationFailed(f"The snapshot cannot be decrypted: {exc}", code="ENCRYPTION_ERROR") from None


def snapshot_get(*, tenant: Tenant, snapshot_id: int) -> Snapshot:
    snapshot = Snapshot.objects.filter(tenant=tenant, pk=snapshot_id).first()
    if snapshot is None:
        raise NotFound("Snapshot not found", code="SNAPSHOT_NOT_FOUND", details={"snapshot_id": snapshot_id})
    return snapshot


@transaction.atomic
def snapshot_restore_start(
    *,
    tenant: Tenant,
    snapshot: Snapshot,
    components: list[str] | None = None,
    create_backup: bool = False,
    reason: str = "",
    actor: Any = None,
    queue: bool = True,
) -> Operation:
    """Queue applying ``components`` (default: all of the snapshot's) back. With
    ``create_backup`` the current configuration is snapshotted first (its id is in the
    operation's ``details.pre_restore_snapshot_id``)."""
    if snapshot.tenant_id != tenant.pk:
        raise NotFound("Snapshot not found", code="SNAPSHOT_NOT_FOUND")
    chosen = list(components or snapshot.components)
    missing = sorted(set(chosen) - set(snapshot.components))
    if missing:
        raise ValidationFailed(
            details={
                "components": [
                    f"Not in this snapshot: {', '.join(missing)}; it holds {', '.join(snapshot.components) or 'nothing'}."
                ]
            }
        )
    pre = None
    if create_backup:
        pre = snapshot_create(
            tenant=tenant,
            actor=actor,
            name=f"pre_restore_{snapshot.name}"[:200],
            description=f"Taken before restoring snapshot {snapshot.pk}",
            tags=["pre-restore"],
            trigger="pre_restore",
        )
    op = operations.operation_create(
        tenant=tenant,
        kind=OperationKind.RESTORE,
        actor=actor,
        details={
            "source": "snapshot",
            "snapshot_id": snapshot.pk,
            "snapshot_name": snapshot.name,
            "components": chosen,
            "pre_restore_snapshot_id": pre.pk if pre else None,
            "reason": reason,
        },
    )
    emit(
        action="snapshot_restore",
        tenant=tenant,
        resource_type="snapshot",
        resource_id=snapshot.pk,
        details={
            "components": chosen,
            "operation_id": op.public_id,
            "reason": reason,
            "pre_restore_snapshot_id": pre.pk if pre else None,
        },
    )
    if queue:
        _queue("backups.tasks.run_snapshot_restore", op)
    return op


def snapshot_restore_run(*, operation_id: int) -> Operation | None:
    """Apply the snapshot; any failure leaves the configuration as it was."""
    op = operations.operation_claim(operation_id=operation_id)
    if op is None:
        return None
    details = dict(op.details)
    try:
        snapshot = Snapshot.objects.select_related("tenant").get(pk=details["snapshot_id"], tenant_id=op.tenant_id)
        Operation.objects.filter(pk=op.pk).update(step="restoring_config", progress=10)
        document = snapshot_document(snapshot=snapshot)
        result = platform_config_apply(tenant=op.tenant, document=document, components=details["components"])
    except Exception as exc:  # reported on the operation; the transaction left nothing half-applied
        message = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
        if getattr(exc, "details", None):
            message = f"{message}: {exc.details}"
        logger.warning("snapshot restore %s failed: %s", op.public_id, message)
        op = operations.operation_finish(
            op=op,
            status=OperationStatus.FAILED,
            error=message[:2000],
            step="failed",
            details={"result": {"applied": False}},
        )
        emit(
            action="snapshot_restore_failed",
            tenant=op.tenant,
            resource_type="operation",
            resource_id=op.public_id,
            details={"error": message[:500]},
        )
        return op
    op = operations.operation_finish(
        op=op, status=OperationStatus.COMPLETED, step="completed", details={"result": {"applied": True, **result}}
    )
    emit(
        action="snapshot_restore_completed",
        tenant=op.tenant,
        resource_type="operation",
        resource_id=op.public_id,
        details={"components": result["components"]},
    )
    return op
