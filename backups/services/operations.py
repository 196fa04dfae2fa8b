"""Operations: claiming, finishing, cancelling and reaping long work.

Status moves ``pending -> running -> completed | failed | cancelled``. A task claims its
operation with a conditional update (idempotent under redelivery: ``acks_late``); a crashed
worker leaves a ``running`` row whose heartbeat stops, which ``operation_reap`` fails.

Faults of the platform's own database: the claim and the outcome are written with
:func:`with_db_retry`, which drops a broken connection and retries on a fresh one for a few
seconds, so a backup whose database connection was killed still records why it ended
(instead of staying ``running`` until the reaper blames its worker). While a task runs,
:class:`OperationHeartbeat` keeps the heartbeat fresh from a thread of the worker process,
so a long silent step (a dump waiting for a lock, a masking query) is never mistaken for a
dead worker, and the reaper's timeout can be short.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from audit.services import emit, publish, stored_user
from backupplatform.errors import Conflict, NotFound
from tenants.models import Tenant, TenantScope

from .. import signals
from ..models import (
    Backup,
    BackupStatus,
    Operation,
    OperationKind,
    OperationStatus,
    Restore,
)

logger = logging.getLogger(__name__)

ACTIVE = (OperationStatus.PENDING, OperationStatus.RUNNING)
#: Connection-level database errors: the server went away, the connection was killed.
DB_CONNECTION_ERRORS = (OperationalError, InterfaceError)
#: Waits between attempts of :func:`with_db_retry` (seconds): about 7 s in all.
DB_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
REAPED_MESSAGE = "The worker running this operation stopped responding; partial data was removed"

T = TypeVar("T")


def db_reconnect() -> None:
    """Drop this thread's database connection so the next query opens a fresh one.

    Inside a transaction nothing is dropped: the transaction is lost with its connection
    and its owner must roll back first.
    """
    if connection.in_atomic_block:
        return
    with contextlib.suppress(*DB_CONNECTION_ERRORS):
        connection.close()


def with_db_retry(fn: Callable[[], T], *, what: str, delays: tuple[float, ...] = DB_RETRY_DELAYS) -> T:
    """``fn()``, retried on a fresh connection when the database connection is broken.

    A connection that already failed (killed by ``pg_terminate_backend``, a server restart,
    a network cut) is closed first instead of being reused. Other database errors (and the
    last connection error) propagate.
    """
    if not connection.in_atomic_block and connection.connection is not None and connection.errors_occurred:
        with contextlib.suppress(*DB_CONNECTION_ERRORS):
            if not connection.is_usable():
                connection.close()
    for delay in (*delays, None):
        try:
            return fn()
        except DB_CONNECTION_ERRORS as exc:
            if delay is None or connection.in_atomic_block:
                raise
            logger.warning(
                "%s: database connection failed (%s); retrying on a new connection in %.1fs", what, exc, delay
            )
            db_reconnect()
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def operation_create(
    *,
    tenant: Tenant,
    kind: str,
    actor: Any = None,
    backup: Backup | None = None,
    step: str = "queued",
    details: dict | None = None,
) -> Operation:
    return Operation.objects.create(
        tenant=tenant,
        kind=kind,
        backup=backup,
        step=step,
        details=details or {},
        celery_task_id=str(uuid.uuid4()),
        created_by=stored_user(actor),
    )


def operation_claim(*, operation_id: int) -> Operation | None:
    """Move a pending operation to running; ``None`` if someone else has it (or it ended)."""

    def claim() -> Operation | None:
        now = timezone.now()
        claimed = Operation.objects.filter(pk=operation_id, status=OperationStatus.PENDING).update(
            status=OperationStatus.RUNNING, started_at=now, heartbeat_at=now, step="starting"
        )
        if claimed != 1:
            return None
        return Operation.objects.select_related("tenant", "backup").get(pk=operation_id)

    return with_db_retry(claim, what=f"claiming operation {operation_id}")


def operation_finish(
    *, op: Operation, status: str, error: str = "", details: dict | None = None, step: str | None = None
) -> Operation:
    op.status = status
    op.finished_at = timezone.now()
    op.error_message = error[:5000]
    totals: dict[str, int] = {}
    if status == OperationStatus.COMPLETED:
        op.progress = 100
        if op.bytes_total is None and op.bytes_done:  # the work had no estimate: its total is what it did
            op.bytes_total = totals["bytes_total"] = op.bytes_done
    if step is not None:
        op.step = step
    if details:
        op.details = {**op.details, **details}
    if error:
        op.errors = op.errors + 1
    with_db_retry(
        lambda: Operation.objects.filter(pk=op.pk).update(
            status=op.status,
            finished_at=op.finished_at,
            error_message=op.error_message,
            progress=op.progress,
            step=op.step,
            details=op.details,
            errors=op.errors,
            heartbeat_at=op.finished_at,
        ),
        what=f"recording the outcome of operation {op.public_id}",
    )
    if totals:  # only where no total was recorded (another copy of the row may have had one)
        with_db_retry(
            lambda: Operation.objects.filter(pk=op.pk, bytes_total__isnull=True).update(**totals),
            what=f"recording the total of operation {op.public_id}",
        )
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
                status=BackupStatus.CANCELLED, error_message="Cancelled before it started"
            )
    op.save(update_fields=fields)
    emit(
        action=f"{op.kind}_cancel",
        tenant=op.tenant,
        resource_type="operation",
        resource_id=op.public_id,
        details={"reason": reason, "status": op.status},
    )
    return op


def operation_stop(
    *, tenant: TenantScope, public_id: str, reason: str = "", wait: float = 0.0, poll: float = 0.2
) -> Operation:
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
                status=OperationStatus.CANCELLED, completed_at=op.finished_at
            )
    deadline = time.monotonic() + max(0.0, wait)
    while op.status in ACTIVE and time.monotonic() < deadline:
        time.sleep(poll)
        op.refresh_from_db(fields=["status", "step", "finished_at", "progress", "error_message"])
    return op


def heartbeat_timeout() -> timedelta:
    return timedelta(seconds=getattr(settings, "OPERATION_HEARTBEAT_TIMEOUT", 60))


class OperationHeartbeat:
    """Refresh a running operation's ``heartbeat_at`` every few seconds while a task runs it.

    Used by the tasks around the service call: the beats come from a thread of the process
    that does the work, so they stop exactly when that process dies (SIGKILL, OOM, a hard
    time limit), which is what the reaper must detect, and never because a step is slow.
    A database error skips one beat (the thread reconnects for the next one).
    """

    #: The row that beats (any model with ``status`` and ``heartbeat_at``: restore drills too).
    model: Any = None

    def __init__(self, operation_id: int, *, interval: float | None = None) -> None:
        self.operation_id = operation_id
        self.interval = interval if interval is not None else getattr(settings, "OPERATION_HEARTBEAT_INTERVAL", 10)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> OperationHeartbeat:
        self._thread = threading.Thread(target=self._run, name=f"operation-heartbeat-{self.operation_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    (self.model or Operation).objects.filter(
                        pk=self.operation_id, status=OperationStatus.RUNNING
                    ).update(heartbeat_at=timezone.now())
                except DB_CONNECTION_ERRORS as exc:
                    logger.warning("operation %s: heartbeat not written (%s)", self.operation_id, exc)
                    db_reconnect()
        finally:
            with contextlib.suppress(*DB_CONNECTION_ERRORS):
                connection.close()


def operation_reap(*, now=None) -> list[str]:
    """Fail operations whose worker died (no heartbeat), deleting their partial artifacts.

    A scheduled backup lost this way is run once more by its job (``schedules.hooks``);
    manual runs are not repeated behind the user's back, and a retry is never retried.
    """
    from .backups import backup_discard_artifact

    now = now or timezone.now()
    stale = Operation.objects.filter(status=OperationStatus.RUNNING, heartbeat_at__lt=now - heartbeat_timeout())
    reaped = []
    lost_backups: list[Backup] = []
    lost_restores: list[int] = []
    for op in stale.select_related("backup", "tenant"):
        with transaction.atomic():
            locked = Operation.objects.select_for_update().filter(pk=op.pk, status=OperationStatus.RUNNING).first()
            if locked is None:
                continue
            operation_finish(op=locked, status=OperationStatus.FAILED, error=REAPED_MESSAGE, step="failed")
            backup = locked.backup
            if locked.kind == OperationKind.BACKUP and backup is not None and backup.status != BackupStatus.COMPLETED:
                backup_discard_artifact(backup=backup)
                Backup.objects.filter(pk=backup.pk).update(
                    status=BackupStatus.FAILED, error_message=REAPED_MESSAGE, completed_at=now
                )
                lost_backups.append(backup)
            if locked.kind in (OperationKind.RESTORE, OperationKind.RECOVERY):
                lost_restores += list(Restore.objects.filter(operation=locked).values_list("pk", flat=True))
                Restore.objects.filter(operation=locked).update(
                    status=OperationStatus.FAILED, error_message=REAPED_MESSAGE, completed_at=now
                )
            emit(
                action=f"{locked.kind}_reaped",
                tenant=locked.tenant,
                resource_type="operation",
                resource_id=locked.public_id,
                details={"heartbeat_at": op.heartbeat_at},
            )
            reaped.append(locked.public_id)
    if reaped:
        logger.warning("reaped %d operation(s) whose worker died: %s", len(reaped), ", ".join(reaped))
    for restore in Restore.objects.filter(pk__in=lost_restores).select_related("operation", "tenant"):
        # A masked restore killed mid-way leaves its staging database (unmasked data, never
        # under the target's name): dropped once the operation is failed (it commits above).
        from .restores import restore_discard_staging

        try:
            restore_discard_staging(restore=restore)
        except Exception:  # one server that cannot be reached must not stop the others
            logger.exception("could not drop the staging databases of restore %s", restore.pk)
    for backup in lost_backups:
        # Listeners (a job retries a scheduled run lost this way) must not stop the others.
        for receiver, result in signals.backup_reaped.send_robust(sender=Backup, backup=backup):
            if isinstance(result, Exception):
                logger.error("after reaping backup %s, %s failed: %s", backup.pk, receiver, result, exc_info=result)
    return reaped
