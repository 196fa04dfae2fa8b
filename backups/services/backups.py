"""Backups: start (row + operation + queued task), run (stream source -> pipeline -> storage),
delete, download links. Restores and verifications live in their own modules.

A backup is ``completed`` only after its artifact is committed to storage and its checksum
recorded; any failure or cancel removes partial data (DESIGN.md "Work and progress").
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audit.services import emit, publish, stored_user
from backupplatform.errors import Conflict, NotFound, TooManyOperations, ValidationFailed
from backupplatform.isotime import utc_iso
from tenants import capabilities
from tenants.models import Tenant

from .. import confinement, engines, signals
from ..keys import tenant_current_key
from ..models import (
    Application,
    Backup,
    BackupStatus,
    BackupTrigger,
    Operation,
    OperationKind,
    OperationStatus,
    Server,
    ServerType,
    Storage,
    StorageType,
)
from ..pipeline import PipelineCancelled, backup_stream
from ..progress import ProgressReporter
from ..storage import StorageError, StorageUnavailable, open_backend
from . import operations
from .backup_sources import artifact_manifest, artifact_payload, estimate_stored, estimate_total, open_source

logger = logging.getLogger(__name__)

COMPRESSIONS = ("gzip", "zstd", "none")
DOWNLOAD_SALT = "backups.download"


# --- helpers ---------------------------------------------------------------------------------


def storage_backend(storage: Storage):
    """An open backend for ``storage`` (the caller closes it)."""
    return open_backend(storage.type, storage.configuration or {}, storage.credentials or {})


def default_storage(tenant: Tenant) -> Storage:
    """The tenant's default storage; a local folder under BACKUP_LOCAL_ROOT when it has none."""
    storage = (
        Storage.objects.filter(tenant=tenant, is_default=True).first()
        or Storage.objects.filter(tenant=tenant, status="active").order_by("id").first()
    )
    if storage is not None:
        return storage
    root = confinement.default_storage_folder(tenant)
    storage, _ = Storage.objects.get_or_create(
        tenant=tenant,
        name="local",
        defaults={"type": StorageType.LOCAL, "configuration": {"path": root}, "is_default": True},
    )
    return storage


def artifact_extension(backup: Backup) -> str:
    if backup.application_id:
        return "tar"
    return {"postgresql": "dump", "mysql": "sql"}.get(backup.db_type, "bin")


def artifact_name(backup: Backup) -> str:
    when = backup.created_at.astimezone(UTC) if backup.created_at else timezone.now()
    return (
        f"{backup.tenant.slug}/{when:%Y/%m/%d}/backup-{backup.pk}-{when:%Y%m%dT%H%M%S}"
        f".{artifact_extension(backup)}.bpaf"
    )


def _active_backups(tenant: Tenant) -> int:
    return Operation.objects.filter(tenant=tenant, kind=OperationKind.BACKUP, status__in=operations.ACTIVE).count()


# --- start ------------------------------------------------------------------------------------


