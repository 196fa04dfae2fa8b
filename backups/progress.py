"""Progress of long work: written to the ``Operation`` and sent to the tenant's WebSocket
groups at most a few times per second (DESIGN.md "Work and progress")."""

from __future__ import annotations

import time
from typing import Any

from django.utils import timezone

from audit.services import publish

from .models import Operation, OperationKind, OperationStatus

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
        "eta": format_eta(op.eta_seconds),
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
    """

    def __init__(self, op: Operation, *, total: int | None = None, interval: float = 0.4):
        self.op = op
        self.total = total
        self.op.bytes_total = total
        self.interval = interval
        self.started = time.monotonic()
        self._last_write = 0.0
        self._last_cancel_check = 0.0
        self._cancelled = False

    def step(self, name: str, *, progress: int | None = None, component: str = "") -> None:
        self.op.step = name
        if component:
            self.op.component = component
        if progress is not None:  # percentages only grow (a console's bar never goes back)
            self.op.progress = max(self.op.progress or 0, progress)
        self._write(force=True)

    def update(self, bytes_done: int) -> None:
        self.op.bytes_done = bytes_done
        elapsed = max(time.monotonic() - self.started, 1e-3)
        self.op.throughput_bps = int(bytes_done / elapsed)
        if self.total:
            self.op.progress = max(self.op.progress or 0, min(99, int(bytes_done * 100 / self.total)))
            rate = bytes_done / elapsed
            self.op.eta_seconds = int((self.total - bytes_done) / rate) if rate > 0 else None
        self._write()

    def cancelled(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= 0.5:
            self._last_cancel_check = now
            self._cancelled = Operation.objects.filter(pk=self.op.pk, cancel_requested=True).exists()
            Operation.objects.filter(pk=self.op.pk).update(heartbeat_at=timezone.now())
        return self._cancelled

    def _write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.interval:
            return
        self._last_write = now
        op = self.op
        Operation.objects.filter(pk=op.pk).update(
            progress=op.progress, step=op.step, component=op.component, bytes_done=op.bytes_done,
            bytes_total=self.total, throughput_bps=op.throughput_bps, eta_seconds=op.eta_seconds,
            heartbeat_at=timezone.now(),
        )
        publish(tenant_id=op.tenant_id, event=progress_event(op))
