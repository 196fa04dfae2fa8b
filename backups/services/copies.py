"""Copies of a backup in several storages: sync, replication, per-location removal, quotas.

system-backup-recovery.rst "Storage Management" ("Sync to Cloud", ``policies``). A backup's
artifact can live in several storages; each copy is a ``BackupCopy`` row (the primary one
included: ``Backup.storage``/``storage_path`` point at it). Copies are made by streaming the
stored artifact from one backend's reader into another's writer (constant memory), hashing
on the way; ``verify`` re-reads the new copy and compares the SHA-256 with the backup's.

Removing one location's copy leaves the others; when the primary goes, another copy becomes
primary; the backup row goes with its last copy. Quotas: a write that would take a storage
past ``quota_bytes`` fails with ``STORAGE_FULL`` (before writing when the size is known, else
as bytes are written), and crossing ``cleanup_threshold`` percent raises ``storage_alert``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Sum
from django.urls import reverse
from django.utils import timezone

from audit.services import emit, publish
from backupplatform.errors import Conflict, NotFound, StorageFull, ValidationFailed
from tenants.models import Tenant

from ..models import (
    Backup,
    BackupCopy,
    BackupStatus,
    CopyStatus,
    Operation,
    OperationKind,
    OperationStatus,
    Storage,
    StoragePolicy,
)
from ..progress import ProgressReporter
from ..storage import StorageError, StorageNotFound
from . import operations
from .backups import _queue, backup_delete, storage_backend

logger = logging.getLogger(__name__)

READ_SIZE = 1 << 20


def human_bytes(value: int | None) -> str:
    size = float(value or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") or size >= 100 else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


# --- reads ---------------------------------------------------------------------------------


def storage_used_bytes(*, storage: Storage) -> int:
    """Bytes of the artifacts really held by ``storage``: its available copies, plus the
    completed backups stored there that have no copy row (rows written before copies)."""
    copies = (
        BackupCopy.objects.filter(storage=storage, status=CopyStatus.AVAILABLE).aggregate(s=Sum("size_bytes"))["s"] or 0
    )
    uncopied = (
        Backup.objects.filter(storage=storage, status=BackupStatus.COMPLETED)
        .exclude(Exists(BackupCopy.objects.filter(backup=OuterRef("pk"), storage=storage)))
        .aggregate(s=Sum("stored_bytes"))["s"]
        or 0
    )
    return int(copies) + int(uncopied)


def storage_policy_get(*, tenant: Tenant) -> StoragePolicy:
    policy = StoragePolicy.objects.filter(tenant=tenant).select_related("replication_target").first()
    return policy or StoragePolicy(tenant=tenant)


# --- quotas and alerts -------------------------------------------------------------------------


def quota_check(*, storage: Storage, incoming: int, what: str = "") -> None:
    """Raise ``StorageFull`` when ``incoming`` more bytes would take ``storage`` past its quota."""
    if not storage.quota_bytes:
        return
    used = storage_used_bytes(storage=storage)
    if used + max(0, incoming) > storage.quota_bytes:
        raise StorageFull(
            f"Storage '{storage.name}' has {human_bytes(max(0, storage.quota_bytes - used))} left of its "
            f"{human_bytes(storage.quota_bytes)} quota; {what or 'this'} needs {human_bytes(incoming)}",
            details={
                "storage": storage.name,
                "quota_bytes": storage.quota_bytes,
                "used_bytes": used,
                "needed_bytes": incoming,
            },
        )


class QuotaWriter:
    """A storage writer that refuses to grow past the storage's remaining quota (for sources
    whose size is unknown until they end: folders, imports)."""

    def __init__(self, writer, *, storage: Storage):
        self.writer = writer
        self.storage = storage
        self.limit = None
        if storage.quota_bytes:
            self.limit = max(0, storage.quota_bytes - storage_used_bytes(storage=storage))
        self.written = 0

    def write(self, data) -> int:
        self.written += len(data)
        if self.limit is not None and self.written > self.limit:
            raise StorageFull(
                f"Storage '{self.storage.name}' quota exceeded while writing "
                f"({human_bytes(self.storage.quota_bytes)} quota)",
                details={"storage": self.storage.name, "quota_bytes": self.storage.quota_bytes},
            )
        return self.writer.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.writer, name)


def threshold_check(*, storage: Storage, added: int) -> bool:
    """Raise ``storage_alert`` when the last ``added`` bytes took ``storage`` across its
    ``cleanup_threshold`` percent of the quota. Returns whether an alert went out."""
    if not storage.quota_bytes or not storage.cleanup_threshold:
        return False
    used = storage_used_bytes(storage=storage)
    limit = storage.quota_bytes * storage.cleanup_threshold / 100
    if not (used - added < limit <= used):
        return False
    percent = round(used * 100 / storage.quota_bytes)
    details = {
        "level": "warning",
        "storage": storage.name,
        "storage_id": storage.pk,
        "message": f"Storage usage at {percent}%",
        "threshold": storage.cleanup_threshold,
        "used": human_bytes(used),
        "available": human_bytes(max(0, storage.quota_bytes - used)),
        "total": human_bytes(storage.quota_bytes),
        "used_bytes": used,
    }
    emit(
        action="storage_alert", tenant=storage.tenant, resource_type="storage", resource_id=storage.pk, details=details
    )
    publish(tenant_id=storage.tenant_id, stream="notifications", event={"type": "storage_alert", **details})
    return True


# --- recording and removing copies ---------------------------------------------------------------


def copy_record(
    *, backup: Backup, storage: Storage, path: str, size: int, checksum: str, verified: bool = False
) -> BackupCopy:
    """Record (or refresh) the copy of ``backup`` on ``storage``."""
    now = timezone.now()
    copy, _ = BackupCopy.objects.update_or_create(
        backup=backup,
        storage=storage,
        defaults={
            "tenant_id": backup.tenant_id,
            "path": path,
            "size_bytes": size,
            "checksum": checksum,
            "verified": verified,
            "verified_at": now if verified else None,
            "status": CopyStatus.AVAILABLE,
            "error_message": "",
        },
    )
    return copy


def primary_copy_ensure(*, backup: Backup) -> BackupCopy | None:
    """The row of the primary copy, written now for a backup stored before copies existed."""
    if backup.status != BackupStatus.COMPLETED or backup.storage_id is None or not backup.storage_path:
        return None
    copy = BackupCopy.objects.filter(backup=backup, storage_id=backup.storage_id).first()
    if copy is None:
        copy = BackupCopy.objects.create(
            tenant_id=backup.tenant_id,
            backup=backup,
            storage_id=backup.storage_id,
            path=backup.storage_path,
            size_bytes=backup.stored_bytes,
            checksum=backup.checksum,
            verified=backup.verified,
            verified_at=backup.verified_at,
        )
    return copy


def primary_copy_record(*, backup: Backup) -> BackupCopy | None:
    """The row of a new artifact's copy on its own storage (written with the backup's completion)."""
    if backup.storage is None:
        return None
    return copy_record(
        backup=backup,
        storage=backup.storage,
        path=backup.storage_path,
        size=backup.stored_bytes,
        checksum=backup.checksum,
    )


def after_backup_completed(*, backup: Backup) -> None:
    """A completed backup's copy row is written (:func:`primary_copy_record`): check the
    storage's threshold, replicate."""
    if backup.storage is None:
        return
    threshold_check(storage=backup.storage, added=backup.stored_bytes)
    policy = (
        StoragePolicy.objects.filter(tenant_id=backup.tenant_id, replication_enabled=True)
        .select_related("replication_target")
        .first()
    )
    target = policy.replication_target if policy else None
    if target is not None and target.pk != backup.storage_id and target.status == "active":
        with transaction.atomic():
            sync_start(
                tenant=backup.tenant,
                source=backup.storage,
                destination=target,
                backups=[backup],
                verify=True,
                trigger="replication",
            )