@transaction.atomic
def backup_start(
    *,
    tenant: Tenant,
    actor: Any = None,
    server: Server | None = None,
    database_name: str = "",
    application: Application | None = None,
    components: list[str] | None = None,
    storage: Storage | None = None,
    job: Any = None,
    compression: str = "zstd",
    encrypt: bool = True,
    backup_type: str = "full",
    trigger: str = BackupTrigger.MANUAL,
    name: str = "",
    description: str = "",
    keep_until=None,
    keep_forever: bool = False,
    options: dict | None = None,
    queue: bool = True,
    priority: int | None = None,
) -> Operation:
    """Create the ``Backup`` and its ``Operation`` and queue the work after commit.

    Exactly one of ``server``+``database_name`` (a database backup) or ``application`` (an
    application backup: all its sources in one artifact). Raises ``TooManyOperations`` past
    the tenant's concurrent-backup cap (system-backup-recovery.rst "Rate Limiting").
    """
    capabilities.require_feature(tenant)
    if compression not in COMPRESSIONS:
        raise ValidationFailed(details={"compression_type": [f"Must be one of: {', '.join(COMPRESSIONS)}."]})
    if not encrypt:
        # Artifacts are always encrypted: the platform has no unencrypted format to restore.
        raise ValidationFailed(details={"encrypt": ["Backups are always encrypted (AES-256-GCM)."]})
    if (server is None) == (application is None):
        raise ValidationFailed("Give either a server and database or an application")
    if keep_until is not None and keep_until <= timezone.now():
        # A date already past would protect nothing: retention could delete the backup at once.
        raise ValidationFailed(
            details={
                "keep_until": [
                    f"Must be in the future (got {keep_until.isoformat()}): until then, retention keeps the backup."
                ]
            }
        )
    if server is not None:
        if server.tenant_id != tenant.pk:
            raise NotFound("Server not found")
        if server.type not in (ServerType.POSTGRESQL, ServerType.MYSQL):
            raise ValidationFailed(details={"server_id": [f"Server type {server.type} holds no database to back up."]})
        if not database_name:
            raise ValidationFailed(details={"database_name": ["This field is required."]})
    if application is not None and application.tenant_id != tenant.pk:
        raise NotFound("Application not found")
    if application is not None and components:
        _check_components(application, components)
    storage = storage or default_storage(tenant)
    if storage.tenant_id != tenant.pk:
        raise NotFound("Storage not found")
    from .copies import quota_check

    quota_check(storage=storage, incoming=1, what="a new backup")  # already full: refused at once

    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()  # serialise the cap check
    if _active_backups(tenant) >= tenant.max_concurrent_backups:
        raise TooManyOperations(
            f"At most {tenant.max_concurrent_backups} backup operations may run at once",
            code="TOO_MANY_OPERATIONS",
            details={"limit": tenant.max_concurrent_backups},
            headers={"Retry-After": "30"},
        )

    backup = Backup.objects.create(
        tenant=tenant,
        name=name,
        description=description,
        backup_type=backup_type,
        trigger=trigger,
        server=server,
        database_name=database_name,
        db_type=server.type if server else "",
        application=application,
        components=components or [],
        job=job,
        storage=storage,
        compression=compression,
        encrypted=True,
        keep_until=keep_until,
        keep_forever=keep_forever,
        created_by=stored_user(actor),
    )
    if not backup.name:
        backup.name = (
            f"{database_name or (application.name if application else 'backup')}_{timezone.now():%Y%m%d_%H%M%S}"
        )
    backup.storage_path = artifact_name(backup)
    backup.save(update_fields=["name", "storage_path"])
    op = operations.operation_create(
        tenant=tenant, kind=OperationKind.BACKUP, actor=actor, backup=backup, details={"options": options or {}}
    )
    emit(
        action="backup_create",
        tenant=tenant,
        resource_type="backup",
        resource_id=backup.pk,
        details={
            "database": database_name,
            "application": application.name if application else None,
            "backup_type": backup_type,
            "storage": storage.name,
            "compression": compression,
            "trigger": trigger,
        },
    )
    if queue:  # the CLI runs the work in its own process instead
        _queue("backups.tasks.run_backup", op, priority=priority)
    return op


def _check_components(application: Application, components: list[str]) -> None:
    """Components name the application's sources by their ``component`` (system, data,
    config, database): each must stand for at least one source."""
    available = set(application.sources.exclude(component="").values_list("component", flat=True))
    unknown = sorted(set(components) - available)
    if unknown:
        have = ", ".join(sorted(available)) or "none: add sources to the application first"
        raise ValidationFailed(
            details={
                "components": [
                    f"No source of application '{application.name}' is a {c} component (components: {have})."
                    for c in unknown
                ]
            }
        )


def _queue(task_name: str, op: Operation, *, priority: int | None = None) -> None:
    """Send the task after commit. ``priority`` is Celery's (0 = highest on Redis)."""
    from backupplatform.celery import app

    def send() -> None:
        # JSON ids only; the task rebuilds everything from the row (CONVENTIONS.md "Celery").
        app.send_task(task_name, args=[op.pk], task_id=op.celery_task_id or None, priority=priority)

    transaction.on_commit(send)


# --- run --------------------------------------------------------------------------------------


