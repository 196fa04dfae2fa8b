"""Verification (api-layer.md "Verification Testing"): prove a backup can be restored.

- ``checksum``: re-read the stored artifact and compare its SHA-256 with the recorded one;
- ``decrypt``: a full authenticated decrypt (detects tampering, truncation, reordering);
- ``test_restore``: restore into a scratch database, count rows per table, run the optional
  SQL assertions given with the request, record the time, drop the scratch database.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import time
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import emit, publish, stored_user
from backupplatform.errors import Conflict, NotFound, ValidationFailed
from tenants import capabilities
from tenants.models import Tenant, TenantScope

from .. import engines
from ..keys import key_for_id
from ..models import Backup, BackupStatus, OperationKind, OperationStatus, ServerType, Verification
from ..pipeline import ArtifactError, restore_stream, verify_stream
from ..progress import ProgressReporter
from . import operations
from .backup_sources import connection_params
from .backups import _queue, backup_open_artifact

logger = logging.getLogger(__name__)

TEST_TYPES = ("checksum", "decrypt", "test_restore")


def _validate_assertions(assertions: Any) -> list[dict]:
    if assertions in (None, []):
        return []
    if not isinstance(assertions, list) or not all(
        isinstance(a, dict) and isinstance(a.get("sql"), str) for a in assertions
    ):
        raise ValidationFailed(details={"assertions": ['A list of {"sql": "SELECT ...", "expect": value}.']})
    return assertions


@transaction.atomic
def verification_start(
    *,
    tenant: Tenant,
    backup: Backup,
    actor: Any = None,
    test_type: str = "checksum",
    scope: str = "full",
    assertions: list | None = None,
    queue: bool = True,
) -> Verification:
    capabilities.require_feature(tenant)
    if backup.tenant_id != tenant.pk:
        raise NotFound("Backup not found")
    if test_type not in TEST_TYPES:
        raise ValidationFailed(details={"test_type": [f"Must be one of: {', '.join(TEST_TYPES)}."]})
    if backup.status != BackupStatus.COMPLETED:
        raise Conflict(
            f"Only completed backups can be verified (this one is {backup.status})", code="BACKUP_NOT_COMPLETED"
        )
    if test_type == "test_restore" and not backup.server_id:
        raise ValidationFailed(details={"test_type": ["test_restore needs a database backup."]})
    assertions = _validate_assertions(assertions)
    op = operations.operation_create(tenant=tenant, kind=OperationKind.VERIFY, actor=actor, backup=backup)
    verification = Verification.objects.create(
        tenant=tenant,
        backup=backup,
        operation=op,
        test_type=test_type,
        scope=scope,
        options={"assertions": assertions},
        created_by=stored_user(actor),
    )
    emit(
        action="verify_create",
        tenant=tenant,
        resource_type="verification",
        resource_id=verification.pk,
        details={"backup_id": backup.pk, "test_type": test_type},
    )
    if queue:  # the CLI runs the work in its own process instead
        _queue("backups.tasks.run_verify", op)
    return verification


class _HashingReader:
    """Hashes what the decryptor reads, so one pass checks both checksum and authenticity."""

    def __init__(self, raw, reporter: ProgressReporter):
        self.raw, self.reporter, self.sha, self.count = raw, reporter, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        if self.reporter.cancelled():
            raise engines.EngineError("Cancelled")
        data = self.raw.read(n)
        self.sha.update(data)
        self.count += len(data)
        self.reporter.update(self.count)
        return data


def verification_run(*, operation_id: int) -> Verification | None:
    op = operations.operation_claim(operation_id=operation_id)
    if op is None:
        return None
    verification = Verification.objects.select_related(
        "backup", "backup__storage", "backup__tenant", "backup__server"
    ).get(operation=op)
    backup = verification.backup
    started = time.monotonic()
    Verification.objects.filter(pk=verification.pk).update(status=OperationStatus.RUNNING, started_at=timezone.now())
    reporter = ProgressReporter(op, total=backup.stored_bytes or None)
    result: dict[str, Any] = {"test_type": verification.test_type, "expected_checksum": backup.checksum}
    passed = False
    backend = reader = None
    try:
        reporter.step("reading_artifact", progress=1)
        backend, reader = backup_open_artifact(backup=backup)
        hashing = _HashingReader(reader, reporter)
        if verification.test_type == "checksum":
            while hashing.read(1024 * 1024):
                pass
        else:
            key = key_for_id(backup.tenant, backup.key_id)
            outcome = verify_stream(hashing, key, decompress=True)
            while hashing.read(1024 * 1024):  # trailing bytes after the final chunk change the hash
                pass
            result.update({"decrypted": True, "chunks": outcome.chunks, "raw_bytes": outcome.raw_bytes})
        result["actual_checksum"] = hashing.sha.hexdigest()
        result["stored_bytes"] = hashing.count
        passed = result["actual_checksum"] == backup.checksum
        if not passed:
            result["error"] = "The stored artifact does not match its recorded checksum"
        if passed and verification.test_type == "test_restore":
            reporter.step("test_restore", progress=60)
            result["test_restore"] = _test_restore(backup, verification, reporter)
            passed = result["test_restore"]["passed"]
    except ArtifactError as exc:
        result["error"] = str(exc)
        passed = False
    except Exception as exc:  # any failure is a failed verification with its reason
        cancelled = reporter.cancelled()
        result["error"] = "Cancelled" if cancelled else (getattr(exc, "message", None) or str(exc))
        return _verification_end(
            op, verification, OperationStatus.CANCELLED if cancelled else OperationStatus.FAILED, False, result, started
        )
    finally:
        for closable in (reader, backend):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()
    return _verification_end(op, verification, OperationStatus.COMPLETED, passed, result, started)


def _test_restore(backup: Backup, verification: Verification, reporter: ProgressReporter) -> dict:
    """Restore into a scratch database on the backup's server, check it, drop it."""

    server = backup.server
    scratch = f"bp_verify_{backup.pk}_{secrets.token_hex(3)}"
    params = connection_params(server, scratch)
    began = time.monotonic()
    backend, reader = backup_open_artifact(backup=backup)
    sink = None
    try:
        key = key_for_id(backup.tenant, backup.key_id)
        factory = engines.pg_restore_sink if server.type == ServerType.POSTGRESQL else engines.mysql_restore_sink
        sink = factory(params, strategy="create_new", create_database=True)
        done = 0
        for piece in restore_stream(reader, key):
            sink.write(piece)
            done += len(piece)
            if reporter.cancelled():
                raise engines.EngineError("Cancelled")
        sink.finish()
        sink = None
        restore_seconds = round(time.monotonic() - began, 3)
        counts = engines.table_row_counts(params)
        checks = engines.run_assertions(params, verification.options.get("assertions") or [])
        return {
            "scratch_database": scratch,
            "restore_seconds": restore_seconds,
            "row_counts": counts,
            "assertions": checks,
            "passed": all(c.get("passed") for c in checks),
        }
    finally:
        if sink is not None:
            with contextlib.suppress(Exception):
                sink.abort()
        with contextlib.suppress(Exception):
            reader.close()
            backend.close()
        with contextlib.suppress(Exception):
            engines.drop_database(params)