def _delete_artifact(storage: Storage, path: str) -> None:

    with storage_backend(storage) as backend:
        backend.delete(path)
        backend.discard_partials(path)


def copies_discard_all(*, backup: Backup) -> None:
    """Delete the artifact in every location that holds a copy (not the primary: the caller
    deletes it). Raises ``StorageError`` if one cannot be deleted."""
    for copy in (
        BackupCopy.objects.filter(backup=backup).exclude(storage_id=backup.storage_id).select_related("storage")
    ):
        if copy.storage is not None:
            _delete_artifact(copy.storage, copy.path)


@transaction.atomic
def copy_remove(*, backup: Backup, storage: Storage, reason: str = "") -> int:
    """Remove ``backup``'s copy on ``storage`` only; the others stay. The backup row goes with
    its last copy. Returns the bytes freed on ``storage``."""

    primary_copy_ensure(backup=backup)
    copies = list(BackupCopy.objects.select_for_update(of=("self",)).filter(backup=backup).select_related("storage"))
    here = next((c for c in copies if c.storage_id == storage.pk), None)
    if here is None:
        raise NotFound("The backup has no copy on this storage", code="BACKUP_NOT_FOUND")
    others = [c for c in copies if c.pk != here.pk and c.storage is not None]
    if not others:
        return backup_delete(backup=backup, reason=reason)
    try:
        _delete_artifact(storage, here.path)
    except StorageError as exc:
        raise Conflict(f"The stored file could not be deleted: {exc}", code="STORAGE_ERROR") from None
    here.delete()
    if backup.storage_id == storage.pk:  # the primary went: the best remaining copy takes over
        best = sorted(others, key=lambda c: (c.status != CopyStatus.AVAILABLE, not c.verified, c.pk))[0]
        Backup.objects.filter(pk=backup.pk).update(storage=best.storage, storage_path=best.path)
        backup.storage, backup.storage_path = best.storage, best.path
    emit(
        action="backup_copy_delete",
        tenant=backup.tenant,
        resource_type="backup",
        resource_id=backup.pk,
        details={"storage": storage.name, "reason": reason, "storage_freed_bytes": here.size_bytes},
    )
    return here.size_bytes