def backup_run(*, operation_id: int, retry_transient: bool = False) -> Operation | None:
    """The work of a backup operation (called by the Celery task). Idempotent.

    With ``retry_transient``, a storage that is unavailable (after the writer's own
    retries) does not fail the backup: partial data is removed, the operation goes back
    to ``pending`` (step ``waiting_for_storage``) and ``StorageUnavailable`` is raised for
    the task to retry later. Without it (the task's last attempt, the CLI) it fails.
    """
    op = operations.operation_claim(operation_id=operation_id)
    if op is None:
        logger.info("operation %s is not pending; nothing to do", operation_id)
        return None
    backup = Backup.objects.select_related("tenant", "server", "application", "storage").get(pk=op.backup_id)
    now = timezone.now()
    Backup.objects.filter(pk=backup.pk).update(status=BackupStatus.RUNNING, started_at=now)
    backup.started_at = now
    publish(
        tenant_id=backup.tenant_id,
        event={"type": "backup_started", "backup_id": backup.pk, "job_id": op.public_id, "timestamp": now.isoformat()},
    )
    reporter = ProgressReporter(op, total=estimate_total(backup))
    backend = writer = source = None
    try:
        if backup.storage is not None and backup.storage.quota_bytes:
            from .copies import quota_check

            # Databases: refused before anything is written when the estimate does not fit.
            quota_check(
                storage=backup.storage,
                incoming=estimate_stored(backup, reporter.total),
                what=f"the backup of {backup.database_name or 'the application'} (estimated)",
            )
        if backup.storage is None:
            raise StorageError("The backup's storage no longer exists")
        if backup.storage.type == StorageType.LOCAL and (
            reason := confinement.check_storage_folder(
                backup.tenant, (backup.storage.configuration or {}).get("path", ""), storage_id=backup.storage_id
            )
        ):
            raise StorageError(f"Storage '{backup.storage.name}': {reason}")
        key_id, key = tenant_current_key(backup.tenant)
        reporter.step("connecting", progress=1)
        if reporter.cancelled():
            raise PipelineCancelled("Cancelled before the dump started")
        backend = storage_backend(backup.storage)
        if op.details.get("attempts", 1) > 1:  # an earlier attempt's abort may not have got through
            with contextlib.suppress(StorageError):
                backend.discard_partials(backup.storage_path)
        source = open_source(backup)
        writer = backend.open_writer(backup.storage_path)
        if backup.storage.quota_bytes:
            from .copies import QuotaWriter

            writer = QuotaWriter(writer, storage=backup.storage)  # other sources: checked as written
        reporter.step(
            "dumping_and_encrypting",
            progress=2,
            component=backup.database_name or (backup.application.name if backup.application else ""),
        )
        result = backup_stream(
            source,
            writer,
            data_key=key,
            key_id=key_id,
            compression=backup.compression,
            payload=artifact_payload(backup),
            progress=reporter.update,
            cancel=reporter.cancelled,
            zstd_threads=settings.BACKUP_ZSTD_THREADS,
        )
        source.finish()
        reporter.step("uploading", progress=99)
        writer.commit()
    except PipelineCancelled:
        _cleanup(source, writer)
        return _backup_end(op, backup, BackupStatus.CANCELLED, "Cancelled; partial data removed")
    except Exception as exc:  # the failure is recorded on the rows and reported; nothing partial stays
        _cleanup(source, writer)
        if retry_transient and isinstance(exc, StorageUnavailable):
            _backup_wait_for_storage(op, backup, exc)
            raise
        logger.warning(
            "backup %s failed: %s", backup.pk, exc, exc_info=not isinstance(exc, StorageError | engines.EngineError)
        )
        error = _describe(exc)
        attempts = op.details.get("attempts", 1)
        if isinstance(exc, StorageUnavailable) and attempts > 1:
            error = f"{error} (gave up after {attempts} attempts)"
        return _backup_end(op, backup, BackupStatus.FAILED, error)
    finally:
        if backend is not None:
            with contextlib.suppress(Exception):
                backend.close()
    info = dict(getattr(source, "info", {}) or {})
    bundle = info.pop("manifest", None)  # an application artifact's own manifest.json
    info.pop("members", None)
    manifest = artifact_manifest(result, created_at=backup.started_at, source=info, bundle=bundle)
    backup.size_bytes, backup.compressed_bytes, backup.stored_bytes = (
        result.raw_bytes,
        result.compressed_bytes,
        result.stored_bytes,
    )
    backup.checksum = result.sha256
    backup.key_id = key_id
    backup.manifest = manifest
    Backup.objects.filter(pk=backup.pk).update(
        size_bytes=backup.size_bytes,
        compressed_bytes=backup.compressed_bytes,
        stored_bytes=backup.stored_bytes,
        checksum=backup.checksum,
        key_id=key_id,
        manifest=manifest,
    )
    op = _backup_end(op, backup, BackupStatus.COMPLETED, "")
    _verify_if_asked(op, backup)
    return op