def _verification_record(op, verification: Verification, status: str, passed: bool, result: dict, now) -> None:
    Verification.objects.filter(pk=verification.pk).update(
        status=status, passed=passed, result=result, completed_at=now, error_message=result.get("error", "")
    )
    if status == OperationStatus.COMPLETED and passed:
        Backup.objects.filter(pk=verification.backup_id).update(verified=True, verified_at=now)
    elif status == OperationStatus.COMPLETED:
        Backup.objects.filter(pk=verification.backup_id).update(verified=False)
    operations.operation_finish(
        op=op,
        status=status,
        error=result.get("error", "") if not passed else "",
        step=status,
        details={"passed": passed},
    )


def _verification_end(
    op, verification: Verification, status: str, passed: bool, result: dict, started: float
) -> Verification:
    now = timezone.now()
    result["duration_seconds"] = round(time.monotonic() - started, 3)
    with transaction.atomic():  # the verification, its backup and its operation in one commit
        _verification_record(op, verification, status, passed, result, now)
    verification.status, verification.passed, verification.result, verification.completed_at = (
        status,
        passed,
        result,
        now,
    )
    publish(
        tenant_id=verification.tenant_id,
        event={
            "type": "verification_completed" if status == OperationStatus.COMPLETED else f"verification_{status}",
            "backup_id": verification.backup_id,
            "verification_id": verification.pk,
            "passed": passed,
        },
    )
    emit(
        action="verify_completed" if status == OperationStatus.COMPLETED else f"verify_{status}",
        tenant=verification.tenant,
        resource_type="verification",
        resource_id=verification.pk,
        details={"backup_id": verification.backup_id, "passed": passed, "error": result.get("error", "")},
    )
    return verification


def verification_cancel(*, tenant: TenantScope, verification: Verification) -> Verification:
    if verification.operation is None:
        raise Conflict("This verification cannot be cancelled", code="OPERATION_NOT_RUNNING")
    operations.operation_cancel(tenant=tenant, public_id=verification.operation.public_id)
    if verification.status == OperationStatus.PENDING:
        Verification.objects.filter(pk=verification.pk).update(
            status=OperationStatus.CANCELLED, completed_at=timezone.now()
        )
    verification.refresh_from_db()
    return verification
