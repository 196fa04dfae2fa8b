"""Run an operation in this process with a progress bar (the CLI's one code path with the
API: the same services and the same ``Operation`` row, so the admin and sockets see it too)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from backups.models import Operation


def run_with_progress(op: Operation, work: Callable[[], object], *, label: str) -> Operation:
    errors: list[BaseException] = []

    def target() -> None:
        from backups.services.operations import OperationHeartbeat

        try:
            with OperationHeartbeat(op.pk):  # the worker's reaper must not take a slow step for a dead CLI
                work()
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)
        finally:
            from django.db import connection

            connection.close()

    thread = threading.Thread(target=target, daemon=True)
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn(), TextColumn("{task.fields[step]}")]
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(label, total=100, step="queued")
        thread.start()
        try:
            while thread.is_alive():
                thread.join(0.3)
                op.refresh_from_db()
                progress.update(task, completed=op.progress, step=op.step)
        except KeyboardInterrupt:
            Operation.objects.filter(pk=op.pk).update(cancel_requested=True)
            progress.update(task, step="cancelling")
            thread.join()
        op.refresh_from_db()
        progress.update(task, completed=op.progress, step=op.step)
    if errors:
        raise errors[0]
    return op
