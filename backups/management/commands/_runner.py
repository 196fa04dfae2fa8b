"""Run an operation in this process with a progress bar (the CLI's one code path with the
API: the same services and the same ``Operation`` row, so the admin and sockets see it too).

The bar shows what the operation reports: percent, bytes done of the total (when known),
throughput and time left in human units (``12 MB / 40 MB  5.1 MB/s  ETA 00:00:06``), the
same numbers the dashboards show. On a terminal it redraws in place; into a pipe or a log
it prints its final line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from backupplatform import humanize
from backups.models import Operation
from backups.services.operations import OperationHeartbeat


def transfer_text(
    *, bytes_done: int | None, bytes_total: int | None, throughput_bps: int | None, eta_seconds: int | None
) -> str:
    """``"12 MB / 40 MB  5.1 MB/s  ETA 00:00:06"``; parts the operation does not know are left out."""
    done = humanize.size(bytes_done or 0)
    parts = [f"{done} / {humanize.size(bytes_total)}" if bytes_total else done]
    if throughput_bps:
        parts.append(humanize.rate(throughput_bps))
    if eta_seconds is not None and bytes_total and (bytes_done or 0) < bytes_total:
        parts.append(f"ETA {humanize.clock(eta_seconds)}")
    return "  ".join(parts)


class TransferColumn(ProgressColumn):
    """The operation's own bytes, throughput and ETA (the bar's total is its percent)."""

    def render(self, task: Task) -> Text:
        f = task.fields
        return Text(
            transfer_text(
                bytes_done=f.get("bytes_done"),
                bytes_total=f.get("bytes_total"),
                throughput_bps=f.get("throughput_bps"),
                eta_seconds=f.get("eta_seconds"),
            ),
            style="progress.download",
        )


def _fields(op: Operation) -> dict:
    running = op.finished_at is None
    # A total is often an estimate (a database's size on disk against its dump): once the
    # operation has ended, the bytes it moved are the whole story.
    return {
        "step": op.step,
        "bytes_done": op.bytes_done,
        "bytes_total": op.bytes_total if running else None,
        "throughput_bps": op.throughput_bps,
        "eta_seconds": op.eta_seconds if running else None,
    }


def run_with_progress(op: Operation, work: Callable[[], object], *, label: str, stdout=None) -> Operation:
    """Run ``work`` (the service that carries ``op`` out) in a thread and draw its progress
    on ``stdout`` (a command's ``self.stdout``; the process's stdout when omitted)."""
    errors: list[BaseException] = []

    def target() -> None:

        try:
            with OperationHeartbeat(op.pk):  # the worker's reaper must not take a slow step for a dead CLI
                work()
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)
        finally:
            from django.db import connection

            connection.close()

    thread = threading.Thread(target=target, daemon=True)
    # A command's OutputWrapper ends every write with a newline: rich writes to the stream under it.
    stream = getattr(stdout, "_out", stdout)
    console = Console(file=stream) if stream is not None else Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)  # a log line is not cut to 80 columns
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TransferColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[step]}"),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=100, **_fields(op))
        thread.start()
        try:
            while thread.is_alive():
                thread.join(0.3)
                op.refresh_from_db()
                progress.update(task, completed=op.progress, **_fields(op))
        except KeyboardInterrupt:
            Operation.objects.filter(pk=op.pk).update(cancel_requested=True)
            progress.update(task, step="cancelling")
            thread.join()
        op.refresh_from_db()
        progress.update(task, completed=op.progress, **_fields(op))
    if errors:
        raise errors[0]
    return op