def copy_mark(*, backup: Backup, storage: Storage | None, status: str, error: str = "") -> None:
    if storage is None:
        return
    BackupCopy.objects.filter(backup=backup, storage=storage).update(status=status, error_message=error[:500])


def readable_copies(*, backup: Backup) -> list[tuple[Storage, str]]:
    """Where the artifact can be read from, best first: the primary, then the other
    available copies (verified first)."""
    found: list[tuple[Storage, str]] = []
    if backup.storage is not None and backup.storage_path:
        found.append((backup.storage, backup.storage_path))
    others = (
        BackupCopy.objects.filter(backup=backup, status=CopyStatus.AVAILABLE, storage__isnull=False)
        .exclude(storage_id=backup.storage_id)
        .select_related("storage")
        .order_by("-verified", "id")
    )
    found += [(c.storage, c.path) for c in others if c.storage.status == "active"]
    return found


def open_any_copy(*, backup: Backup):
    """``(backend, reader)`` of the first copy that can be opened. A copy whose file is gone
    is marked ``missing`` and the next one is tried; ``StorageNotFound`` when none is left."""

    errors: list[str] = []
    for storage, path in readable_copies(backup=backup):
        backend = storage_backend(storage)
        try:
            if not backend.exists(path):
                raise StorageNotFound(f"{path} does not exist")
            return backend, backend.open_reader(path)
        except StorageError as exc:
            backend.close()
            errors.append(f"{storage.name}: {exc}")
            if isinstance(exc, StorageNotFound):
                copy_mark(backup=backup, storage=storage, status=CopyStatus.MISSING, error=str(exc))
                logger.warning("backup %s: copy on %s is missing; trying the next copy", backup.pk, storage.name)
        except Exception:
            backend.close()
            raise
    raise StorageNotFound("No copy of the backup can be read: " + "; ".join(errors or ["no copies"]))


# --- sync ----------------------------------------------------------------------------------------


def _resolve_storage(tenant: Tenant, name: str, field: str) -> Storage:
    storage = (
        Storage.objects.filter(tenant=tenant, name=name).first()
        or Storage.objects.filter(tenant=tenant, type=name).order_by("-is_default", "id").first()
    )
    if storage is None and name.isascii() and name.isdigit() and len(name) < 19:
        storage = Storage.objects.filter(tenant=tenant, pk=int(name)).first()
    if storage is None:
        raise ValidationFailed(details={field: [f"No storage location named '{name}'."]})
    return storage


