"""Progress of long work: written to the ``Operation`` and sent to the tenant's WebSocket
groups at most a few times per second (DESIGN.md "Work and progress").

Progress never goes backwards: a step that names a lower percentage than the one already
reported (a restore at 98 % of its bytes entering its masking step at 95 %) keeps the
higher one. Progress writes are best-effort: a write that fails because the platform's
database connection broke is logged and skipped, the connection is dropped, and the next
write opens a fresh one; the dump itself goes on (its outcome is recorded with retries by
``backups.services.operations``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import InterfaceError, OperationalError
from django.utils import timezone

from audit.services import publish

from .models import Operation, OperationKind, OperationStatus
from .services.operations import db_reconnect

logger = logging.getLogger(__name__)

# The event type each kind of operation reports on the sockets (the seeds' names).
PROGRESS_EVENT = {
    OperationKind.BACKUP: "backup_progress",
    OperationKind.RESTORE: "restore_progress",
    OperationKind.RECOVERY: "restore_progress",
    OperationKind.VERIFY: "verify_progress",
    OperationKind.IMPORT: "import_progress",
    OperationKind.SYNC: "sync_progress",
    OperationKind.CLEANUP: "cleanup_progress",
}


def format_eta(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    h, rem = divmod(max(0, int(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


def progress_event(op: Operation) -> dict[str, Any]:
    """The event shape the seeds show (db-backup-platform.md and system-backup-recovery.rst)."""
    event: dict[str, Any] = {
        "type": PROGRESS_EVENT.get(op.kind, "operation_progress"),
        "job_id": op.public_id,
        "operation_id": op.public_id,
        "progress": op.progress,
        "status": "in_progress" if op.status == OperationStatus.RUNNING else op.status,
        "current_step": op.step,
        # Done is done: nothing left (an operation that ended otherwise has no time left to tell).
        "eta": format_eta(0 if op.status == OperationStatus.COMPLETED else op.eta_seconds),
        "bytes_processed": op.bytes_done,
        "bytes_done": op.bytes_done,
        "bytes_total": op.bytes_total,
        "throughput_bps": op.throughput_bps,
    }
    if op.backup_id:
        event["backup_id"] = op.backup_id
    if op.kind in (OperationKind.RESTORE, OperationKind.RECOVERY):
        event["restore_id"] = op.public_id
    return event


class ProgressReporter:
    """Throttled progress writer; also the heartbeat and the cooperative cancel check.

    ``update(bytes_done)`` is the pipeline's progress callback; ``cancelled()`` its cancel
    check. Both refresh ``heartbeat_at`` so the reaper can tell a live worker from a dead one.
    ``step(name, progress=...)`` moves to a named step; percentages only ever grow.
    """

    def __init__(
        self, op: Operation, *, total: int | None = None, interval: float = 0.4, span: tuple[int, int] = (0, 100)
    ):
        """``span``: the percentages the bytes move through (a restore that masks afterwards
        leaves the top of the bar to masking and the swap)."""
        self.op = op
        self.total = total
        self.span = span
        self.op.bytes_total = total
        self.interval = interval
        self.started = time.monotonic()
        self._last_write = 0.0
        self._last_cancel_check = 0.0
        self._cancelled = False
        self._db_failures = 0

    def _advance(self, progress: int) -> None:
        self.op.progress = max(self.op.progress or 0, min(100, int(progress)))

    def step(self, name: str, *, progress: int | None = None, component: str = "") -> None:
        self.op.step = name
        if component:
            self.op.component = component
        if progress is not None:
            self._advance(progress)
        self._write(force=True)

    def update(self, bytes_done: int) -> None:
        self.op.bytes_done = bytes_done
        elapsed = max(time.monotonic() - self.started, 1e-3)
        self.op.throughput_bps = int(bytes_done / elapsed)
        if self.total:
            low, high = self.span  # 100 % is said by the end of the work, not by the bytes
            self._advance(min(high, 99, low + int(bytes_done * (high - low) / self.total)))
            rate = bytes_done / elapsed
            self.op.eta_seconds = int(max(0, self.total - bytes_done) / rate) if rate > 0 else None
        self._write()

    def cancelled(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= 0.5:
            self._last_cancel_check = now
            try:
                self._cancelled = Operation.objects.filter(pk=self.op.pk, cancel_requested=True).exists()
                Operation.objects.filter(pk=self.op.pk).update(heartbeat_at=timezone.now())
            except (OperationalError, InterfaceError) as exc:
                self._database_failed("cancel check", exc)
            else:
                self._db_failures = 0
        return self._cancelled

    def _write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.interval:
            return
        self._last_write = now
        op = self.op
        try:
            Operation.objects.filter(pk=op.pk).update(
                progress=op.progress,
                step=op.step,
                component=op.component,
                bytes_done=op.bytes_done,
                bytes_total=self.total,
                throughput_bps=op.throughput_bps,
                eta_seconds=op.eta_seconds,
                heartbeat_at=timezone.now(),
            )
        except (OperationalError, InterfaceError) as exc:
            self._database_failed("progress write", exc)
            return
        self._db_failures = 0
        publish(tenant_id=op.tenant_id, event=progress_event(op))

    def _database_failed(self, what: str, exc: Exception) -> None:
        """Skip this write, drop the broken connection; the next write reconnects."""

        self._db_failures += 1
        if self._db_failures == 1:
            logger.warning("operation %s: %s failed, continuing (%s)", self.op.public_id, what, exc)
        db_reconnect()