def _backup_wait_for_storage(op: Operation, backup: Backup, exc: BaseException) -> None:
    """Hand a backup whose storage is down back to the queue (the task retries it)."""
    message = _describe(exc)
    attempts = int(op.details.get("attempts", 1))
    op.details = {**op.details, "attempts": attempts + 1, "last_error": message}
    op.status, op.step = OperationStatus.PENDING, "waiting_for_storage"
    Operation.objects.filter(pk=op.pk, status=OperationStatus.RUNNING).update(
        status=op.status, step=op.step, details=op.details, heartbeat_at=timezone.now()
    )
    Backup.objects.filter(pk=backup.pk).update(status=BackupStatus.PENDING, error_message=message)
    logger.warning("backup %s: storage unavailable (attempt %d), retrying later: %s", backup.pk, attempts, message)
    from ..progress import progress_event

    publish(tenant_id=op.tenant_id, event=progress_event(op))
    emit(
        action="backup_retry",
        tenant=backup.tenant,
        resource_type="backup",
        resource_id=backup.pk,
        details={"attempt": attempts, "error": message},
    )


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
    if getattr(exc, "code", None) == "STORAGE_FULL":  # the console shows the seed's code
        message = f"STORAGE_FULL: {message}"
    return message[:2000]


def _cleanup(source, writer) -> None:
    if source is not None:
        with contextlib.suppress(Exception):
            source.kill()
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.abort()


def _backup_end(op: Operation, backup: Backup, status: str, error: str) -> Operation:
    now = timezone.now()
    op_status = {
        BackupStatus.COMPLETED: OperationStatus.COMPLETED,
        BackupStatus.CANCELLED: OperationStatus.CANCELLED,
    }.get(status, OperationStatus.FAILED)
    errors_before = op.errors

    def record() -> None:
        # One commit for the rows: nobody reads a cancelled backup whose operation still runs,
        # nor a completed backup without the row of its stored copy (deleting it then would
        # race the insert of that row).
        op.errors = errors_before
        with transaction.atomic():
            Backup.objects.filter(pk=backup.pk).update(status=status, completed_at=now, error_message=error)
            operations.operation_finish(op=op, status=op_status, error=error, step=status)
            if status == BackupStatus.COMPLETED:
                from .copies import primary_copy_record

                primary_copy_record(backup=backup)

    # On a fresh connection if the one the run used broke (that may be why it failed).
    operations.with_db_retry(record, what=f"recording the outcome of backup {backup.pk}")
    backup.status, backup.completed_at, backup.error_message = status, now, error
    duration = (now - backup.started_at).total_seconds() if backup.started_at else None
    event = {
        "type": f"backup_{status}",
        "backup_id": backup.pk,
        "job_id": op.public_id,
        "name": backup.name,
        "size": backup.stored_bytes,
        "duration": duration,
        "timestamp": utc_iso(now, micro=True),
    }
    if error:
        event["error"] = error
    publish(tenant_id=backup.tenant_id, event=event)
    # The ``notification`` socket event, channels and webhooks follow from ``emit`` (audit/deliveries.py).
    emit(
        action=f"backup_{status}",
        tenant=backup.tenant,
        resource_type="backup",
        resource_id=backup.pk,
        actor=None,
        details={"stored_bytes": backup.stored_bytes, "checksum": backup.checksum, "error": error},
    )
    if status == BackupStatus.COMPLETED:
        from .copies import after_backup_completed

        after_backup_completed(backup=backup)
    if status == BackupStatus.COMPLETED:
        signals.backup_completed.send(sender=Backup, backup=backup)
    return op


def _verify_if_asked(op: Operation, backup: Backup) -> None:
    """system-backup-recovery.rst "Create Backup" ``verify_integrity``: a decrypting
    verification of the new artifact, queued as soon as it is committed."""
    if (op.details.get("options") or {}).get("verify_integrity"):
        from .verifications import verification_start

        verification_start(tenant=backup.tenant, backup=backup, test_type="decrypt")


