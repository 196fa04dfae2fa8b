"""Importing uploaded backup files (system-backup-recovery.rst "Import & Export Operations").

An upload is streamed to a file in the tenant's staging folder (never held in memory; at
most ``IMPORT_MAX_UPLOAD_BYTES``, one upload at a time per tenant), then read once more to
recognise and check it **before anything is imported**. Recognised by content, not by name:

- ``bpaf``: an artifact of this platform, authenticated with the tenant's data key (every
  chunk's AES-GCM tag; an application artifact's members also against its manifest);
- ``pg_custom`` (``pg_dump -Fc``, whole dump read by ``pg_restore -f /dev/null``),
  ``pg_plain`` and ``mysql_sql`` (SQL text whose tool's closing line must be there);
- ``tar``, ``tar.gz``, ``tar.zst``: every member checked (no absolute names, no ``..``, no
  links out of the archive, no devices), with caps on the unpacked size, the ratio of
  unpacked to packed bytes and the number of members (decompression bombs);
- ``config``: a configuration export (``export/config``), imported as a snapshot.

A refused upload leaves nothing: its staged file is deleted and no row is written. An
accepted one becomes an ``Operation`` of kind ``import`` whose task stores it as a normal
encrypted backup of the tenant (trigger ``imported``), restorable like any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers
from django.db import transaction
from django.utils import timezone

from audit.services import emit, stored_user
from backupplatform.errors import DomainError, TooManyOperations, ValidationFailed
from tenants.models import Tenant

from .. import confinement
from ..engines.base import READ_SIZE, EngineError, StreamBase
from ..engines.bundle import bundle_source
from ..keys import tenant_data_key
from ..models import (
    Application,
    Backup,
    BackupStatus,
    BackupTrigger,
    Operation,
    OperationKind,
    OperationStatus,
    Server,
)
from ..pipeline import ArtifactError, PipelineCancelled, backup_stream, open_artifact
from . import operations
from .backup_sources import artifact_manifest
from .import_checks import (  # noqa: F401  (part of this module's API)
    FILES_MEMBER,
    KIND_LABELS,
    Counting,
    ImportRefused,
    Inspection,
    PlainReader,
    decompressed,
    describe,
    inspect_upload,
    limits,
    refuse,
)

logger = logging.getLogger(__name__)

# --- the upload: streamed to the staging folder ----------------------------------------------------


class UploadTooLarge(DomainError):
    status = 413
    code = "REQUEST_TOO_LARGE"
    default_message = "The file is larger than the upload limit"


class UploadBusy(TooManyOperations):
    """system-backup-recovery.rst "Rate Limiting": one concurrent upload."""


def staging_dir(tenant: Tenant) -> str:
    path = confinement.import_staging_dir(tenant)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


class StagingUploadHandler(FileUploadHandler):
    """Writes the multipart field ``file`` straight to a new file in the tenant's staging
    folder, counting bytes: past ``limit`` the upload stops with a 413 and the file goes.
    Any other file field is refused."""

    chunk_size = 1 << 20

    def __init__(self, *, tenant: Tenant, limit: int, lock_key: str | None = None, request=None):
        super().__init__(request)
        self.tenant, self.limit, self.lock_key = tenant, limit, lock_key
        self.path: str | None = None
        self.handle = None
        self.size = 0
        self.digest = hashlib.sha256()
        self.file_name = ""
        self.declared_type = ""

    def new_file(self, field_name, file_name, content_type, content_length, charset=None, content_type_extra=None):
        if field_name != "file" or self.path is not None:
            raise ValidationFailed(details={field_name: ["Send one file, in the field 'file'."]})
        self.file_name = os.path.basename(str(file_name or "upload"))[:200]
        self.declared_type = (content_type or "")[:100]
        self.path = os.path.join(staging_dir(self.tenant), f"upload-{secrets.token_hex(8)}.part")
        self.handle = open(self.path, "xb")  # noqa: SIM115 - closed in file_complete/cleanup
        os.chmod(self.path, 0o600)
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data, start):
        self.size += len(raw_data)
        if self.size > self.limit:
            self.cleanup()
            raise UploadTooLarge(
                f"The file is larger than the {self.limit} bytes an upload may have", details={"max_bytes": self.limit}
            )
        self.handle.write(raw_data)
        self.digest.update(raw_data)
        if self.lock_key and self.size % (64 << 20) < len(raw_data):
            cache.touch(self.lock_key, UPLOAD_LOCK_SECONDS)  # still uploading: keep the lock
        return None

    def file_complete(self, file_size):
        if self.handle is not None:
            self.handle.close()
        return StagedUpload(
            path=self.path,
            name=self.file_name,
            size=self.size,
            sha256=self.digest.hexdigest(),
            declared_type=self.declared_type,
        )

    def upload_interrupted(self):
        self.cleanup()

    def cleanup(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.handle.close()
        if self.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


@dataclass
class StagedUpload:
    path: str
    name: str
    size: int
    sha256: str
    declared_type: str = ""


UPLOAD_LOCK_SECONDS = 600


@contextlib.contextmanager
def upload_slot(tenant: Tenant) -> Iterator[str]:
    """Hold the tenant's one upload slot (refreshed while bytes arrive; a dead process
    frees it after ``UPLOAD_LOCK_SECONDS``)."""
    key = f"console-import-upload:{tenant.pk}"
    if not cache.add(key, secrets.token_hex(4), UPLOAD_LOCK_SECONDS):
        raise UploadBusy(
            "Another upload to this workspace is in progress; one upload at a time",
            code="TOO_MANY_OPERATIONS",
            headers={"Retry-After": "30"},
        )
    try:
        yield key
    finally:
        cache.delete(key)


# --- import -------------------------------------------------------------------------------------------


def _db_type(inspection: Inspection) -> str:
    inner = inspection.inner if inspection.kind == "bpaf" else inspection.kind
    return {"pg_custom": "postgresql", "pg_plain": "postgresql", "mysql_sql": "mysql"}.get(inner, "")


@transaction.atomic
def import_start(
    *,
    tenant: Tenant,
    upload: StagedUpload,
    inspection: Inspection,
    actor: Any = None,
    auto_restore: bool = False,
    create_backup_before: bool = False,
    target_server: Server | None = None,
    target_database: str = "",
    target_path: str = "",
    queue: bool = True,
) -> Operation:
    """Take over a checked upload: an ``Operation`` of kind ``import`` (and, unless it is a
    configuration export, a pending ``Backup`` with trigger ``imported``), queued after commit."""
    from .backups import default_storage

    db_type = _db_type(inspection)
    is_files = inspection.kind in ("tar", "tar.gz", "tar.zst")
    if auto_restore:
        if db_type and inspection.kind != "bpaf" and not (target_server and target_database):
            raise ValidationFailed(
                details={
                    "target_database": ["auto_restore of a database dump needs target_server_id and target_database."]
                }
            )
        if is_files and not target_path:
            raise ValidationFailed(details={"target_path": ["auto_restore of an archive needs target_path."]})
    if target_server is not None and target_server.tenant_id != tenant.pk:
        raise ValidationFailed(details={"target_server_id": ["Not found."]})
    if target_server is not None and db_type and target_server.type != db_type:
        raise ValidationFailed(details={"target_server_id": [f"A {db_type} dump restores into a {db_type} server."]})
    if target_path and (reason := confinement.check_data_path(tenant, target_path)):
        raise ValidationFailed(details={"target_path": [reason]})
    backup = None
    if inspection.kind != "config":
        storage = default_storage(tenant)
        from .copies import quota_check

        quota_check(storage=storage, incoming=inspection.size, what="the imported file")
        manifest = inspection.details.get("manifest") or {}
        app_name = (manifest.get("application") or {}).get("name")
        application = Application.objects.filter(tenant=tenant, name=app_name).first() if app_name else None
        backup = Backup.objects.create(
            tenant=tenant,
            name=f"Imported_{os.path.splitext(upload.name)[0]}"[:255] or "Imported",
            description=f"Imported from {upload.name} ({KIND_LABELS[inspection.kind]})"[:1000],
            backup_type="full",
            trigger=BackupTrigger.IMPORTED,
            db_type=db_type,
            database_name=inspection.details.get("database", ""),
            application=application,
            components=describe(inspection)["components"],
            storage=storage,
            compression="zstd",
            created_by=stored_user(actor),
        )
        from .backups import artifact_name

        backup.storage_path = artifact_name(backup)
        backup.save(update_fields=["storage_path"])
    op = operations.operation_create(
        tenant=tenant,
        kind=OperationKind.IMPORT,
        actor=actor,
        backup=backup,
        details={
            "staged_path": upload.path,
            "filename": upload.name,
            "kind": inspection.kind,
            "inner": inspection.inner,
            "size_bytes": upload.size,
            "sha256": upload.sha256,
            "auto_restore": auto_restore,
            "create_backup_before": create_backup_before,
            "target": {
                "server_id": target_server.pk if target_server else None,
                "database": target_database,
                "path": target_path,
            },
            "manifest": inspection.details.get("manifest"),
            "validation": describe(inspection),
        },
    )
    Operation.objects.filter(pk=op.pk).update(bytes_total=upload.size)
    emit(
        action="backup_import",
        tenant=tenant,
        resource_type="operation",
        resource_id=op.public_id,
        details={
            "filename": upload.name,
            "format": inspection.kind,
            "size_bytes": upload.size,
            "sha256": upload.sha256,
            "backup_id": backup.pk if backup else None,
            "auto_restore": auto_restore,
        },
    )
    if queue:
        from .backups import _queue

        _queue("backups.tasks.run_import", op)
    return op


class _FileSource(StreamBase):
    """A member source over a readable (the unpacked archive)."""

    def __init__(self, reader, info: dict):
        self.reader, self.info = reader, info

    def read(self, size: int = READ_SIZE, /) -> bytes:
        return self.reader.read(size)

    def finish(self) -> dict:
        self._done = True
        return dict(self.info)

    def kill(self) -> None:
        self._done = True


def _plaintext(tenant: Tenant, kind: str, handle):
    """The bytes to store for an upload (decrypted, or unpacked for compressed archives)."""
    if kind == "bpaf":
        _, key = tenant_data_key(tenant)
        return io.BufferedReader(PlainReader(open_artifact(handle, key)), READ_SIZE)
    if kind in ("tar.gz", "tar.zst", "tar"):
        reader, _ = decompressed(kind, handle)
        return reader
    return handle


def import_run(*, operation_id: int) -> Operation | None:
    """Store the staged upload as an encrypted backup (or a snapshot), then the optional
    pre-import backup and auto-restore. The staged file is deleted whatever happens."""
    op = operations.operation_claim(operation_id=operation_id)
    if op is None:
        return None
    details = dict(op.details)
    path = details.get("staged_path", "")
    try:
        return _import_run(op, details, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            if path and os.path.dirname(os.path.realpath(path)) == os.path.realpath(staging_dir(op.tenant)):
                os.unlink(path)


def _import_run(op: Operation, details: dict, path: str) -> Operation:
    from ..progress import ProgressReporter
    from .backups import _backup_end, _cleanup, _describe, storage_backend
    from .copies import QuotaWriter

    tenant = op.tenant
    kind = details["kind"]
    if kind == "config":
        from .snapshots import snapshot_save

        try:
            with open(path, "rb") as handle:
                document = json.load(handle)
            snapshot = snapshot_save(
                tenant=tenant,
                document=document,
                trigger="imported",
                name=f"Imported_{os.path.splitext(details['filename'])[0]}"[:200],
                description=f"Imported from {details['filename']}",
            )
        except Exception as exc:  # reported on the operation
            return operations.operation_finish(
                op=op, status=OperationStatus.FAILED, error=_describe(exc), step="failed"
            )
        return operations.operation_finish(
            op=op, status=OperationStatus.COMPLETED, step="completed", details={"snapshot_id": snapshot.pk}
        )
    backup = Backup.objects.select_related("tenant", "storage", "application").get(pk=op.backup_id)
    now = timezone.now()
    Backup.objects.filter(pk=backup.pk).update(status=BackupStatus.RUNNING, started_at=now)
    backup.started_at = now
    reporter = ProgressReporter(op, total=details.get("size_bytes") or None)
    if details.get("create_backup_before"):
        reporter.step("backing_up_current_state", progress=1)
        details["pre_import_backup_id"] = _backup_before(tenant, op)
        Operation.objects.filter(pk=op.pk).update(details=details)
        op.details = details
    writer = source = backend = None
    try:
        key_id, key = tenant_data_key(tenant)
        reporter.step("validating_data", progress=2)
        with open(path, "rb") as handle:
            counting = Counting(handle)
            raw = io.BufferedReader(counting, READ_SIZE)
            plain = _plaintext(tenant, kind, raw)
            if kind in ("tar", "tar.gz", "tar.zst"):
                source = bundle_source(
                    [
                        (
                            FILES_MEMBER,
                            lambda: _FileSource(
                                plain,
                                {
                                    "engine": "files",
                                    "format": "tar",
                                    "paths": ["/"],
                                    "root": "/",
                                    "imported_from": details["filename"],
                                },
                            ),
                        )
                    ],
                    {
                        "sources": [
                            {
                                "member": FILES_MEMBER,
                                "name": "files",
                                "type": "path",
                                "path": "/",
                                "database": "",
                                "component": "data",
                            }
                        ],
                        "imported_from": details["filename"],
                    },
                )
                stream = source
            else:
                stream = plain
            backend = storage_backend(backup.storage)
            writer = QuotaWriter(backend.open_writer(backup.storage_path), storage=backup.storage)
            reporter.step("importing_data", progress=3, component=details["filename"][:100])
            result = backup_stream(
                stream,
                writer,
                data_key=key,
                key_id=key_id,
                compression=backup.compression,
                payload=_payload(details.get("inner") or kind, bundled=source is not None),
                progress=lambda _n: reporter.update(counting.count),
                cancel=reporter.cancelled,
            )
            bundle = source.finish() if source is not None else details.get("manifest")
            writer.commit()
    except PipelineCancelled:
        _cleanup(source, writer)
        return _backup_end(op, backup, BackupStatus.CANCELLED, "Cancelled; partial data removed")
    except Exception as exc:  # the import fails with the reason; nothing partial stays
        _cleanup(source, writer)
        logger.warning(
            "import %s failed: %s",
            op.public_id,
            exc,
            exc_info=not isinstance(exc, DomainError | EngineError | ArtifactError),
        )
        return _backup_end(op, backup, BackupStatus.FAILED, _describe(exc))
    finally:
        if backend is not None:
            with contextlib.suppress(Exception):
                backend.close()
    inner = details.get("inner") or kind
    source_facts = {
        "engine": {"pg_custom": "postgresql", "pg_plain": "postgresql", "mysql_sql": "mysql"}.get(inner, "bundle"),
        "format": {"pg_custom": "custom", "pg_plain": "plain", "mysql_sql": "sql"}.get(inner, "tar"),
        "imported_from": details["filename"],
        "upload_sha256": details.get("sha256"),
    }
    manifest = artifact_manifest(result, created_at=now, source=source_facts, bundle=bundle)
    Backup.objects.filter(pk=backup.pk).update(
        size_bytes=result.raw_bytes,
        compressed_bytes=result.compressed_bytes,
        stored_bytes=result.stored_bytes,
        checksum=result.sha256,
        key_id=key_id,
        manifest=manifest,
    )
    backup.size_bytes, backup.compressed_bytes, backup.stored_bytes = (
        result.raw_bytes,
        result.compressed_bytes,
        result.stored_bytes,
    )
    backup.checksum, backup.key_id, backup.manifest = result.sha256, key_id, manifest
    op = _backup_end(op, backup, BackupStatus.COMPLETED, "")
    if details.get("auto_restore"):
        _auto_restore(op, backup, details)
    return op


def _backup_before(tenant: Tenant, op: Operation) -> int | None:
    """A backup of the current state (the default application) before the import, run here."""
    from .applications import application_get_default
    from .backups import backup_run, backup_start

    app = application_get_default(tenant=tenant)
    if not app.sources.exists():
        return None
    pre = backup_start(
        tenant=tenant,
        application=app,
        trigger=BackupTrigger.PRE_RESTORE,
        queue=False,
        name=f"pre_import_{timezone.now():%Y%m%d_%H%M%S}",
        description=f"Taken before import {op.public_id}",
    )
    backup_run(operation_id=pre.pk)
    return pre.backup_id


def _auto_restore(op: Operation, backup: Backup, details: dict) -> None:
    from .restores import restore_start

    target = details.get("target") or {}
    server = Server.objects.filter(tenant_id=backup.tenant_id, pk=target.get("server_id")).first()
    try:
        if backup.db_type:
            restore = restore_start(
                tenant=backup.tenant,
                backup=backup,
                target_server=server or backup.server,
                target_database=target.get("database") or backup.database_name,
            )
        elif target.get("path"):
            restore = restore_start(tenant=backup.tenant, backup=backup, target_path=target["path"])
        else:  # an application artifact of this platform: over its original targets
            restore = restore_start(tenant=backup.tenant, backup=backup, strategy="overwrite")
    except DomainError as exc:
        details["auto_restore_error"] = exc.message
    else:
        details["restore_id"] = restore.operation.public_id
    Operation.objects.filter(pk=op.pk).update(details={**op.details, **details})


# What an imported stream is, for its artifact's header (docs/artifact-format.md "payload").
IMPORT_PAYLOADS = {"pg_custom": "pg_dump-custom", "pg_plain": "sql", "mysql_sql": "sql", "bundle": "bp-bundle"}


def _payload(inner: str, *, bundled: bool) -> str:
    return "bp-bundle" if bundled else IMPORT_PAYLOADS.get(inner, "unspecified")