def storage_by_name(*, tenant: Tenant, name: str, field: str = "storage") -> Storage:
    """A tenant's storage named by the console: its name, its type or its id."""
    return _resolve_storage(tenant, name, field)


@transaction.atomic
def sync_start(
    *,
    tenant: Tenant,
    source: Storage,
    destination: Storage,
    backups: list[Backup] | None = None,
    verify: bool = True,
    actor: Any = None,
    trigger: str = "manual",
    queue: bool = True,
) -> Operation:
    """Queue copying ``backups`` (default: every completed backup with a copy on ``source``)
    from ``source`` to ``destination``. Backups already there are skipped by the run."""
    if source.tenant_id != tenant.pk or destination.tenant_id != tenant.pk:
        raise NotFound("Storage not found")
    if source.pk == destination.pk:
        raise ValidationFailed(details={"destination": ["Source and destination are the same storage."]})
    if destination.status != "active":
        raise Conflict(f"Storage '{destination.name}' is disabled", code="STORAGE_DISABLED")
    on_source = Backup.objects.filter(tenant=tenant, status=BackupStatus.COMPLETED).filter(
        Exists(BackupCopy.objects.filter(backup=OuterRef("pk"), storage=source, status=CopyStatus.AVAILABLE))
        | Exists(Backup.objects.filter(pk=OuterRef("pk"), storage=source))
    )
    if backups is None:
        chosen = list(on_source.order_by("created_at", "id"))
    else:
        ids = [b.pk for b in backups]
        chosen = list(on_source.filter(pk__in=ids).order_by("created_at", "id"))
        missing = sorted(set(ids) - {b.pk for b in chosen})
        if missing:
            raise NotFound(
                f"Not on storage '{source.name}' (or not completed): backups {missing}",
                code="BACKUP_NOT_FOUND",
                details={"backup_ids": missing},
            )
    already = set(
        BackupCopy.objects.filter(storage=destination, status=CopyStatus.AVAILABLE, backup__in=chosen).values_list(
            "backup_id", flat=True
        )
    )
    todo = [b for b in chosen if b.pk not in already]
    total = sum(b.stored_bytes for b in todo)
    quota_check(storage=destination, incoming=total, what=f"syncing {len(todo)} backup(s)")
    op = operations.operation_create(
        tenant=tenant,
        kind=OperationKind.SYNC,
        actor=actor,
        details={
            "source_id": source.pk,
            "source": source.name,
            "destination_id": destination.pk,
            "destination": destination.name,
            "backup_ids": [b.pk for b in chosen],
            "verify": verify,
            "trigger": trigger,
            "backups_total": len(chosen),
            "backups_synced": 0,
            "backups_skipped": len(already),
            "bytes_total": total,
            "failed": [],
        },
    )
    Operation.objects.filter(pk=op.pk).update(bytes_total=total)
    op.bytes_total = total
    emit(
        action="storage_sync_start",
        tenant=tenant,
        resource_type="operation",
        resource_id=op.public_id,
        details={
            "source": source.name,
            "destination": destination.name,
            "backups": len(chosen),
            "bytes": total,
            "verify": verify,
            "trigger": trigger,
        },
    )
    if queue:
        _queue("backups.tasks.run_sync", op)
    return op


def sync_progress_url(op: Operation) -> str:
    return reverse("console-storage-sync-progress", kwargs={"sync_id": op.public_id})


def _copy_one(
    *, backup: Backup, source: Storage, destination: Storage, verify: bool, reporter: ProgressReporter, done_before: int
) -> dict:
    """Stream one artifact from ``source`` to ``destination``; returns the copy's facts."""

    copy = BackupCopy.objects.filter(backup=backup, storage=source).first()
    path = copy.path if copy else backup.storage_path
    src = storage_backend(source)
    dst = storage_backend(destination)
    reader = writer = None
    try:
        reader = src.open_reader(path)
        writer = QuotaWriter(dst.open_writer(backup.storage_path), storage=destination)
        digest, size = hashlib.sha256(), 0
        while block := reader.read(READ_SIZE):
            writer.write(block)
            digest.update(block)
            size += len(block)
            reporter.update(done_before + size)
            if reporter.cancelled():
                raise _Cancelled()
        if backup.checksum and digest.hexdigest() != backup.checksum:
            raise StorageError(f"the copy read from '{source.name}' does not match the backup's checksum")
        writer.commit()
        verified = False
        if verify:
            reporter.step("verifying", component=backup.name[:100])
            check = hashlib.sha256()
            with contextlib.closing(dst.open_reader(backup.storage_path)) as back:
                while block := back.read(READ_SIZE):
                    check.update(block)
            if check.hexdigest() != digest.hexdigest():
                dst.delete(backup.storage_path)
                raise StorageError(f"verification failed: the copy on '{destination.name}' reads back different bytes")
            verified = True
        return {"size": size, "checksum": digest.hexdigest(), "verified": verified}
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.abort()
        raise
    finally:
        for closable in (reader, src, dst):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()