def backup_discard_artifact(*, backup: Backup) -> None:
    """Remove a backup's stored artifact and any partial upload (already gone is fine)."""
    if backup.storage is None or not backup.storage_path:
        return
    try:
        with storage_backend(backup.storage) as backend:
            backend.delete(backup.storage_path)
            backend.discard_partials(backup.storage_path)
    except StorageError:
        logger.warning("could not remove the artifact of backup %s", backup.pk, exc_info=True)
        raise


@transaction.atomic
def backup_delete(*, backup: Backup, reason: str = "") -> int:
    """Delete the stored files (every location holding the backup), then the row. Returns
    the bytes freed. Refused while the backup runs, or while a restore, recovery, sync or
    verification is reading it (``BACKUP_IN_USE``, with those operations in the details)."""
    from ..backup_selectors import backup_active_readers, backup_locations

    if backup.status in (BackupStatus.PENDING, BackupStatus.RUNNING):
        raise Conflict("The backup is still running; cancel it first", code="BACKUP_IN_PROGRESS")
    from .copies import copies_discard_all

    # Lock the row: a restore starting now waits for this delete and then finds no backup.
    Backup.objects.select_for_update().filter(pk=backup.pk).first()
    readers = list(backup_active_readers(backup=backup)[:10])
    if readers:
        raise Conflict(
            f"The backup is being read by a {readers[0].kind} that is {readers[0].status}; "
            "wait for it to finish or cancel it",
            code="BACKUP_IN_USE",
            details={"operations": [{"job_id": op.public_id, "kind": op.kind, "status": op.status} for op in readers]},
        )
    locations = backup_locations(backup=backup)
    freed = backup.stored_bytes * max(1, len(locations)) if locations else 0
    try:
        copies_discard_all(backup=backup)  # every other location's copy, then the primary
        backup_discard_artifact(backup=backup)  # and partial uploads of a failed run
    except StorageError as exc:
        raise Conflict(f"The stored file could not be deleted: {exc}", code="STORAGE_ERROR")
    pk, tenant = backup.pk, backup.tenant
    emit(
        action="backup_delete",
        tenant=tenant,
        resource_type="backup",
        resource_id=pk,
        details={
            "name": backup.name,
            "reason": reason,
            "storage_freed_bytes": freed,
            "locations": [location.storage.name for location in locations],
        },
    )
    backup.delete()
    return freed


def _require_completed(backup: Backup) -> None:
    if backup.status != BackupStatus.COMPLETED:
        raise Conflict(
            f"The backup is {backup.status}; only completed backups have an artifact", code="BACKUP_NOT_COMPLETED"
        )
    if backup.storage is None:
        raise Conflict("The storage holding this backup was deleted", code="STORAGE_MISSING")


def backup_download_link(*, backup: Backup, expires_in: int = 3600, request=None) -> tuple[str, Any]:
    """A presigned URL on S3/MinIO, otherwise an expiring signed link to the streaming view."""
    _require_completed(backup)
    expires_at = timezone.now() + timedelta(seconds=expires_in)
    url = None
    with storage_backend(backup.storage) as backend:
        url = backend.presigned_url(backup.storage_path, expires_in=expires_in)
    if not url:
        token = signing.dumps({"b": backup.pk, "t": backup.tenant_id}, salt=DOWNLOAD_SALT)
        path = reverse("backup-download-signed", kwargs={"token": token})
        url = request.build_absolute_uri(path) if request is not None else path
    emit(
        action="backup_download",
        tenant=backup.tenant,
        resource_type="backup",
        resource_id=backup.pk,
        details={"expires_at": expires_at},
    )
    return url, expires_at


def backup_from_download_token(token: str, *, max_age: int = 3600) -> Backup:
    try:
        data = signing.loads(token, salt=DOWNLOAD_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise NotFound("This download link has expired", code="LINK_EXPIRED")
    except signing.BadSignature:
        raise NotFound("Invalid download link")
    backup = (
        Backup.objects.select_related("storage", "tenant").filter(pk=data.get("b"), tenant_id=data.get("t")).first()
    )
    if backup is None:
        raise NotFound("Backup not found")
    _require_completed(backup)
    return backup


def backup_open_artifact(*, backup: Backup):
    """``(backend, reader)`` of the stored artifact; the caller closes both. When the
    primary copy's file is gone, the next healthy copy (another storage) is read."""
    from .copies import open_any_copy

    if backup.status != BackupStatus.COMPLETED:
        _require_completed(backup)
    return open_any_copy(backup=backup)