class _Cancelled(Exception):
    pass


def sync_run(*, operation_id: int) -> Operation | None:
    """Copy each backup of a sync operation; one failing backup does not stop the others."""
    op = operations.operation_claim(operation_id=operation_id)
    if op is None:
        return None
    details = dict(op.details)
    source = Storage.objects.filter(pk=details.get("source_id"), tenant_id=op.tenant_id).first()
    destination = Storage.objects.filter(pk=details.get("destination_id"), tenant_id=op.tenant_id).first()
    if source is None or destination is None:
        return operations.operation_finish(
            op=op,
            status=OperationStatus.FAILED,
            step="failed",
            error="The source or destination storage no longer exists",
        )
    reporter = ProgressReporter(op, total=details.get("bytes_total") or None)
    failed: list[dict] = []
    synced = skipped = done = 0
    cancelled = False
    ids = details.get("backup_ids", [])
    for pk in ids:
        backup = Backup.objects.select_related("tenant", "storage").filter(pk=pk, tenant_id=op.tenant_id).first()
        if backup is None or backup.status != BackupStatus.COMPLETED:
            skipped += 1
            continue
        if BackupCopy.objects.filter(backup=backup, storage=destination, status=CopyStatus.AVAILABLE).exists():
            skipped += 1
            continue
        reporter.step("copying", component=backup.name[:100])
        try:
            primary_copy_ensure(backup=backup)
            facts = _copy_one(
                backup=backup,
                source=source,
                destination=destination,
                verify=details.get("verify", True),
                reporter=reporter,
                done_before=done,
            )
        except _Cancelled:
            cancelled = True
            break
        except (StorageError, StorageFull) as exc:
            message = getattr(exc, "message", None) or str(exc)
            code = "STORAGE_FULL" if isinstance(exc, StorageFull) else "SYNC_FAILED"
            failed.append({"backup_id": pk, "code": code, "error": message[:500]})
            logger.warning("sync %s: backup %s failed: %s", op.public_id, pk, message)
            continue
        done += facts["size"]
        copy_record(
            backup=backup,
            storage=destination,
            path=backup.storage_path,
            size=facts["size"],
            checksum=facts["checksum"],
            verified=facts["verified"],
        )
        synced += 1
        threshold_check(storage=destination, added=facts["size"])
        details.update(backups_synced=synced, failed=failed)
        Operation.objects.filter(pk=op.pk).update(details=details)
        emit(
            action="backup_copy_create",
            tenant=backup.tenant,
            resource_type="backup",
            resource_id=backup.pk,
            details={"storage": destination.name, "verified": facts["verified"], "bytes": facts["size"]},
        )
    details.update(backups_synced=synced, failed=failed, backups_skipped=details.get("backups_skipped", 0) + skipped)
    if synced:
        Storage.objects.filter(pk=destination.pk).update(last_synced_at=timezone.now())
    if cancelled:
        status, error = OperationStatus.CANCELLED, "Cancelled; the partial copy was removed"
    elif failed:
        status, error = OperationStatus.FAILED, f"{len(failed)} backup(s) could not be copied"
    else:
        status, error = OperationStatus.COMPLETED, ""
    op = operations.operation_finish(op=op, status=status, error=error, details=details, step=status)
    emit(
        action=f"storage_sync_{status}",
        tenant=op.tenant,
        resource_type="operation",
        resource_id=op.public_id,
        details={"synced": synced, "failed": len(failed), "destination": destination.name},
    )
    return op
